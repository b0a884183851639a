"""Master key sources: order, key file permissions (refused with the fix), key formats, LIVE refusing the env."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.config import KeysSettings
from bot.domain.modes import Mode
from bot.keys.errors import MasterKeyError
from bot.keys.master import CredentialSource, EnvSource, FileSource, MasterKey, master_key_id, resolve_source, write_new_key_file

RAW = bytes(range(32))
RAW_ID = master_key_id(RAW)


def _file(tmp_path: Path, content: bytes, mode: int = 0o600, name: str = "mk.key") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize(
    "content",
    [RAW, base64.b64encode(RAW) + b"\n", base64.urlsafe_b64encode(RAW).rstrip(b"="), RAW.hex().encode() + b"\n", b"  " + RAW.hex().upper().encode()],
    ids=["raw", "base64", "urlsafe-unpadded", "hex", "HEX"],
)
def test_key_file_formats(tmp_path: Path, content: bytes) -> None:
    with FileSource(_file(tmp_path, content)).load() as key:
        assert key.key_id == RAW_ID
    assert key.wiped


@pytest.mark.parametrize("content,message", [(b"", "empty"), (b"not a key at all!", "not a key"), (base64.b64encode(b"x" * 16), "decodes to 16 bytes"), (b"x" * 5000, "larger than")])
def test_malformed_key_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(MasterKeyError, match=message):
        FileSource(_file(tmp_path, content)).load()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o700 | 0o044])
def test_key_file_with_loose_permissions_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = _file(tmp_path, base64.b64encode(RAW), mode)
    with pytest.raises(MasterKeyError) as err:
        FileSource(path).load()
    assert f"mode {mode:04o}" in str(err.value) and f"chmod 600 {path}" in str(err.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(tmp_path: Path, mode: int) -> None:
    with FileSource(_file(tmp_path, base64.b64encode(RAW), mode)).load() as key:
        assert key.key_id == RAW_ID


def test_key_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = _file(tmp_path, base64.b64encode(RAW))
    other = os.geteuid() + 4242
    if os.geteuid() != 0:
        pytest.fail("this test changes a file's owner and needs root (the CI container runs as root)")
    os.chown(path, other, -1)
    with pytest.raises(MasterKeyError) as err:
        FileSource(path).load()
    text = str(err.value)
    assert f"uid {other}" in text and "chown" in text and "service user" in text


def test_symlinked_key_file_is_refused(tmp_path: Path) -> None:
    real = _file(tmp_path, base64.b64encode(RAW))
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(MasterKeyError, match="symbolic link"):
        FileSource(link).load()


def test_key_file_in_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(MasterKeyError, match="writable by every user"):
        FileSource(_file(d, base64.b64encode(RAW))).load()
    os.chmod(d, 0o1777)  # sticky (like /tmp): others cannot replace our file
    with FileSource(d / "mk.key").load() as key:
        assert key.key_id == RAW_ID


def test_missing_key_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="gen-master"):
        FileSource(tmp_path / "nope.key").load()


def test_gen_master_writes_0600_and_never_overwrites(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "new.key"
        key_id = write_new_key_file(path)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o600
    with FileSource(path).load() as key:
        assert key.key_id == key_id
    before = path.read_bytes()
    with pytest.raises(MasterKeyError, match="never overwritten"):
        write_new_key_file(path)
    assert path.read_bytes() == before


def _keys(**kw: object) -> KeysSettings:
    return KeysSettings(**kw)  # type: ignore[arg-type]


def test_sources_in_order_credential_then_file_then_env(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "bot-master-key").write_bytes(RAW)
    other = bytes(reversed(RAW))
    keyfile = _file(tmp_path, base64.b64encode(other))
    env_value = SecretStr(base64.b64encode(bytes(32 * [7])).decode())
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    caplog.set_level(logging.WARNING)

    source = resolve_source(_keys(master_key_file=keyfile, master_key=env_value), Mode.DRY_RUN, env)
    assert isinstance(source, CredentialSource) and source.load().key_id == RAW_ID
    assert "key file" in caplog.text and "ignored" in caplog.text
    assert env_value.get_secret_value() not in caplog.text

    source = resolve_source(_keys(master_key_file=keyfile, master_key=env_value), Mode.DRY_RUN, {})
    assert isinstance(source, FileSource) and source.load().key_id == master_key_id(other)

    source = resolve_source(_keys(master_key=env_value), Mode.DRY_RUN, {})
    assert isinstance(source, EnvSource) and source.load().key_id == master_key_id(bytes(32 * [7]))

    # a credential directory without our credential falls through to the next source
    source = resolve_source(_keys(master_key_file=keyfile), Mode.DRY_RUN, {"CREDENTIALS_DIRECTORY": str(tmp_path / "empty")})
    assert isinstance(source, FileSource)
    assert resolve_source(_keys(), Mode.DRY_RUN, {}) is None


def test_a_configured_key_file_that_is_refused_never_falls_back_to_the_env(tmp_path: Path) -> None:
    keyfile = _file(tmp_path, base64.b64encode(RAW), 0o644)
    source = resolve_source(_keys(master_key_file=keyfile, master_key=SecretStr(base64.b64encode(RAW).decode())), Mode.DRY_RUN, {})
    assert isinstance(source, FileSource)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        source.load()


def test_live_refuses_the_environment_master_key_unless_allowed() -> None:
    value = SecretStr(base64.b64encode(RAW).decode())
    with pytest.raises(MasterKeyError, match="LIVE refuses it"):
        resolve_source(_keys(master_key=value), Mode.LIVE, {})
    assert isinstance(resolve_source(_keys(master_key=value, allow_env_master_key_in_live=True), Mode.LIVE, {}), EnvSource)


def test_the_key_id_is_a_fingerprint_not_the_key() -> None:
    key = MasterKey(bytearray(RAW), "test")
    assert key.key_id.startswith("mk-") and len(key.key_id) == 19
    assert RAW.hex()[:16] not in key.key_id
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key)
    with pytest.raises(MasterKeyError, match="must be 32 bytes"):
        MasterKey(bytearray(16), "test")
