from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain.intent import Side


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (spec 8.1 Fill). ``fee`` is in ``fee_currency``; ``fee_quote`` is its value in the quote currency."""

    fill_id: str  # the venue's trade id (unique per venue and asset)
    client_order_id: str
    venue_order_id: str | None
    venue: str
    asset: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    fee_quote: Decimal
    is_maker: bool
    ts_ns: int
    intent_id: str = ""
    strategy_id: str = ""
    seq: int | None = None  # venue fill sequence number, when the venue provides one
