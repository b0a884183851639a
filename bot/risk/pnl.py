"""Daily and cumulative loss per scope (global and per strategy), on net P&L: realised + unrealised - fees.

The trading day starts at ``reset_hour_utc`` (UTC). Daily P&L of a scope is its net P&L now minus its net P&L
when the day started (a scope first seen during the day started it at 0). Session P&L (for the portfolio loss
limit and the per-strategy loss kill) is net P&L minus a baseline taken at start and re-taken when a human
resumes that scope ("risk limits reset/confirmed", spec 16.1). Hitting the daily cap locks the scope out of new
risk until the next trading day starts, whatever happens meanwhile (seed 000 §07: don't restart same day).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bot.domain.money import ZERO
from bot.risk.limits import LossLimits
from bot.risk.transition import Transition

NS = 1_000_000_000
DAY_NS = 86_400 * NS
GLOBAL = "*"  # the account (cannot collide with a strategy id, which starts with a letter)


def scope_name(key: str) -> str:
    return "global" if key == GLOBAL else f"strategy:{key}"


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS, UTC).strftime("%Y-%m-%dT%H:%MZ")


class TradingDay:
    def __init__(self, reset_hour_utc: int) -> None:
        if not 0 <= reset_hour_utc <= 23:
            raise ValueError("reset_hour_utc must be 0..23")
        self.offset = reset_hour_utc * 3600 * NS

    def start_of(self, now_ns: int) -> int:
        return (now_ns - self.offset) // DAY_NS * DAY_NS + self.offset

    def next_start(self, now_ns: int) -> int:
        return self.start_of(now_ns) + DAY_NS


class LossMonitor:
    def __init__(self, limits: LossLimits) -> None:
        self.limits = limits
        self.day = TradingDay(limits.reset_hour_utc)
        self.day_start_ns: int | None = None
        self.daily_base: dict[str, Decimal] = {}  # scope -> net P&L at the start of the day
        self.session_base: dict[str, Decimal] = {}  # scope -> net P&L at start / last resume
        self.lockout_until: dict[str, int] = {}  # scope -> end of the lockout (start of the next trading day)
        self.killed: set[str] = set()  # "<kind>:<scope>" fired and not yet re-based (fire once)

    # ------------------------------------------------------------------ queries (pure)
    def daily_pnl(self, scope: str, net: Decimal) -> Decimal:
        return net - self.daily_base.get(scope, ZERO)

    def session_pnl(self, scope: str, net: Decimal) -> Decimal:
        return net - self.session_base.get(scope, ZERO)

    def locked(self, scope: str, now_ns: int) -> int | None:
        until = self.lockout_until.get(scope)
        return until if until is not None and now_ns < until else None

    def daily_cap(self, scope: str) -> Decimal:
        return self.limits.max_daily_loss if scope == GLOBAL else self.limits.daily_cap(scope)

    # ------------------------------------------------------------------ changes
    def roll(self, now_ns: int, nets: dict[str, Decimal]) -> list[Transition]:
        """Start a new trading day when one began: re-base daily P&L and lift the lockouts."""
        start = self.day.start_of(now_ns)
        if self.day_start_ns == start:
            return []
        first = self.day_start_ns is None
        self.day_start_ns = start
        self.daily_base = dict(nets)
        lifted = [s for s, until in self.lockout_until.items() if until <= now_ns]
        for s in lifted:
            del self.lockout_until[s]
        self.killed = {k for k in self.killed if not k.startswith("daily:")}
        if first:
            return []
        out = [Transition("daily_loss", "global", None, "NEW_DAY", None, f"trading day {iso(start)} started: daily P&L re-based", "info")]
        out += [
            Transition("daily_loss", scope_name(s), "LOCKED", "UNLOCKED", None, "next trading day: daily-loss lockout lifted", "info")
            for s in lifted
        ]
        return out

    def lock(self, scope: str, now_ns: int) -> int:
        until = self.day.next_start(now_ns)
        self.lockout_until[scope] = until
        return until

    def rebase(self, scope: str, net: Decimal) -> None:
        self.session_base[scope] = net
        self.killed = {k for k in self.killed if not (k.endswith(":" + scope) and not k.startswith("daily:"))}
