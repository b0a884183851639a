"""Positions as the running sum of fills (spec 4.7.1). Long is positive; P&L formulas are hand-tested."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from bot.domain.fill import Fill
from bot.domain.money import ZERO


@dataclass(slots=True)
class Position:
    """One asset's position. ``qty`` is signed (buy +, sell -). Money in the quote currency.

    realised_pnl is gross of fees; fees are kept apart so gross and net can both be reported:
    net = realised_pnl + unrealised(mark) - fees.
    """

    asset: str
    multiplier: Decimal = Decimal(1)  # contract size; 1 for spot
    qty: Decimal = ZERO
    avg_price: Decimal = ZERO  # average entry price of the open quantity (0 when flat)
    realised_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    buy_qty: Decimal = ZERO
    sell_qty: Decimal = ZERO
    fill_count: int = 0

    def apply(self, signed_qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Apply one fill. Returns the P&L it realised (gross)."""
        realised = ZERO
        q = signed_qty
        if q == 0:
            return realised
        if q > 0:
            self.buy_qty += q
        else:
            self.sell_qty -= q
        self.fill_count += 1
        self.fees += fee
        pos = self.qty
        if pos == 0 or (pos > 0) == (q > 0):
            new_qty = pos + q
            self.avg_price = (abs(pos) * self.avg_price + abs(q) * price) / abs(new_qty)
            self.qty = new_qty
            return realised
        closed = min(abs(q), abs(pos))
        direction = 1 if pos > 0 else -1
        realised = (price - self.avg_price) * closed * direction * self.multiplier
        self.realised_pnl += realised
        new_qty = pos + q
        if new_qty == 0:
            self.avg_price = ZERO
        elif (new_qty > 0) != (pos > 0):
            self.avg_price = price  # flipped through zero: the remainder was opened at this price
        self.qty = new_qty
        return realised

    def unrealised(self, mark: Decimal) -> Decimal:
        return (mark - self.avg_price) * self.qty * self.multiplier if self.qty else ZERO

    def net_pnl(self, mark: Decimal | None) -> Decimal:
        return self.realised_pnl + (self.unrealised(mark) if mark is not None else ZERO) - self.fees


class SeenFills:
    """The (venue, fill id) pairs already applied, with the venue time of each fill, so that the oldest can be
    forgotten: a long-running service must not keep every fill id it ever saw.

    ``forget_before(cutoff_ns)`` drops ids whose fill happened before ``cutoff_ns`` (oldest arrivals first; an
    id that arrived out of order may be kept a little longer, never dropped early). Whoever forgets must also
    refuse to apply, unverified, a fill older than what it kept (the OMS does: ``oms.retention_s``).
    """

    __slots__ = ("_ids", "_order")

    def __init__(self) -> None:
        self._ids: set[tuple[str, str]] = set()
        self._order: deque[tuple[int, tuple[str, str]]] = deque()

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, key: tuple[str, str], ts_ns: int) -> bool:
        """Record ``key``; False if it was already there."""
        if key in self._ids:
            return False
        self._ids.add(key)
        self._order.append((ts_ns, key))
        return True

    def forget_before(self, cutoff_ns: int) -> int:
        """Forget ids of fills that happened before ``cutoff_ns``. Returns how many were forgotten."""
        order, ids = self._order, self._ids
        n = 0
        while order and order[0][0] < cutoff_ns:
            ids.discard(order.popleft()[1])
            n += 1
        return n


@dataclass(slots=True)
class Portfolio:
    """Positions per asset, and per (strategy, asset) for per-strategy limits and reports."""

    positions: dict[str, Position] = field(default_factory=dict)
    by_strategy: dict[tuple[str, str], Position] = field(default_factory=dict)
    seen_fill_ids: SeenFills = field(default_factory=SeenFills)

    def position(self, asset: str) -> Position:
        pos = self.positions.get(asset)
        if pos is None:
            pos = self.positions[asset] = Position(asset)
        return pos

    def strategy_position(self, strategy_id: str, asset: str) -> Position:
        key = (strategy_id, asset)
        pos = self.by_strategy.get(key)
        if pos is None:
            pos = self.by_strategy[key] = Position(asset)
        return pos

    def apply_fill(self, fill: Fill) -> bool:
        """Apply a fill once (deduplicated by venue and fill id). Returns False for a duplicate."""
        if not self.seen_fill_ids.add((fill.venue, fill.fill_id), fill.ts_ns):
            return False
        signed = fill.qty * fill.side.sign
        self.position(fill.asset).apply(signed, fill.price, fill.fee_quote)
        if fill.strategy_id:
            self.strategy_position(fill.strategy_id, fill.asset).apply(signed, fill.price, fill.fee_quote)
        return True

    def qty(self, asset: str) -> Decimal:
        pos = self.positions.get(asset)
        return pos.qty if pos is not None else ZERO

    def totals(self, marks: dict[str, Decimal]) -> tuple[Decimal, Decimal, Decimal]:
        """(realised gross, unrealised, fees) across all assets."""
        realised = sum((p.realised_pnl for p in self.positions.values()), ZERO)
        unrealised = sum((p.unrealised(marks[a]) for a, p in self.positions.items() if a in marks), ZERO)
        fees = sum((p.fees for p in self.positions.values()), ZERO)
        return realised, unrealised, fees
