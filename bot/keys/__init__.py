"""Encrypted key store and master-key sources (named keys, not secrets, to avoid the stdlib name)."""
