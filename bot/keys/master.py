"""The master key and where it comes from.

The master key is 32 random bytes (AES-256). It encrypts every entry of the key store and is never stored
next to it. Sources, first found wins:

1. a systemd credential: ``$CREDENTIALS_DIRECTORY/<keys.credential_name>`` (``LoadCredential=`` or
   ``LoadCredentialEncrypted=`` in the unit; systemd decrypts it into a private, non-swappable directory);
2. a key file: ``keys.master_key_file``, which must be a regular file (not a symbolic link) owned by the
   user the process runs as, readable by that user only (mode 0600 or 0400), in a directory others cannot
   write to; anything else is refused with the command that fixes it;
3. ``BOT_KEYS__MASTER_KEY`` in the environment: development only, refused in LIVE unless
   ``keys.allow_env_master_key_in_live`` is set.

The key material may be the 32 raw bytes, their base64 (``bot keys gen-master``, ``openssl rand -base64 32``)
or their hex (``openssl rand -hex 32``). A source is read afresh every time a key is needed (``load()``), and
the ``MasterKey`` it returns is wiped (its buffer zeroed) as soon as the caller is done: between start-up and
an arming the process holds no master key (except with the environment source, whose value Python keeps in
``os.environ`` and the settings object for the life of the process).
"""

from __future__ import annotations

import binascii
import hmac
import logging
import os
import pwd
import stat
from collections.abc import Mapping
from hashlib import sha256
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from bot.domain.modes import Mode
from bot.keys.errors import MasterKeyError
from bot.keys.redaction import REDACTOR, Redactor

log = logging.getLogger(__name__)

KEY_BYTES = 32
MAX_KEY_FILE = 4096
_ID_INFO = b"tgbot-trader master key id v1"
ENV_NAME = "BOT_KEYS__MASTER_KEY"


def _wipe(buf: bytearray) -> None:
    buf[:] = bytes(len(buf))  # same length: overwritten in place, no reallocation


def master_key_id(key: bytes | bytearray) -> str:
    """A public fingerprint of the key (HMAC-SHA256 under a fixed label): names the key without revealing it."""
    return "mk-" + hmac.new(key, _ID_INFO, sha256).hexdigest()[:16]


class MasterKey:
    """32 bytes in a buffer we own and zero. Use as a context manager, or call ``wipe()``."""

    __slots__ = ("_key", "key_id", "source")

    def __init__(self, key: bytearray, source: str) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"master key from {source}: must be {KEY_BYTES} bytes, got {len(key)}")
        self._key = key
        self.key_id = master_key_id(key)
        self.source = source

    @classmethod
    def generate(cls, source: str = "generated") -> "MasterKey":
        return cls(bytearray(os.urandom(KEY_BYTES)), source)

    @property
    def wiped(self) -> bool:
        return not any(self._key)

    def aead(self) -> AESGCM:
        if self.wiped:
            raise MasterKeyError(f"master key {self.key_id} was already wiped (a bug: load it again from its source)")
        return AESGCM(self._key)

    def base64(self) -> bytes:
        """The key as base64 text (for writing a key file). The caller wipes the result if it can."""
        return binascii.b2a_base64(self._key, newline=False)

    def register_fingerprints(self, redactor: Redactor = REDACTOR) -> None:
        """Let the redactor recognise the key's text forms (base64, hex) in logs without keeping the key."""
        raw = self._key
        b64 = binascii.b2a_base64(raw, newline=False)
        forms = [b64, b64.rstrip(b"="), b64.replace(b"+", b"-").replace(b"/", b"_"), binascii.hexlify(raw)]
        forms += [forms[2].rstrip(b"="), forms[3].upper()]
        for form in forms:
            redactor.add_fingerprint(form, "master key")

    def wipe(self) -> None:
        _wipe(self._key)

    def __enter__(self) -> "MasterKey":
        return self

    def __exit__(self, *exc: object) -> None:
        self.wipe()

    def __repr__(self) -> str:
        return f"MasterKey({self.key_id}, from {self.source})"

    def __reduce__(self) -> None:  # never pickled into a snapshot or a subprocess
        raise TypeError("a MasterKey cannot be pickled")


