"""Drawdown on account value (seed 001, regression 4: never divide by peak P&L).

    equity   = starting account value + net P&L (realised + unrealised - fees)
    drawdown = (peak equity - equity) / peak equity

It is computed only once equity has been observed: the starting account value is either configured or
valued from the venue's balances at the first marks (``AccountValue``); before that there is no drawdown,
never a phantom one. Early in a session a peak P&L of 0.50 on a 10 000 account followed by a loss of 5 is
a drawdown of 5 / 10 000.50 = 0.05 %, not 5 / 0.50 = 1000 %.

Per strategy, the equity base is ``strategy_capital[id]``; a strategy without an allocated capital has no drawdown
of its own (the account's covers it: its base would be the whole account). The throttle engages at
``throttle_at`` and lifts only below ``release_at`` (hysteresis); the kill fires once at ``kill_at`` until a
human resumes the scope, which re-bases its peak at the equity of that moment.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from bot.domain.money import ONE, ZERO
from bot.risk.limits import DrawdownLimits
from bot.risk.pnl import GLOBAL


class AccountValue:
    """The starting account value from balances: quote-currency balance plus base balances at the first marks."""

    def __init__(self, balances: Mapping[str, Decimal], quote: str, base_assets: Mapping[str, str]) -> None:
        self.balances = dict(balances)
        self.quote = quote
        self.base_assets = dict(base_assets)  # base currency -> asset symbol whose mark values it

    def value(self, marks: Mapping[str, Decimal]) -> Decimal | None:
        total = self.balances.get(self.quote, ZERO)
        for ccy, qty in self.balances.items():
            if ccy == self.quote or qty == 0:
                continue
            asset = self.base_assets.get(ccy)
            if asset is None:
                continue  # a currency we cannot value is left out (documented)
            mark = marks.get(asset)
            if mark is None:
                return None  # not observed yet
            total += qty * mark
        return total


def drawdown(peak: Decimal, equity: Decimal) -> Decimal:
    """(peak - equity) / peak, 0 when at or above the peak. ``peak`` is an account value, never a P&L."""
    if peak <= 0:
        raise ValueError("drawdown needs a positive peak account value")
    return max(ZERO, (peak - equity) / peak)


class ScopeDrawdown:
    __slots__ = ("capital", "peak", "throttled", "killed", "last")

    def __init__(self, capital: Decimal) -> None:
        self.capital = capital
        self.peak: Decimal | None = None
        self.throttled = False
        self.killed = False
        self.last: Decimal | None = None

    def observe(self, net: Decimal) -> tuple[Decimal, Decimal]:
        equity = self.capital + net
        if self.peak is None or equity > self.peak:
            self.peak = equity
        dd = drawdown(self.peak, equity) if self.peak > 0 else ZERO
        self.last = dd
        return equity, dd


class DrawdownMonitor:
    def __init__(self, limits: DrawdownLimits, start_equity: Decimal | None = None) -> None:
        self.limits = limits
        self.start_equity = start_equity
        self.scopes: dict[str, ScopeDrawdown] = {}

    @property
    def observed(self) -> bool:
        return self.start_equity is not None

    def set_start_equity(self, value: Decimal) -> None:
        if value <= 0:
            raise ValueError(f"starting account value must be positive, got {value}")
        self.start_equity = value

    def scope(self, name: str) -> ScopeDrawdown | None:
        if self.start_equity is None:
            return None
        sd = self.scopes.get(name)
        if sd is None:
            if name == GLOBAL:
                cap = self.start_equity
            else:
                cap = self.limits.strategy_capital.get(name)
                if cap is None:
                    return None  # a strategy without its own capital is covered by the account's drawdown
            sd = self.scopes[name] = ScopeDrawdown(cap)
        return sd

    def scale(self, strategy_id: str) -> Decimal:
        """Size multiplier for a strategy's new risk: the throttle of the account and of the strategy."""
        if not self.scopes:
            return ONE
        g = self.scopes.get(GLOBAL)
        s = self.scopes.get(strategy_id)
        if (g is not None and g.throttled) or (s is not None and s.throttled):
            return self.limits.throttle_scale
        return ONE

    def rebase(self, name: str) -> None:
        """A human resumed the scope: its peak restarts at the equity of now."""
        sd = self.scopes.get(name)
        if sd is not None:
            sd.peak = None
            sd.throttled = False
            sd.killed = False
