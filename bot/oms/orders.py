"""Order tracking: submission with deterministic client order ids, execution reports, the running sum of fills.

The venue is the source of truth and the OMS never invents fills: an order's filled quantity is the sum of
its unique fills, never a status field. Every placement, cancel, fill and refused transition is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from decimal import Decimal

from bot.domain.errors import DomainError, ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.intent import Intent, OrderType, Side
from bot.domain.money import ZERO
from bot.domain.order import LIVE_STATES, Order, OrderStatus
from bot.domain.ports import AuditSink, Clock, Venue
from bot.domain.position import Portfolio
from bot.domain.venue import ExecutionReport, OrderRequest, VenueError, VenueOrder

log = logging.getLogger(__name__)

FillListener = Callable[[Fill, Order], None]
# statuses that may exist at the venue after a failed submit: look the order up before anything else
_MAYBE_PLACED = frozenset({ErrorCode.UNKNOWN_ORDER_STATUS, ErrorCode.VENUE_UNAVAILABLE})


def client_order_id(intent_id: str, attempt: int) -> str:
    """Deterministic from the intent id and the attempt (Binance allows 36 chars of [.A-Za-z0-9:/_-])."""
    coid = f"{intent_id}-{attempt}"
    if len(coid) > 36:
        raise ValueError(f"client order id {coid!r} is longer than 36 characters")
    return coid


class OrderManager:
    def __init__(
        self,
        *,
        venue: Venue,
        venue_name: str,
        portfolio: Portfolio,
        audit: AuditSink,
        clock: Clock,
        instruments: Mapping[str, Instrument],
    ) -> None:
        self.venue = venue
        self.venue_name = venue_name
        self.portfolio = portfolio
        self.audit = audit
        self.clock = clock
        self.instruments = instruments
        self.orders: dict[str, Order] = {}
        self.live: dict[str, Order] = {}
        self.fill_listeners: list[FillListener] = []
        self.fills_applied = 0
        self.orders_submitted = 0

    # ------------------------------------------------------------------ queries
    def live_orders(self, strategy_id: str | None = None, asset: str | None = None) -> list[Order]:
        return [
            o
            for o in self.live.values()
            if (strategy_id is None or o.strategy_id == strategy_id) and (asset is None or o.asset == asset)
        ]

    def open_exposure(self, asset: str) -> tuple[Decimal, Decimal]:
        buys = sells = ZERO
        for o in self.live.values():
            if o.asset == asset:
                if o.side is Side.BUY:
                    buys += o.open_qty
                else:
                    sells += o.open_qty
        return buys, sells

    # ------------------------------------------------------------------ audit helpers
    def _event(self, order: Order, event: str, src: OrderStatus | None, code: ErrorCode | None = None, reason: str = "") -> None:
        self.audit.record(
            "order_event",
            {
                "strategy_id": order.strategy_id,
                "client_order_id": order.client_order_id,
                "venue_order_id": order.venue_order_id,
                "event": event,
                "from_status": src.value if src else None,
                "to_status": order.status.value,
                "code": code.value if code else None,
                "reason": reason,
            },
        )

    def _set_status(self, order: Order, dst: OrderStatus, event: str, code: ErrorCode | None = None, reason: str = "") -> bool:
        src = order.status
        if src is dst:
            return True  # duplicate report: idempotent
        try:
            order.transition(dst, self.clock.now_ns())
        except DomainError as exc:
            self.audit.record(
                "order_event",
                {
                    "strategy_id": order.strategy_id,
                    "client_order_id": order.client_order_id,
                    "venue_order_id": order.venue_order_id,
                    "event": "illegal",
                    "from_status": src.value,
                    "to_status": dst.value,
                    "code": ErrorCode.ILLEGAL_TRANSITION.value,
                    "reason": exc.message,
                },
            )
            return False
        self._event(order, event, src, code, reason)
        if order.status not in LIVE_STATES:
            self.live.pop(order.client_order_id, None)
        return True

    # ------------------------------------------------------------------ commands
    def build(self, intent: Intent, attempt: int = 0) -> Order:
        """Round to the venue grid and validate; raises DomainError(INVALID_ORDER)."""
        inst = self.instruments.get(intent.asset)
        if inst is None:
            raise DomainError(ErrorCode.INVALID_ORDER, f"unknown instrument {intent.asset}")
        qty = inst.round_qty(intent.qty)
        price = None
        if intent.order_type is not OrderType.MARKET:
            if intent.limit_price is None:
                raise DomainError(ErrorCode.INVALID_ORDER, f"{intent.order_type.value} order without a limit price")
            price = inst.round_price(intent.limit_price, is_buy=intent.side is Side.BUY)
        inst.validate_order(qty, price)
        return Order(
            client_order_id=client_order_id(intent.id, attempt),
            intent_id=intent.id,
            strategy_id=intent.strategy_id,
            venue=self.venue_name,
            asset=intent.asset,
            side=intent.side,
            qty=qty,
            order_type=intent.order_type,
            limit_price=price,
            tif=intent.tif,
            created_ns=self.clock.now_ns(),
            tag=intent.tag,
            reduce_only=intent.reduce_only,
        )

    async def submit(self, intent: Intent) -> Order | None:
        """Place one order for an approved intent. Never sends a second order for the same intent."""
        try:
            order = self.build(intent)
        except DomainError as exc:
            self.audit.record(
                "order_event",
                {
                    "strategy_id": intent.strategy_id,
                    "client_order_id": f"{intent.id}-0",
                    "event": "reject",
                    "from_status": None,
                    "to_status": OrderStatus.REJECTED.value,
                    "code": exc.code.value,
                    "reason": exc.message,
                },
            )
            return None
        if order.client_order_id in self.orders:
            raise DomainError(ErrorCode.INVALID_ORDER, f"intent {intent.id} was already submitted as {order.client_order_id}")
        self.orders[order.client_order_id] = order
        self.live[order.client_order_id] = order
        self.audit.record(
            "order",
            {
                "strategy_id": order.strategy_id,
                "client_order_id": order.client_order_id,
                "intent_id": order.intent_id,
                "correlation_id": intent.id,
                "venue": order.venue,
                "asset": order.asset,
                "side": order.side.value,
                "qty": order.qty,
                "order_type": order.order_type.value,
                "limit_price": order.limit_price,
                "tif": order.tif.value,
                "status": order.status.value,
            },
        )
        self._set_status(order, OrderStatus.PENDING_SUBMIT, "submit")
        self.orders_submitted += 1
        request = OrderRequest(
            order.client_order_id, order.asset, order.side, order.qty, order.order_type, order.limit_price, order.tif, order.reduce_only
        )
        try:
            report = await self.venue.place_order(request)
        except VenueError as exc:
            if exc.code in _MAYBE_PLACED:
                await self._resolve_unknown(order, exc)
            else:
                self._set_status(order, OrderStatus.REJECTED, "reject", exc.code, exc.message)
            return order
        self.on_report(report)
        return order

    async def _resolve_unknown(self, order: Order, exc: VenueError) -> None:
        """The submit may or may not have reached the venue: ask by client id, never resubmit."""
        self._event(order, "lookup", order.status, exc.code, f"submit outcome unknown ({exc.message}); looking up by client id")
        try:
            snapshot = await self.venue.fetch_order(order.asset, order.client_order_id)
        except VenueError as lookup_exc:
            # still unknown: the order stays PENDING_SUBMIT (it blocks exposure) until reconciliation resolves it
            self._event(order, "lookup", order.status, lookup_exc.code, f"lookup failed: {lookup_exc.message}")
            return
        if snapshot is None:
            self._set_status(order, OrderStatus.REJECTED, "reject", exc.code, "venue has no such order after an unknown-status submit")
            return
        self.apply_snapshot(order, snapshot)

    def apply_snapshot(self, order: Order, snapshot: VenueOrder) -> None:
        """Adopt the venue's view of status (not of fills: fills come only as fills, with their ids)."""
        order.venue_order_id = snapshot.venue_order_id or order.venue_order_id
        status = snapshot.status
        if status in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
            status = OrderStatus.ACCEPTED if order.status is OrderStatus.PENDING_SUBMIT else order.status
        if status is not order.status:
            self._set_status(order, status, "lookup")

    async def cancel(self, client_order_id: str, reason: str = "") -> bool:
        order = self.live.get(client_order_id)
        if order is None:
            return False
        if order.status is OrderStatus.PENDING_CANCEL:
            return True
        self._set_status(order, OrderStatus.PENDING_CANCEL, "cancel_request", reason=reason)
        try:
            report = await self.venue.cancel_order(order.asset, order.client_order_id, order.venue_order_id)
        except VenueError as exc:
            self._event(order, "cancel_failed", order.status, exc.code, exc.message)
            return False
        self.on_report(report)
        return True

    async def cancel_all(self, asset: str | None = None, reason: str = "") -> int:
        count = 0
        for order in list(self.live.values()):
            if asset is None or order.asset == asset:
                if await self.cancel(order.client_order_id, reason):
                    count += 1
        return count

    # ------------------------------------------------------------------ venue events
    def on_report(self, report: ExecutionReport) -> None:
        order = self.orders.get(report.client_order_id)
        if order is None:
            self.audit.record(
                "order_event",
                {
                    "client_order_id": report.client_order_id,
                    "venue_order_id": report.venue_order_id,
                    "event": "unknown_order",
                    "from_status": None,
                    "to_status": report.status.value,
                    "code": None,
                    "reason": "execution report for an order this OMS did not place",
                },
            )
            return
        if report.venue_order_id and not order.venue_order_id:
            order.venue_order_id = report.venue_order_id
        if report.fill is not None:
            self._apply_fill(order, report.fill)
        status = report.status
        if status in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
            # filled quantity comes from fills only; a fill-status without a fill is an acknowledgement
            if order.status is OrderStatus.PENDING_SUBMIT:
                self._set_status(order, OrderStatus.ACCEPTED, "ack")
            return
        if status is OrderStatus.ACCEPTED:
            if order.status in (OrderStatus.PENDING_SUBMIT, OrderStatus.NEW):
                self._set_status(order, OrderStatus.ACCEPTED, "ack")
            elif order.status is OrderStatus.PENDING_CANCEL and report.code is not None:
                self._set_status(order, OrderStatus.ACCEPTED, "cancel_rejected", report.code, report.reason)
            return
        if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
            if order.status is OrderStatus.FILLED:
                return  # already complete: a late cancel confirmation changes nothing
            event = {OrderStatus.CANCELED: "canceled", OrderStatus.EXPIRED: "expired", OrderStatus.REJECTED: "reject"}[status]
            self._set_status(order, status, event, report.code, report.reason)

    def _apply_fill(self, order: Order, fill: Fill) -> None:
        fill = replace(fill, intent_id=order.intent_id, strategy_id=order.strategy_id, client_order_id=order.client_order_id)
        src = order.status
        try:
            applied = order.apply_fill(fill.fill_id, fill.qty, fill.price, fill.fee_quote, fill.ts_ns)
        except DomainError as exc:
            self._event(order, "illegal", src, exc.code, exc.message)
            raise
        if not applied:
            return  # duplicate execution report
        self.portfolio.apply_fill(fill)
        self.fills_applied += 1
        self.audit.record(
            "fill",
            {
                "strategy_id": order.strategy_id,
                "fill_id": fill.fill_id,
                "client_order_id": order.client_order_id,
                "venue_order_id": fill.venue_order_id or order.venue_order_id,
                "intent_id": order.intent_id,
                "venue": fill.venue,
                "asset": fill.asset,
                "side": fill.side.value,
                "qty": fill.qty,
                "price": fill.price,
                "fee": fill.fee,
                "fee_currency": fill.fee_currency,
                "fee_quote": fill.fee_quote,
                "is_maker": fill.is_maker,
                "seq": fill.seq,
                "venue_ts_ns": fill.ts_ns,
            },
        )
        self._event(order, "fill", src, reason=f"{fill.qty}@{fill.price} id={fill.fill_id}")
        if order.status not in LIVE_STATES:
            self.live.pop(order.client_order_id, None)
        for listener in self.fill_listeners:
            listener(fill, order)
