"""Venue API credentials: the one type the key store hands to the venue adapter.

Every field is a ``pydantic.SecretStr``: ``repr``/``str`` show ``**********``, so a credential that ends up
in a log line, an exception or an f-string shows nothing. The clear value is read only where a client is
built (``ccxt_fields``). The key store (``bot.keys``) creates these; the venue adapter consumes them and must
drop every reference (and close the client built from them) when told the key is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pydantic import SecretStr


class KeyKind(str, Enum):
    """A read-only key (balances, orders, positions) or a trade key (place and cancel orders)."""

    READ = "read"
    TRADE = "trade"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    api_key: SecretStr
    secret: SecretStr
    passphrase: SecretStr | None = None

    def __repr__(self) -> str:
        extra = ", passphrase=SecretStr('**********')" if self.passphrase is not None else ""
        return f"Credentials(api_key=SecretStr('**********'), secret=SecretStr('**********'){extra})"

    __str__ = __repr__

    def ccxt_fields(self) -> dict[str, str]:
        """The constructor fields of a ccxt exchange (``apiKey``, ``secret``, ``password``). Reveals the secrets:
        pass the result straight to the client and keep no other reference."""
        fields = {"apiKey": self.api_key.get_secret_value(), "secret": self.secret.get_secret_value()}
        if self.passphrase is not None:
            fields["password"] = self.passphrase.get_secret_value()
        return fields
