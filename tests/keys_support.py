"""Helpers for the key-store tests: random credentials known only by their digests, reachability scans."""

from __future__ import annotations

import base64
import gc
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from bot.keys.master import write_new_key_file


def digest(data: str | bytes | bytearray) -> bytes:
    return hashlib.sha256(data.encode() if isinstance(data, str) else bytes(data)).digest()


@dataclass(frozen=True)
class SecretSet:
    """Clear values a test needs to search for in logs, dumps and messages (held by the test on purpose)."""

    values: dict[str, str]

    def found_in(self, text: str) -> list[str]:
        return [name for name, value in self.values.items() if value in text]

    def found_in_bytes(self, blob: bytes) -> list[str]:
        return [name for name, value in self.values.items() if value.encode() in blob]


def new_api_key() -> str:
    return secrets.token_hex(32)  # 64 characters, like a Binance key


def new_key_file(tmp_path: Path, name: str = "master.key") -> Path:
    path = tmp_path / name
    write_new_key_file(path)
    return path


def key_file_forms(path: Path) -> dict[str, str]:
    """The master key's text forms, read back from its file (for leak scans)."""
    raw = base64.b64decode(path.read_bytes().strip())
    return {
        "master key (base64)": base64.b64encode(raw).decode(),
        "master key (hex)": raw.hex(),
        "master key (urlsafe)": base64.urlsafe_b64encode(raw).decode(),
    }


def key_file_digests(path: Path) -> set[bytes]:
    raw = base64.b64decode(path.read_bytes().strip())
    return {digest(raw), digest(base64.b64encode(raw)), digest(raw.hex())}


def reachable(digests: set[bytes], lengths: set[int], *, ignore_modules: tuple[str, ...] = ()) -> list[str]:
    """Types (``module.Name``) of the live container objects that refer to a str/bytes/bytearray with one of
    these digests, except objects of ``ignore_modules`` (e.g. the fake venue, which knows its keys).

    Python strings cannot be wiped; what the key store promises is that nothing *reachable* holds a secret
    once it is dropped. This walks every object the garbage collector tracks and their referents."""
    gc.collect()
    found: list[str] = []
    for obj in gc.get_objects():
        module = type(obj).__module__
        module = module if isinstance(module, str) else ""
        if ignore_modules and module.startswith(ignore_modules):
            continue
        try:
            refs = gc.get_referents(obj)
        except Exception:  # pragma: no cover - exotic extension objects
            continue
        for ref in refs:
            if isinstance(ref, (str, bytes, bytearray)) and len(ref) in lengths:
                if digest(ref) in digests:
                    found.append(f"{module}.{type(obj).__name__}")
    return found


def write_mode(path: Path, mode: int) -> None:
    os.chmod(path, mode)
