"""Triple barrier per position (seed 004): take-profit, stop-loss and time limit, chosen at entry.

An entry intent may carry a ``Barrier``. When its fills open a strategy's position in an asset, the barrier is
armed on that position: prices are distances from the position's average entry price (they follow it while
the position grows), the time limit counts from the first fill. A long exits at the bid, a short at the ask:

    long:  bid >= entry x (1 + tp)  or  bid <= entry x (1 - sl)
    short: ask <= entry x (1 - tp)  or  ask >= entry x (1 + sl)
    both:  event time >= opened + time_limit

Whichever is touched first triggers the exit; the engine then closes the position with reduce-only
marketable slices that pass through risk like any order. When the position is flat the barrier is gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain.intent import Barrier
from bot.domain.market import Tick
from bot.domain.money import ONE

BPS = Decimal(10_000)
NS = 1_000_000_000


@dataclass(slots=True)
class ArmedBarrier:
    strategy_id: str
    asset: str
    barrier: Barrier
    long: bool
    entry: Decimal
    opened_ns: int
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    deadline_ns: int | None = None
    triggered: str = ""  # take_profit | stop_loss | time_limit

    def reprice(self, entry: Decimal) -> None:
        self.entry = entry
        b = self.barrier
        sign = ONE if self.long else -ONE
        self.take_profit = None if b.take_profit_bps is None else entry * (ONE + sign * b.take_profit_bps / BPS)
        self.stop_loss = None if b.stop_loss_bps is None else entry * (ONE - sign * b.stop_loss_bps / BPS)
        self.deadline_ns = None if b.time_limit_s is None else self.opened_ns + b.time_limit_s * NS

    def touched(self, tick: Tick) -> str:
        if self.long:
            px = tick.bid
            if self.take_profit is not None and px >= self.take_profit:
                return "take_profit"
            if self.stop_loss is not None and px <= self.stop_loss:
                return "stop_loss"
        else:
            px = tick.ask
            if self.take_profit is not None and px <= self.take_profit:
                return "take_profit"
            if self.stop_loss is not None and px >= self.stop_loss:
                return "stop_loss"
        if self.deadline_ns is not None and tick.ts_local_ns >= self.deadline_ns:
            return "time_limit"
        return ""


class BarrierBook:
    def __init__(self) -> None:
        self.armed: dict[tuple[str, str], ArmedBarrier] = {}
        self.by_asset: dict[str, list[ArmedBarrier]] = {}

    def on_position(self, strategy_id: str, asset: str, qty: Decimal, avg_price: Decimal, ts_ns: int, barrier: Barrier | None) -> str:
        """After a fill: the strategy's position in the asset is ``qty`` at ``avg_price``. Returns what changed."""
        key = (strategy_id, asset)
        current = self.armed.get(key)
        if qty == 0:
            if current is not None:
                self._remove(key)
                return "disarmed"
            return ""
        long = qty > 0
        if current is not None and current.long == long:
            current.reprice(avg_price)
            return "repriced"
        if current is not None:
            self._remove(key)  # flipped through zero: the old barrier belonged to the closed position
        if barrier is None:
            return "disarmed" if current is not None else ""
        armed = ArmedBarrier(strategy_id, asset, barrier, long, avg_price, ts_ns)
        armed.reprice(avg_price)
        self.armed[key] = armed
        self.by_asset.setdefault(asset, []).append(armed)
        return "armed"

    def on_tick(self, tick: Tick) -> list[ArmedBarrier]:
        """Barriers of the tick's asset touched by it (each reported once)."""
        lst = self.by_asset.get(tick.asset)
        if not lst:
            return []
        out = []
        for b in lst:
            if not b.triggered:
                hit = b.touched(tick)
                if hit:
                    b.triggered = hit
                    out.append(b)
        return out

    def expired(self, now_ns: int) -> list[ArmedBarrier]:
        """Time limits reached without a tick (a silent market must not keep a position past its limit)."""
        out = []
        for b in self.armed.values():
            if not b.triggered and b.deadline_ns is not None and now_ns >= b.deadline_ns:
                b.triggered = "time_limit"
                out.append(b)
        return out

    def _remove(self, key: tuple[str, str]) -> None:
        b = self.armed.pop(key)
        lst = self.by_asset.get(b.asset)
        if lst is not None:
            lst.remove(b)
            if not lst:
                del self.by_asset[b.asset]
