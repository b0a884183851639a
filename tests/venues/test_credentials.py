"""Credentials never show their secrets and refuse plain strings."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.domain.credentials import Credentials, KeyScope


def test_secrets_never_appear_in_repr_or_str() -> None:
    creds = Credentials("binance", KeyScope.TRADE, SecretStr("the-api-key"), SecretStr("the-secret"))
    for text in (repr(creds), str(creds), creds.fingerprint(), f"{creds}"):
        assert "the-api-key" not in text and "the-secret" not in text
    assert creds.fingerprint().startswith("binance:trade:")
    assert creds.fingerprint() != Credentials("binance", KeyScope.READ, SecretStr("the-api-key"), SecretStr("x")).fingerprint()


def test_plain_strings_and_empty_values_are_refused() -> None:
    with pytest.raises(TypeError, match="SecretStr"):
        Credentials("binance", KeyScope.READ, "k", SecretStr("s"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret is empty"):
        Credentials("binance", KeyScope.READ, SecretStr("k"), SecretStr("  "))
    with pytest.raises(TypeError, match="KeyScope"):
        Credentials("binance", "read", SecretStr("k"), SecretStr("s"))  # type: ignore[arg-type]
