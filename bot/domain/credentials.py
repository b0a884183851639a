"""API credentials as the venue adapters receive them. No I/O; the key store (bot/keys) produces them.

Two scopes, never mixed (spec 15: separate read-only and trade keys):
- ``KeyScope.READ``: market data, balances, open orders, trades, reconciliation. Never trades.
- ``KeyScope.TRADE``: create and cancel orders only. The key holder supplies it only while LIVE is armed.

Every secret is a ``SecretStr``: ``repr``/``str`` print ``**********``, so a credential that reaches a log line
or an exception message leaks nothing. Read the value only at the point of use (``.get_secret_value()``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum

from pydantic import SecretStr


class KeyScope(str, Enum):
    READ = "read"
    TRADE = "trade"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Credentials:
    """One API key of one venue. ``passphrase`` is for venues that need a third secret (e.g. OKX)."""

    venue: str
    scope: KeyScope
    api_key: SecretStr
    secret: SecretStr
    passphrase: SecretStr | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.scope, KeyScope):
            raise TypeError("Credentials.scope must be a KeyScope")
        for name in ("api_key", "secret"):
            value = getattr(self, name)
            if not isinstance(value, SecretStr):
                raise TypeError(f"Credentials.{name} must be a SecretStr (never a plain str)")
            if not value.get_secret_value().strip():
                raise ValueError(f"Credentials.{name} is empty")
        if self.passphrase is not None and not isinstance(self.passphrase, SecretStr):
            raise TypeError("Credentials.passphrase must be a SecretStr")

    def fingerprint(self) -> str:
        """A short, non-reversible identifier for logs and audit rows (never the key itself)."""
        digest = hashlib.sha256(f"{self.venue}|{self.scope.value}|{self.api_key.get_secret_value()}".encode()).hexdigest()
        return f"{self.venue}:{self.scope.value}:{digest[:10]}"

    def __repr__(self) -> str:
        return f"Credentials(venue={self.venue!r}, scope={self.scope.value}, key={self.fingerprint()})"
