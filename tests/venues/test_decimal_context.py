"""ccxt mutates the decimal context it finds (decimal_to_precision sets ROUND_HALF_UP and traps Underflow).
Our arithmetic (average prices, P&L, risk) must never run under a context a library changed."""

from __future__ import annotations

import decimal
from decimal import Decimal

from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.venue import OrderRequest
from tests.venues.helpers import Harness


async def test_venue_calls_leave_the_decimal_context_alone(harness: Harness) -> None:
    before = decimal.getcontext().copy()
    assert before.rounding == decimal.ROUND_HALF_EVEN and not before.traps[decimal.Underflow]
    await harness.venue.place_order(
        OrderRequest("ctx-1-0", "BTC/USDT", Side.BUY, Decimal("0.1"), OrderType.LIMIT, Decimal("99.00"), TimeInForce.GTC)
    )
    await harness.venue.get_open_orders("BTC/USDT")
    await harness.venue.cancel_order("BTC/USDT", "ctx-1-0")
    after = decimal.getcontext()
    assert after.rounding == before.rounding
    assert after.traps[decimal.Underflow] == before.traps[decimal.Underflow]
    assert after.prec == before.prec
    # and the arithmetic that depends on it: half-even, not half-up
    assert (Decimal("0.125")).quantize(Decimal("0.01")) == Decimal("0.12")
