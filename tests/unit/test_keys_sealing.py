"""Sealing: AES-256-GCM round trip, wrong master key, flipped bytes, swapped or relabelled entries."""

from __future__ import annotations

import dataclasses

import pytest

from bot.domain.credentials import Credentials, KeyScope
from bot.keys.errors import InvalidKeyInput, TamperedEntry, WrongMasterKey
from bot.keys.master import MasterKey
from bot.keys.sealing import SealedEntry, credentials_from, encode_plaintext, mask_api_key, open_into, seal, wipe
from tests.keys_support import new_api_key


def _entry(master: MasterKey, venue: str, kind: KeyScope, key_id: str, api: str, secret: str, phrase: str | None = None) -> SealedEntry:
    masked = mask_api_key(api)
    plaintext = encode_plaintext(api, secret, phrase)
    ct = seal(master, venue, kind, key_id, masked, plaintext)
    wipe(plaintext)
    assert not any(plaintext)
    return SealedEntry(venue, kind, key_id, masked, master.key_id, ct)


def _open(master: MasterKey, entry: SealedEntry) -> Credentials:
    buf = open_into(master, entry)
    try:
        return credentials_from(buf, entry)
    finally:
        wipe(buf)


def test_round_trip_with_and_without_passphrase() -> None:
    master = MasterKey.generate()
    api, secret = new_api_key(), new_api_key()
    creds = _open(master, _entry(master, "binance", KeyScope.READ, "r1", api, secret))
    assert creds.api_key.get_secret_value() == api and creds.secret.get_secret_value() == secret and creds.passphrase is None
    creds = _open(master, _entry(master, "okx", KeyScope.TRADE, "t1", api, secret, "pass phrase ü"))
    assert creds.passphrase is not None and creds.passphrase.get_secret_value() == "pass phrase ü"
    assert creds.venue == "okx" and creds.scope is KeyScope.TRADE


def test_the_ciphertext_hides_the_plaintext_and_uses_a_fresh_nonce() -> None:
    master = MasterKey.generate()
    api, secret = new_api_key(), new_api_key()
    a = _entry(master, "binance", KeyScope.READ, "r1", api, secret)
    b = _entry(master, "binance", KeyScope.READ, "r1", api, secret)
    assert a.ciphertext != b.ciphertext  # random nonce per seal
    for blob in (a.ciphertext, b.ciphertext):
        assert api.encode() not in blob and secret.encode() not in blob


def test_credentials_never_show_their_values() -> None:
    api, secret = new_api_key(), new_api_key()
    creds = _open(m := MasterKey.generate(), _entry(m, "binance", KeyScope.READ, "r1", api, secret, "hunter22"))
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr(creds.secret)):
        assert api not in text and secret not in text and "hunter22" not in text
    assert repr(creds).startswith("Credentials(venue='binance', scope=read, key=binance:read:")


def test_wrong_master_key_is_a_specific_error() -> None:
    right, wrong = MasterKey.generate(), MasterKey.generate()
    entry = _entry(right, "binance", KeyScope.READ, "r1", new_api_key(), new_api_key())
    with pytest.raises(WrongMasterKey, match=rf"encrypted under master key {right.key_id}.*is {wrong.key_id}"):
        open_into(wrong, entry)
    # a wrong key that claims the right id (a relabelled row) still fails: authentication, not the label
    forged = dataclasses.replace(entry, master_key_id=wrong.key_id)
    with pytest.raises(TamperedEntry):
        open_into(wrong, dataclasses.replace(forged, ciphertext=entry.ciphertext))


@pytest.mark.parametrize("where", ["format", "nonce", "body", "tag"])
def test_a_flipped_ciphertext_byte_is_detected(where: str) -> None:
    master = MasterKey.generate()
    entry = _entry(master, "binance", KeyScope.TRADE, "t1", new_api_key(), new_api_key())
    index = {"format": 0, "nonce": 5, "body": 20, "tag": len(entry.ciphertext) - 1}[where]
    blob = bytearray(entry.ciphertext)
    blob[index] ^= 0x01
    with pytest.raises(TamperedEntry, match="binance/trade/t1"):
        open_into(master, dataclasses.replace(entry, ciphertext=bytes(blob)))