def parse_key_material(data: bytearray, where: str) -> bytearray:
    """32 raw bytes, or base64 / hex text of them (surrounding whitespace ignored). Zeroes ``data``."""
    try:
        if len(data) == KEY_BYTES:
            return bytearray(data)
        text = data.strip()
        try:
            decoded: bytes | None = None
            if len(text) == 2 * KEY_BYTES:
                try:
                    decoded = binascii.a2b_hex(text)
                except binascii.Error:
                    decoded = None
            if decoded is None:
                normal = text.replace(b"-", b"+").replace(b"_", b"/")
                normal += b"=" * (-len(normal) % 4)
                try:
                    decoded = binascii.a2b_base64(normal, strict_mode=True)
                except binascii.Error:
                    raise MasterKeyError(
                        f"master key from {where}: not a key (expected {KEY_BYTES} raw bytes, or their base64 or hex); "
                        "create one with: bot keys gen-master --out FILE"
                    ) from None
            if len(decoded) != KEY_BYTES:
                raise MasterKeyError(f"master key from {where}: decodes to {len(decoded)} bytes, expected {KEY_BYTES}")
            return bytearray(decoded)
        finally:
            _wipe(text)
    finally:
        _wipe(data)


# ---------------------------------------------------------------------------------------------- sources
class MasterKeySource(Protocol):
    description: str

    def load(self) -> MasterKey: ...


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _read_limited(fd: int, where: str) -> bytearray:
    buf = bytearray(MAX_KEY_FILE + 1)
    view = memoryview(buf)
    total = 0
    try:
        while total < len(buf):
            n = os.readv(fd, [view[total:]])
            if n == 0:
                break
            total += n
        if total > MAX_KEY_FILE:
            raise MasterKeyError(f"{where}: larger than {MAX_KEY_FILE} bytes: not a key file")
        if total == 0:
            raise MasterKeyError(f"{where}: empty: create a key with: bot keys gen-master --out FILE")
        return bytearray(view[:total])
    finally:
        view.release()
        _wipe(buf)


