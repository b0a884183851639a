"""Pre-trade estimate shown with a staged intent: expected price, notional, fee and slippage against the mid.

The model follows the simulated venue's L1 rules: a market order takes the displayed size at the opposite best
price and pays one tick per further displayed size for the remainder; a crossing limit takes the displayed size
at the best price and rests the remainder at its limit. Slippage is measured against the
mid and counted positive when it costs us.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from bot.domain.instrument import Instrument
from bot.domain.intent import Intent, OrderType, Side
from bot.domain.market import Tick
from bot.domain.money import ZERO


@dataclass(frozen=True, slots=True)
class Estimate:
    mid: Decimal | None  # reference mid at staging (the price-drift check compares against it)
    exec_price: Decimal | None  # expected average fill price (None: unknown, no market data for a market order)
    notional: Decimal | None
    fee: Decimal | None
    taker: bool
    slippage_bps: Decimal | None
    slippage_cost: Decimal | None


def estimate(intent: Intent, inst: Instrument, tick: Tick | None) -> Estimate:
    mid = tick.mid if tick is not None else None
    legs = _legs(intent, inst, tick)
    if legs is None:
        return Estimate(mid, None, None, None, True, None, None)
    notional = sum((inst.notional(q, p) for q, p, _ in legs), ZERO)
    fee = sum((inst.fees.fee(inst.notional(q, p), maker=not taker) for q, p, taker in legs), ZERO)
    taker = any(t for _, _, t in legs)
    exec_price = sum((q * p for q, p, _ in legs), ZERO) / intent.qty
    if mid is None or mid == 0:
        return Estimate(mid, exec_price, notional, fee, taker, None, None)
    per_unit = (exec_price - mid) * intent.side.sign
    cost = per_unit * intent.qty * inst.contract_size
    return Estimate(mid, exec_price, notional, fee, taker, per_unit / mid * 10_000, cost)


def _legs(intent: Intent, inst: Instrument, tick: Tick | None) -> list[tuple[Decimal, Decimal, bool]] | None:
    """(qty, price, taker) pieces of the expected execution; None when it cannot be estimated."""
    qty, limit = intent.qty, intent.limit_price
    if intent.order_type is OrderType.MARKET:
        if tick is None:
            return None
        best, size = (tick.ask, tick.ask_size) if intent.side is Side.BUY else (tick.bid, tick.bid_size)
        take = min(qty, size) if size > 0 else ZERO
        legs = [(take, best, True)] if take > 0 else []
        left = qty - take
        if left > 0:  # no depth known: one tick of slippage per displayed size consumed
            shown = size if size > 0 else left
            ticks = (left / shown).to_integral_value(rounding=ROUND_CEILING)
            legs.append((left, best + inst.tick_size * ticks * intent.side.sign, True))
        return legs
    if limit is None:
        return None
    if tick is None or intent.order_type is OrderType.LIMIT_MAKER:
        return [(qty, limit, False)]
    best, size = (tick.ask, tick.ask_size) if intent.side is Side.BUY else (tick.bid, tick.bid_size)
    crosses = (intent.side is Side.BUY and best <= limit) or (intent.side is Side.SELL and best >= limit)
    if not crosses:
        return [(qty, limit, False)]
    take = min(qty, size) if size > 0 else ZERO
    legs = [(take, best, True)] if take > 0 else []
    if qty - take > 0:
        legs.append((qty - take, limit, False))  # the remainder rests at the limit
    return legs


def drift_bps(reference: Decimal, now: Decimal) -> Decimal:
    """Absolute move from ``reference`` to ``now`` in basis points."""
    return abs(now - reference) / reference * 10_000
