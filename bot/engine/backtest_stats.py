"""Backtest statistics collected from engine listeners, in event time: PnL, fees, fills, drawdown, Sharpe, slippage.

Definitions (docs/engine.md):
- net PnL = realised + unrealised at the marks (mids) - fees; gross = before fees;
- max drawdown = the largest fall of net PnL from its running peak, in the quote currency, and as a percentage of
  the account value (the starting balances valued at the first marks), never of the peak PnL;
- Sharpe = mean / standard deviation of 1-minute changes of net PnL over the account value, x sqrt(525,600)
  (24/7 markets);
- slippage of a fill = side x (fill price - mid when its order was sent) x quantity: > 0 paid, < 0 earned (a
  maker fill earns half the spread); reported in bps of the arrival notional, overall, for taker and maker fills.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from bot.domain.fill import Fill
from bot.domain.intent import Intent
from bot.domain.market import Tick
from bot.domain.money import ZERO
from bot.domain.order import Order


@dataclass
class Stats:
    """Backtest statistics. Money in the quote currency; drawdown and Sharpe relative to the account value."""

    account_value: Decimal = ZERO  # starting balances valued at the first marks
    orders: int = 0
    ordered_qty: Decimal = ZERO
    orders_filled: int = 0
    fills: int = 0
    filled_qty: Decimal = ZERO
    fees: Decimal = ZERO
    slippage_cost: Decimal = ZERO  # sum over fills of side * (price - arrival mid) * qty: > 0 paid, < 0 earned
    slippage_notional: Decimal = ZERO
    taker_cost: Decimal = ZERO
    taker_notional: Decimal = ZERO
    maker_cost: Decimal = ZERO
    maker_notional: Decimal = ZERO
    peak_pnl: Decimal | None = None
    max_drawdown: Decimal = ZERO  # in quote: the largest fall of net PnL from its running peak
    minute_pnl: list[Decimal] = field(default_factory=list)  # net PnL at the end of each event-time minute

    @property
    def fill_ratio(self) -> float:
        return self.orders_filled / self.orders if self.orders else 0.0

    @property
    def qty_fill_ratio(self) -> float:
        return float(self.filled_qty / self.ordered_qty) if self.ordered_qty else 0.0

    @property
    def max_drawdown_pct(self) -> float:
        return float(self.max_drawdown / self.account_value * 100) if self.account_value else 0.0

    def slippage_bps(self, cost: Decimal, notional: Decimal) -> float | None:
        return float(cost / notional * 10_000) if notional else None

    def sharpe(self) -> float | None:
        """Annualised (24/7: 525,600 minutes a year) from 1-minute returns of net PnL over the account value."""
        if not self.account_value or len(self.minute_pnl) < 3:
            return None
        prev = self.minute_pnl[0]
        returns = []
        for pnl in self.minute_pnl[1:]:
            returns.append(float((pnl - prev) / self.account_value))
            prev = pnl
        n = len(returns)
        mean = sum(returns) / n
        var = sum((r - mean) ** 2 for r in returns) / (n - 1)
        if var <= 0:
            return None
        return mean / math.sqrt(var) * math.sqrt(525_600)


class StatsCollector:
    """Engine listeners that build ``Stats`` as the backtest runs (event time only).

    ``pnl`` returns the current net PnL (realised + unrealised at the marks - fees); ``marks`` the current mids.
    Drawdown is sampled every ``sample_ns`` of event time and at every fill; Sharpe uses minute closes.
    """

    MINUTE = 60_000_000_000

    def __init__(
        self,
        pnl: Callable[[], Decimal],
        mark: Callable[[str], Decimal | None],
        account_value: Callable[[], Decimal],
        *,
        sample_ns: int = 1_000_000_000,
    ) -> None:
        self.stats = Stats()
        self._pnl = pnl
        self._mark = mark
        self._account_value = account_value
        self._sample_ns = sample_ns
        self._next_sample = 0
        self._minute = -1
        # arrival mid per order, for slippage; bounded (an order that never fills is forgotten eventually)
        self._arrival: OrderedDict[str, Decimal] = OrderedDict()
        self._max_tracked = 10_000
        self._filled_orders: set[str] = set()

    def on_tick(self, tick: Tick) -> None:
        ts = tick.ts_local_ns
        if ts < self._next_sample:
            return
        if not self.stats.account_value:
            self.stats.account_value = self._account_value()
        self._next_sample = (ts // self._sample_ns + 1) * self._sample_ns
        pnl = self._sample()
        minute = ts // self.MINUTE
        if minute != self._minute:
            self._minute = minute
            self.stats.minute_pnl.append(pnl)

    def _sample(self) -> Decimal:
        pnl = self._pnl()
        s = self.stats
        if s.peak_pnl is None or pnl > s.peak_pnl:
            s.peak_pnl = pnl
        dd = s.peak_pnl - pnl
        if dd > s.max_drawdown:
            s.max_drawdown = dd
        return pnl

    def on_submit(self, intent: Intent, order: Order) -> None:
        s = self.stats
        s.orders += 1
        s.ordered_qty += order.qty
        mid = self._mark(order.asset)
        if mid is not None:
            self._arrival[order.client_order_id] = mid
            if len(self._arrival) > self._max_tracked:
                self._arrival.popitem(last=False)

    def on_fill(self, fill: Fill, order: Order) -> None:
        s = self.stats
        s.fills += 1
        s.filled_qty += fill.qty
        s.fees += fill.fee_quote
        coid = order.client_order_id
        if coid not in self._filled_orders:
            self._filled_orders.add(coid)
            s.orders_filled += 1
        arrival = self._arrival.get(coid)
        if order.is_terminal:  # filled: nothing more will come for it
            self._filled_orders.discard(coid)
            self._arrival.pop(coid, None)
        if arrival is not None:
            cost = (fill.price - arrival) * fill.qty * fill.side.sign
            notional = arrival * fill.qty
            s.slippage_cost += cost
            s.slippage_notional += notional
            if fill.is_maker:
                s.maker_cost += cost
                s.maker_notional += notional
            else:
                s.taker_cost += cost
                s.taker_notional += notional
        self._sample()

    def finish(self) -> Stats:
        pnl = self._sample() if self.stats.account_value else self._pnl()
        if self.stats.minute_pnl and self.stats.minute_pnl[-1] != pnl:
            self.stats.minute_pnl.append(pnl)
        return self.stats
