"""The error taxonomy (spec section 11). Extended only by adding."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    MARKET_DATA_STALE = "MARKET_DATA_STALE"
    WS_STALE = "WS_STALE"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    ORDER_REJECTED = "ORDER_REJECTED"
    RATE_LIMITED = "RATE_LIMITED"
    ORDER_RATE_LIMIT_BREACH = "ORDER_RATE_LIMIT_BREACH"
    VENUE_UNAVAILABLE = "VENUE_UNAVAILABLE"
    INVALID_ORDER = "INVALID_ORDER"
    RISK_BLOCKED = "RISK_BLOCKED"
    FILL_SEQ_GAP = "FILL_SEQ_GAP"
    POSITION_MISMATCH = "POSITION_MISMATCH"
    FLIPFLOP_DETECTED = "FLIPFLOP_DETECTED"
    SAFE_MODE = "SAFE_MODE"
    # additions (never renumber or rename the ones above)
    KILL_SWITCH = "KILL_SWITCH"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"
    UNKNOWN_ORDER_STATUS = "UNKNOWN_ORDER_STATUS"
    NOT_ARMED = "NOT_ARMED"
    NOT_CONFIRMED = "NOT_CONFIRMED"
    CLOCK_DRIFT = "CLOCK_DRIFT"
    DIRTY_POSITION = "DIRTY_POSITION"
    RECONCILE_STALE = "RECONCILE_STALE"  # no successful reconciliation for longer than oms.reconcile_max_age_s
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"  # the venue refused the key (unknown key, signature, permission)

    def __str__(self) -> str:  # "RISK_BLOCKED", not "ErrorCode.RISK_BLOCKED"
        return self.value


class DomainError(Exception):
    """An error with a taxonomy code. Messages never contain secrets."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
