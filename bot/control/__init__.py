"""Telegram control plane: handlers, auth (allowlist, rate limit, lockout), arming, confirmations, notifier."""