def check_key_file(path: Path, st: os.stat_result, what: str = "keys.master_key_file") -> None:
    """Refuse a key file that someone other than the service user could read or replace. Says how to fix it."""
    me = os.geteuid()
    if not stat.S_ISREG(st.st_mode):
        raise MasterKeyError(f"{what} {path}: not a regular file")
    if st.st_uid != me:
        raise MasterKeyError(
            f"{what} {path}: owned by {_user(st.st_uid)} (uid {st.st_uid}), but the service runs as {_user(me)} "
            f"(uid {me}); the key file must belong to the service user. Fix: chown {_user(me)} {path} && chmod 600 {path} "
            f"(or run the command as {_user(st.st_uid)})"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise MasterKeyError(
            f"{what} {path}: mode {mode:04o} lets other users read or change it; it must be readable by its owner only. "
            f"Fix: chmod 600 {path}"
        )
    parent = path.parent
    pst = os.stat(parent)
    if stat.S_IMODE(pst.st_mode) & 0o002 and not pst.st_mode & stat.S_ISVTX:
        raise MasterKeyError(
            f"{what} {path}: its directory {parent} is writable by every user, so the file could be replaced. "
            f"Fix: move the key to a private directory (install -d -m 0700 -o {_user(me)} DIR)"
        )


class FileSource:
    """A key file with strict ownership and permissions (checked on every load)."""

    def __init__(self, path: Path | str, what: str = "keys.master_key_file") -> None:
        self.path = Path(path)
        self.what = what
        self.description = f"key file {path}"

    def load(self) -> MasterKey:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise MasterKeyError(f"{self.what} {self.path}: no such file (create one with: bot keys gen-master --out {self.path})") from None
        except OSError as exc:
            if os.path.islink(self.path):
                raise MasterKeyError(
                    f"{self.what} {self.path}: is a symbolic link; point the setting at the real file"
                ) from None
            raise MasterKeyError(f"{self.what} {self.path}: cannot be opened ({exc.strerror})") from None
        try:
            check_key_file(self.path, os.fstat(fd), self.what)
            data = _read_limited(fd, f"{self.what} {self.path}")
        finally:
            os.close(fd)
        return MasterKey(parse_key_material(data, self.description), self.description)


class CredentialSource:
    """A systemd credential. systemd owns its permissions (a private directory only this service can read)."""

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.description = f"systemd credential {name}"

    def load(self) -> MasterKey:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise MasterKeyError(f"{self.description} ({self.path}): cannot be read ({exc.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise MasterKeyError(f"{self.description} ({self.path}): not a regular file")
            data = _read_limited(fd, self.description)
        finally:
            os.close(fd)
        return MasterKey(parse_key_material(data, self.description), self.description)


class EnvSource:
    """``BOT_KEYS__MASTER_KEY``: development only."""

    description = f"environment variable {ENV_NAME}"

    def __init__(self, value: SecretStr) -> None:
        self._value = value

    def load(self) -> MasterKey:
        return MasterKey(parse_key_material(bytearray(self._value.get_secret_value().encode()), self.description), self.description)


def resolve_source(
    keys: "KeysLike", mode: Mode, env: Mapping[str, str] | None = None
) -> MasterKeySource | None:
    """The first available source in order (credential, key file, environment), or None when there is none.

    A configured key file is checked when it is the chosen source (its problems are errors, not a reason to
    fall through to a weaker source)."""
    environ = os.environ if env is None else env
    available: list[MasterKeySource] = []
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / keys.credential_name
        if path.exists():
            available.append(CredentialSource(path, keys.credential_name))
    if keys.master_key_file is not None:
        available.append(FileSource(Path(keys.master_key_file)))
    if keys.master_key is not None and keys.master_key.get_secret_value():
        available.append(EnvSource(keys.master_key))
    if not available:
        return None
    chosen = available[0]
    for ignored in available[1:]:
        log.warning("master key: %s is ignored because %s takes precedence; remove one of them", ignored.description, chosen.description)
    if isinstance(chosen, EnvSource) and mode is Mode.LIVE and not keys.allow_env_master_key_in_live:
        raise MasterKeyError(
            f"the master key comes from {ENV_NAME}, which is for development: LIVE refuses it. Use a systemd credential "
            f"(LoadCredentialEncrypted={keys.credential_name}:...) or keys.master_key_file (mode 0600, owned by the service user); "
            "see docs/keys.md. To accept the risk anyway set keys.allow_env_master_key_in_live = true"
        )
    return chosen


def no_source_message(keys: "KeysLike", env: Mapping[str, str] | None = None) -> str:
    environ = os.environ if env is None else env
    cred = environ.get("CREDENTIALS_DIRECTORY")
    where = f" ($CREDENTIALS_DIRECTORY={cred} has no '{keys.credential_name}')" if cred else ""
    return (
        "no master key: provide it as a systemd credential named "
        f"'{keys.credential_name}'{where}, as keys.master_key_file (mode 0600, owned by the service user), or for "
        f"development in {ENV_NAME}. Create one with: bot keys gen-master --out FILE (see docs/keys.md)"
    )


def write_new_key_file(path: Path) -> str:
    """Generate a master key into a new file (mode 0600, never overwrites). Returns the key id."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise MasterKeyError(f"{path}: exists already; a key file is never overwritten (choose another name)") from None
    except OSError as exc:
        raise MasterKeyError(f"{path}: cannot be created ({exc.strerror})") from None
    with MasterKey.generate(str(path)) as key:
        text = bytearray(key.base64() + b"\n")
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(text)
            written = 0
            while written < len(text):
                written += os.write(fd, view[written:])
            view.release()
            os.fsync(fd)
        finally:
            os.close(fd)
            _wipe(text)
        return key.key_id


class KeysLike(Protocol):
    """The fields of ``bot.config.KeysSettings`` this module reads."""

    master_key: SecretStr | None
    master_key_file: Path | None
    credential_name: str
    allow_env_master_key_in_live: bool
