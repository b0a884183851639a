"""Fills at the adapter edge: one ledger that deduplicates them, whichever way they arrive.

A fill can reach us three ways: in the venue's answer to a submit (Binance ``newOrderRespType=FULL``), on the
user-data stream, and from the REST poll of trades. The ledger lets each trade id through once per asset. The
poll's watermark (``poll_watermark``: the highest trade id the *poll* has read) moves only with the poll,
never with a stream fill: trade ids are not contiguous, so "the highest id delivered" would hide a fill the
stream skipped below it. The ledger also keeps the venue order id -> client order id map that a REST trade
(which has no client id on Binance) needs.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from decimal import Decimal

from bot.domain.instrument import Instrument
from bot.domain.money import ZERO


class FillLedger:
    def __init__(self, capacity: int = 50_000) -> None:
        self._capacity = capacity
        self._seen: set[tuple[str, str]] = set()
        self._order: deque[tuple[str, str]] = deque()
        self.poll_watermark: dict[str, int] = {}
        self._client_ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        # (asset, venue order id) -> sum of fills delivered, for the most recently filled ``capacity`` orders (a
        # long run must not keep one per order it ever placed; an order forgotten here that fills again only
        # makes the stream's gap check poll the trades once)
        self.cum_qty: OrderedDict[tuple[str, str], Decimal] = OrderedDict()

    def first_time(self, asset: str, trade_id: str) -> bool:
        """True the first time a trade id is offered for this asset (then it is remembered)."""
        key = (asset, trade_id)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True

    def polled(self, asset: str, trade_id: str) -> None:
        """The poll has read this trade: the next poll starts after the highest such id."""
        try:
            numeric = int(trade_id)
        except ValueError:
            return
        if numeric > self.poll_watermark.get(asset, -1):
            self.poll_watermark[asset] = numeric

    def seen(self, asset: str, trade_id: str) -> bool:
        return (asset, trade_id) in self._seen

    def add_qty(self, asset: str, venue_order_id: str, qty: Decimal) -> Decimal:
        key = (asset, venue_order_id)
        cum = self.cum_qty
        total = cum.get(key, ZERO) + qty
        cum[key] = total
        cum.move_to_end(key)
        while len(cum) > self._capacity:
            cum.popitem(last=False)
        return total

    def delivered_qty(self, asset: str, venue_order_id: str) -> Decimal:
        return self.cum_qty.get((asset, venue_order_id), ZERO)

    def remember_order(self, asset: str, venue_order_id: str, client_order_id: str) -> None:
        key = (asset, venue_order_id)
        self._client_ids[key] = client_order_id
        self._client_ids.move_to_end(key)
        while len(self._client_ids) > self._capacity:
            self._client_ids.popitem(last=False)

    def client_order_id(self, asset: str, venue_order_id: str) -> str | None:
        return self._client_ids.get((asset, venue_order_id))


def fee_in_quote(fee: Decimal, fee_currency: str, inst: Instrument, price: Decimal, conversion: Decimal | None) -> Decimal | None:
    """The fee's value in the instrument's quote currency; None when it cannot be valued (no conversion rate)."""
    if fee == 0:
        return ZERO
    if fee_currency == inst.quote:
        return fee
    if fee_currency == inst.base:
        return fee * price
    if conversion is not None:
        return fee * conversion
    return None
