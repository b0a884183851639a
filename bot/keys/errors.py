"""Errors of the key store. Each message says what is wrong and what to do; none ever contains a secret."""

from __future__ import annotations


class KeyStoreError(Exception):
    """Base class: any problem with the master key or the encrypted entries."""


class MasterKeyError(KeyStoreError):
    """The master key cannot be obtained: no source, a refused key file, a malformed key."""


class WrongMasterKey(KeyStoreError):
    """The loaded master key is not the one the entries were encrypted under."""


class TamperedEntry(KeyStoreError):
    """An entry fails authentication under the right master key: its ciphertext or its labels were changed."""


class KeyNotFound(KeyStoreError):
    """No entry for the requested venue and kind."""


class KeyExists(KeyStoreError):
    """An entry for this venue and kind exists already (``--replace`` swaps it)."""


class InvalidKeyInput(KeyStoreError):
    """An API key, secret or passphrase that cannot be right (empty, whitespace, too short)."""


class StoreChanged(KeyStoreError):
    """The key store changed under an operation that needs it unchanged (a concurrent add or rotation)."""


class TradeKeyUnavailable(KeyStoreError):
    """The trade key is not held: the process is not armed, or the key could not be loaded."""
