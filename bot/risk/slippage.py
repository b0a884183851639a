"""Expected slippage of one order from L1 (and L2 when known) and its size (spec 8.3: block above threshold).

Slippage is measured against the mid, in basis points, on the part of the order expected to execute on
arrival: the order walks the best level, then the L2 levels beyond it, never past its limit price. The part
beyond the known depth is assumed to cost ``unknown_depth_bps`` past the last known level (capped at the
limit price): without depth we assume the worst, not the best. A passive order (it does not cross) and a
post-only order expect no slippage.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from bot.domain.intent import OrderType, Side
from bot.domain.market import Book, Tick
from bot.domain.money import ZERO

BPS = Decimal(10_000)


class SlippageEstimate(NamedTuple):
    bps: Decimal  # expected cost vs mid of the marketable part (positive = worse than mid)
    marketable_qty: Decimal
    avg_price: Decimal | None
    mid: Decimal
    beyond_known_depth: Decimal  # quantity priced with the unknown-depth assumption


def estimate(
    side: Side,
    qty: Decimal,
    order_type: OrderType,
    limit_price: Decimal | None,
    tick: Tick,
    book: Book | None,
    unknown_depth_bps: Decimal,
) -> SlippageEstimate:
    mid = tick.mid
    if order_type is OrderType.LIMIT_MAKER or qty <= 0 or mid <= 0:
        return SlippageEstimate(ZERO, ZERO, None, mid, ZERO)
    buy = side is Side.BUY
    limit = None if order_type is OrderType.MARKET else limit_price
    best, best_size = (tick.ask, tick.ask_size) if buy else (tick.bid, tick.bid_size)
    if limit is not None and (limit < best if buy else limit > best):
        return SlippageEstimate(ZERO, ZERO, None, mid, ZERO)  # passive: rests, no slippage expected
    levels = [(best, best_size)]
    if book is not None:
        deeper = book.asks if buy else book.bids
        levels.extend((lv.price, lv.size) for lv in deeper if (lv.price > best if buy else lv.price < best))
    left, cost, taken, last = qty, ZERO, ZERO, best
    for price, size in levels:
        if limit is not None and (price > limit if buy else price < limit):
            break
        if left <= 0:
            break
        q = min(left, size)
        if q > 0:
            cost += q * price
            taken += q
            left -= q
            last = price
    beyond = ZERO
    if left > 0 and (limit is None or len(levels) == sum(1 for p, _ in levels if (p <= limit if buy else p >= limit))):
        # the known depth ran out inside the limit: the rest is priced past the last known level
        worst = last * (1 + unknown_depth_bps / BPS) if buy else last * (1 - unknown_depth_bps / BPS)
        if limit is not None:
            worst = min(worst, limit) if buy else max(worst, limit)
        cost += left * worst
        taken += left
        beyond = left
    if taken == 0:
        return SlippageEstimate(ZERO, ZERO, None, mid, ZERO)
    avg = cost / taken
    bps = (avg - mid) / mid * BPS * (1 if buy else -1)
    return SlippageEstimate(bps, taken, avg, mid, beyond)