def test_a_truncated_ciphertext_is_detected() -> None:
    master = MasterKey.generate()
    entry = _entry(master, "binance", KeyScope.READ, "r1", new_api_key(), new_api_key())
    with pytest.raises(TamperedEntry, match="malformed"):
        open_into(master, dataclasses.replace(entry, ciphertext=entry.ciphertext[:20]))


def test_swapped_entries_fail_authentication() -> None:
    """The read key's ciphertext in the trade row (and the other way round) must not open: associated data."""
    master = MasterKey.generate()
    read = _entry(master, "binance", KeyScope.READ, "k1", new_api_key(), new_api_key())
    trade = _entry(master, "binance", KeyScope.TRADE, "k1", new_api_key(), new_api_key())
    swapped_read = dataclasses.replace(read, ciphertext=trade.ciphertext)
    swapped_trade = dataclasses.replace(trade, ciphertext=read.ciphertext)
    for entry in (swapped_read, swapped_trade):
        with pytest.raises(TamperedEntry, match="swapped"):
            open_into(master, entry)


@pytest.mark.parametrize("field,value", [("venue", "kraken"), ("kind", KeyScope.READ), ("key_id", "other"), ("api_key_masked", "abcd...wxyz")])
def test_relabelled_entries_fail_authentication(field: str, value: object) -> None:
    master = MasterKey.generate()
    entry = _entry(master, "binance", KeyScope.TRADE, "k1", new_api_key(), new_api_key())
    with pytest.raises(TamperedEntry):
        open_into(master, dataclasses.replace(entry, **{field: value}))


def test_a_failed_open_leaves_no_plaintext_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    """AESGCM.decrypt_into writes unauthenticated plaintext before it checks the tag: it must be zeroed."""
    import bot.keys.sealing as sealing

    buffers: list[bytearray] = []
    real = bytearray

    def spy(*args: object) -> bytearray:
        buf = real(*args)  # type: ignore[call-overload]
        if args and isinstance(args[0], int):  # the plaintext buffer (sized), not the associated data
            buffers.append(buf)
        return buf

    master = MasterKey.generate()
    entry = _entry(master, "binance", KeyScope.READ, "k1", new_api_key(), new_api_key())
    blob = real(entry.ciphertext)
    blob[-1] ^= 1
    monkeypatch.setattr(sealing, "bytearray", spy, raising=False)
    with pytest.raises(TamperedEntry):
        open_into(master, dataclasses.replace(entry, ciphertext=bytes(blob)))
    assert len(buffers) == 1 and len(buffers[0]) > 100 and not any(buffers[0])


@pytest.mark.parametrize(
    "api,secret,phrase,message",
    [
        ("short", "x" * 20, None, "shorter than 8"),
        ("a" * 20, "has space in it!", None, "whitespace"),
        ("a" * 20, "b" * 19 + "\n", None, "control characters"),
        ("a" * 20, "b" * 20, "abc", "passphrase is shorter"),
    ],
)
def test_implausible_credentials_are_refused(api: str, secret: str, phrase: str | None, message: str) -> None:
    with pytest.raises(InvalidKeyInput, match=message):
        encode_plaintext(api, secret, phrase)


def test_masked_api_key_shows_only_the_ends() -> None:
    assert mask_api_key("ABCD" + "x" * 56 + "WXYZ") == "ABCD...WXYZ"
    assert mask_api_key("shortkey12") == "****"


def test_a_wiped_master_key_refuses_to_work() -> None:
    master = MasterKey.generate()
    with master:
        pass
    assert master.wiped
    with pytest.raises(Exception, match="wiped"):
        master.aead()
    assert "MasterKey(mk-" in repr(master)
