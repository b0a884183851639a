"""Sealing and opening key entries: AES-256-GCM with the entry's labels as associated data.

Ciphertext layout (the ``ciphertext`` column): ``0x01 | nonce (12 bytes, random) | AES-GCM(plaintext) | tag (16)``.

Associated data: the format label, venue, kind, key id, master key id and masked API key, each length-prefixed.
GCM authenticates them with the ciphertext, so an entry moved to another row (a read key swapped with a trade
key, one venue's key put under another), relabelled, or re-pointed at another master key fails to open.

Plaintext layout: ``0x01`` then three fields (API key, secret, passphrase), each a 2-byte big-endian length
and UTF-8 bytes; length 0xFFFF means "no passphrase". Plaintexts live only in ``bytearray`` buffers that the
caller zeroes (``wipe``); the only clear copies that outlive a call are the ``str`` objects inside the
``Credentials`` handed to a venue client (Python strings cannot be zeroed: see docs/keys.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from pydantic import SecretStr

from bot.domain.credentials import Credentials, KeyScope
from bot.keys.errors import InvalidKeyInput, TamperedEntry, WrongMasterKey
from bot.keys.master import MasterKey, _wipe
from bot.keys.redaction import REDACTOR, Redactor

FORMAT = 1
NONCE_BYTES = 12
TAG_BYTES = 16
_AAD_LABEL = b"tgbot-trader key entry v1"
_NO_FIELD = 0xFFFF
MIN_KEY_CHARS = 8
MIN_PASSPHRASE_CHARS = 6
MAX_FIELD_BYTES = 4096


@dataclass(frozen=True, slots=True)
class SealedEntry:
    """One row of ``key_entries``: labels in clear, secrets sealed."""

    venue: str
    kind: KeyScope
    key_id: str
    api_key_masked: str
    master_key_id: str
    ciphertext: bytes
    created_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.venue}/{self.kind.value}/{self.key_id}"


def wipe(buf: bytearray) -> None:
    _wipe(buf)


def mask_api_key(api_key: str) -> str:
    """First and last four characters of a long API key (what venues themselves show); never the secret."""
    return f"{api_key[:4]}...{api_key[-4:]}" if len(api_key) >= 16 else "****"


def associated_data(venue: str, kind: KeyScope, key_id: str, master_key_id: str, api_key_masked: str) -> bytes:
    out = bytearray()
    for part in (_AAD_LABEL, venue.encode(), kind.value.encode(), key_id.encode(), master_key_id.encode(), api_key_masked.encode()):
        out += len(part).to_bytes(2, "big")
        out += part
    return bytes(out)


def _check_field(name: str, value: str, minimum: int, *, spaces: bool) -> None:
    if len(value) < minimum:
        raise InvalidKeyInput(f"the {name} is shorter than {minimum} characters: that cannot be a venue credential")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidKeyInput(f"the {name} contains control characters (a stray newline or tab?)")
    if not spaces and any(c.isspace() for c in value):
        raise InvalidKeyInput(f"the {name} contains whitespace: paste it again without spaces")


def encode_plaintext(api_key: str, secret: str, passphrase: str | None) -> bytearray:
    """The plaintext layout in one pre-sized buffer (no intermediate buffers that would hold a copy)."""
    _check_field("API key", api_key, MIN_KEY_CHARS, spaces=False)
    _check_field("API secret", secret, MIN_KEY_CHARS, spaces=False)
    if passphrase is not None:
        _check_field("passphrase", passphrase, MIN_PASSPHRASE_CHARS, spaces=True)
    fields = (api_key, secret, passphrase)
    sizes = [len(f.encode()) if f is not None else 0 for f in fields]
    if any(s > MAX_FIELD_BYTES for s in sizes):
        raise InvalidKeyInput(f"a credential field is longer than {MAX_FIELD_BYTES} bytes")
    buf = bytearray(1 + 2 * len(fields) + sum(sizes))
    buf[0] = FORMAT
    pos = 1
    for field, size in zip(fields, sizes, strict=True):
        if field is None:
            buf[pos : pos + 2] = _NO_FIELD.to_bytes(2, "big")
            pos += 2
            continue
        buf[pos : pos + 2] = size.to_bytes(2, "big")
        pos += 2
        buf[pos : pos + size] = field.encode()
        pos += size
    return buf


def _field_spans(buf: bytearray) -> list[tuple[int, int] | None] | None:
    """(start, end) of each plaintext field, or None if the layout is broken."""
    if len(buf) < 7 or buf[0] != FORMAT:
        return None
    spans: list[tuple[int, int] | None] = []
    pos = 1
    for index in range(3):
        if pos + 2 > len(buf):
            return None
        size = int.from_bytes(buf[pos : pos + 2], "big")
        pos += 2
        if size == _NO_FIELD and index == 2:
            spans.append(None)
            continue
        if size == 0 or pos + size > len(buf):
            return None
        spans.append((pos, pos + size))
        pos += size
    return spans if pos == len(buf) else None


def seal(master: MasterKey, venue: str, kind: KeyScope, key_id: str, api_key_masked: str, plaintext: bytearray) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    out = bytearray(len(plaintext) + TAG_BYTES)
    master.aead().encrypt_into(nonce, plaintext, associated_data(venue, kind, key_id, master.key_id, api_key_masked), out)
    return bytes([FORMAT]) + nonce + bytes(out)


def open_into(master: MasterKey, entry: SealedEntry) -> bytearray:
    """Decrypt ``entry`` into a new buffer that the caller must ``wipe``. Raises WrongMasterKey or TamperedEntry."""
    if entry.master_key_id != master.key_id:
        raise WrongMasterKey(
            f"key entry {entry.label} is encrypted under master key {entry.master_key_id}, but the master key from "
            f"{master.source} is {master.key_id}: wrong key file or credential? (After 'bot keys rotate-master', install "
            "the new master key and restart.)"
        )
    blob = entry.ciphertext
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES + 7 or blob[0] != FORMAT:
        raise TamperedEntry(f"key entry {entry.label}: the ciphertext is malformed (truncated or of an unknown format)")
    nonce, body = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    aad = associated_data(entry.venue, entry.kind, entry.key_id, entry.master_key_id, entry.api_key_masked)
    buf = bytearray(len(body) - TAG_BYTES)
    try:
        master.aead().decrypt_into(nonce, body, aad, buf)
    except InvalidTag:
        wipe(buf)  # decrypt_into leaves unauthenticated plaintext behind on failure
        raise TamperedEntry(
            f"key entry {entry.label} fails authentication under the right master key ({master.key_id}): its ciphertext "
            "or its labels (venue, kind, key id, masked API key) were changed, or entries were swapped. Remove it "
            "(bot keys remove) and add the key again from the venue"
        ) from None
    if _field_spans(buf) is None:
        wipe(buf)
        raise TamperedEntry(f"key entry {entry.label}: decrypts but its content is malformed")
    return buf


def credentials_from(buf: bytearray, entry: SealedEntry) -> Credentials:
    """Build the venue credentials of ``entry`` from its opened buffer (left for the caller to wipe)."""
    spans = _field_spans(buf)
    if spans is None:
        raise TamperedEntry("key entry content is malformed")
    view = memoryview(buf)
    try:
        values = [None if span is None else str(view[span[0] : span[1]], "utf-8") for span in spans]
    except UnicodeDecodeError:
        raise TamperedEntry("key entry content is not valid text") from None
    finally:
        view.release()
    api, sec, pas = values
    if api is None or sec is None:
        raise TamperedEntry("key entry content is malformed")
    return Credentials(entry.venue, entry.kind, SecretStr(api), SecretStr(sec), SecretStr(pas) if pas is not None else None)


def register_fingerprints(buf: bytearray, label: str, redactor: Redactor = REDACTOR) -> None:
    """Let the redactor recognise this entry's API key, secret and passphrase without keeping them."""
    spans = _field_spans(buf)
    if spans is None:
        return
    view = memoryview(buf)
    try:
        for name, span in zip(("API key", "secret", "passphrase"), spans, strict=True):
            if span is not None:
                redactor.add_fingerprint(view[span[0] : span[1]], f"{label} {name}")
    finally:
        view.release()


def register_exact(creds: Credentials, label: str, redactor: Redactor = REDACTOR) -> list[int | None]:
    """Mask these credentials exactly (they are held in memory anyway). Returns the handles for ``remove``."""
    handles = [
        redactor.add(creds.api_key.get_secret_value(), f"{label} API key"),
        redactor.add(creds.secret.get_secret_value(), f"{label} secret"),
    ]
    if creds.passphrase is not None:
        handles.append(redactor.add(creds.passphrase.get_secret_value(), f"{label} passphrase"))
    return handles
