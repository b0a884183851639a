"""The simulated venue (spec 4.4 "Sim Engine"): the same Venue port as the live adapter, driven by market data.

Matching rules (deterministic given the event stream):
- a resting limit order fills when the opposite best price crosses it (buy: ask <= limit; sell: bid >= limit),
  at its limit price, as maker, bounded by the displayed size at the best price;
- a limit order that crosses on arrival takes liquidity at the opposite best (taker), the rest rests
  (LIMIT_MAKER that would cross is rejected; IOC remainders expire; FOK fills whole or expires);
- a market order takes the displayed liquidity at the best price, then walks the L2 book when one is known,
  else fills the remainder at the best price plus a slippage of one tick per displayed size consumed;
- tick size, lot size and minimum notional are enforced with INVALID_ORDER rejections; fees per instrument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.market import Book, Tick
from bot.domain.money import ZERO
from bot.domain.order import OrderStatus
from bot.domain.ports import Clock, ReportSink
from bot.domain.venue import Balance, ExecutionReport, OrderRequest, PositionUpdate, VenueError, VenueOrder


@dataclass(slots=True)
class _SimOrder:
    request: OrderRequest
    venue_order_id: str
    filled: Decimal
    status: OrderStatus
    ts_ns: int


class SimulatedVenue:
    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        clock: Clock,
        *,
        name: str = "sim",
        balances: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.name = name
        self._instruments = dict(instruments)
        self._clock = clock
        self._sink: ReportSink | None = None
        self._orders: dict[str, _SimOrder] = {}
        self._resting: dict[str, dict[str, _SimOrder]] = {}
        self._last: dict[str, Tick] = {}
        self._books: dict[str, Book] = {}
        self._balances: dict[str, Decimal] = dict(balances or {})
        self._next_order = 1
        self._next_fill = 1
        self.fills: list[Fill] = []
        self._positions: dict[str, Decimal] = {}  # signed sum of fills per asset, pushed as PositionUpdate

    # ------------------------------------------------------------------ port: lifecycle
    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load_instruments(self) -> Mapping[str, Instrument]:
        return dict(self._instruments)

    def set_report_sink(self, sink: ReportSink) -> None:
        self._sink = sink

    # ------------------------------------------------------------------ market data in
    def on_tick(self, tick: Tick) -> None:
        self._last[tick.asset] = tick
        resting = self._resting.get(tick.asset)
        if not resting:
            return
        bid_left, ask_left = tick.bid_size, tick.ask_size
        for order in list(resting.values()):
            req = order.request
            if req.side is Side.BUY and req.limit_price is not None and tick.ask <= req.limit_price and ask_left > 0:
                qty = min(req.qty - order.filled, ask_left)
                ask_left -= qty
                self._fill(order, qty, req.limit_price, maker=True)
            elif req.side is Side.SELL and req.limit_price is not None and tick.bid >= req.limit_price and bid_left > 0:
                qty = min(req.qty - order.filled, bid_left)
                bid_left -= qty
                self._fill(order, qty, req.limit_price, maker=True)

    def on_book(self, book: Book) -> None:
        self._books[book.asset] = book

    # ------------------------------------------------------------------ port: orders
    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        now = self._clock.now_ns()
        if request.client_order_id in self._orders and self._orders[request.client_order_id].status in (
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
        ):
            raise VenueError(ErrorCode.ORDER_REJECTED, "Duplicate order sent.", venue_code="-2010")
        inst = self._instruments.get(request.asset)
        venue_order_id = str(self._next_order)
        self._next_order += 1
        order = _SimOrder(request, venue_order_id, ZERO, OrderStatus.ACCEPTED, now)
        self._orders[request.client_order_id] = order
        reject = self._validate(request, inst)
        if reject is not None:
            order.status = OrderStatus.REJECTED
            return self._report(order, OrderStatus.REJECTED, code=ErrorCode.INVALID_ORDER, reason=reject)
        tick = self._last.get(request.asset)
        if request.order_type is OrderType.MARKET:
            if tick is None:
                order.status = OrderStatus.REJECTED
                return self._report(order, OrderStatus.REJECTED, code=ErrorCode.MARKET_DATA_STALE, reason="no market data")
            ack = self._report(order, OrderStatus.ACCEPTED)
            self._take(order, tick, limit=None)
            if order.filled < request.qty:
                self._finish(order, OrderStatus.EXPIRED, "market order: no more liquidity")
            return ack
        crosses = tick is not None and (
            (request.side is Side.BUY and tick.ask <= request.limit_price)  # type: ignore[operator]
            or (request.side is Side.SELL and tick.bid >= request.limit_price)  # type: ignore[operator]
        )
        if crosses and request.order_type is OrderType.LIMIT_MAKER:
            order.status = OrderStatus.REJECTED
            return self._report(order, OrderStatus.REJECTED, code=ErrorCode.ORDER_REJECTED, reason="Order would immediately match and take.")
        if request.tif is TimeInForce.FOK and (not crosses or self._available(request, tick) < request.qty):
            order.status = OrderStatus.EXPIRED
            return self._report(order, OrderStatus.EXPIRED, reason="FOK: not fully fillable")
        ack = self._report(order, OrderStatus.ACCEPTED)
        if crosses and tick is not None:
            self._take(order, tick, limit=request.limit_price)
        if order.filled < request.qty:
            if request.tif is TimeInForce.IOC:
                self._finish(order, OrderStatus.EXPIRED, "IOC remainder")
            else:
                self._resting.setdefault(request.asset, {})[request.client_order_id] = order
        return ack

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport:
        order = self._orders.get(client_order_id)
        if order is None or order.status not in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED):
            raise VenueError(ErrorCode.ORDER_REJECTED, "Unknown order sent.", venue_code="-2011")
        self._resting.get(asset, {}).pop(client_order_id, None)
        order.status = OrderStatus.CANCELED
        return self._report(order, OrderStatus.CANCELED, reason="canceled by request")

    async def fetch_order(self, asset: str, client_order_id: str) -> VenueOrder | None:
        order = self._orders.get(client_order_id)
        return None if order is None else self._snapshot(order)

    async def get_open_orders(self, asset: str | None = None) -> Sequence[VenueOrder]:
        return [
            self._snapshot(o)
            for a, book in sorted(self._resting.items())
            if asset is None or a == asset
            for o in book.values()
        ]

    async def get_balances(self) -> Mapping[str, Balance]:
        return {a: Balance(a, v, ZERO) for a, v in sorted(self._balances.items())}

    async def get_positions(self) -> Mapping[str, Decimal]:
        out: dict[str, Decimal] = {}
        for f in self.fills:
            out[f.asset] = out.get(f.asset, ZERO) + f.qty * f.side.sign
        return out

    async def fetch_position_snapshot(self, asset: str) -> Decimal:
        return (await self.get_positions()).get(asset, ZERO)

    async def fetch_fills(self, asset: str, since_fill_id: str | None = None) -> Sequence[Fill]:
        fills = [f for f in self.fills if f.asset == asset]
        if since_fill_id is not None:
            ids = [f.fill_id for f in fills]
            if since_fill_id in ids:
                fills = fills[ids.index(since_fill_id) + 1 :]
        return fills

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _validate(request: OrderRequest, inst: Instrument | None) -> str | None:
        if inst is None:
            return f"Invalid symbol {request.asset}"
        try:
            inst.validate_order(request.qty, request.limit_price if request.order_type is not OrderType.MARKET else None)
        except Exception as exc:  # DomainError: the message carries the filter that failed
            return str(exc)
        if request.order_type is not OrderType.MARKET and request.limit_price is None:
            return "limit order without price"
        return None

    def _available(self, request: OrderRequest, tick: Tick | None) -> Decimal:
        if tick is None:
            return ZERO
        return tick.ask_size if request.side is Side.BUY else tick.bid_size

    def _take(self, order: _SimOrder, tick: Tick, limit: Decimal | None) -> None:
        """Take liquidity: best level first, then the L2 book when known (market orders only walk the book)."""
        req = order.request
        book = self._books.get(req.asset)
        if req.side is Side.BUY:
            levels = [(tick.ask, tick.ask_size)] + ([(lv.price, lv.size) for lv in book.asks if lv.price > tick.ask] if book else [])
        else:
            levels = [(tick.bid, tick.bid_size)] + ([(lv.price, lv.size) for lv in book.bids if lv.price < tick.bid] if book else [])
        for price, size in levels:
            if limit is not None and ((req.side is Side.BUY and price > limit) or (req.side is Side.SELL and price < limit)):
                break
            left = req.qty - order.filled
            if left <= 0:
                break
            qty = min(left, size)
            if qty > 0:
                self._fill(order, qty, price, maker=False)
        if limit is None and order.filled < req.qty and book is None:
            # no depth known: the remainder pays one tick of slippage per displayed size it consumes
            inst = self._instruments[req.asset]
            left = req.qty - order.filled
            shown = levels[0][1] if levels[0][1] > 0 else left
            ticks = (left / shown).to_integral_value(rounding="ROUND_CEILING")
            price = levels[0][0] + inst.tick_size * ticks * req.side.sign
            self._fill(order, left, price, maker=False)

    def _fill(self, order: _SimOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        req = order.request
        inst = self._instruments[req.asset]
        notional = inst.notional(qty, price)
        fee = inst.fees.fee(notional, maker=maker)
        order.filled += qty
        now = self._clock.now_ns()
        fill = Fill(
            fill_id=f"{self.name}-{self._next_fill}",
            client_order_id=req.client_order_id,
            venue_order_id=order.venue_order_id,
            venue=self.name,
            asset=req.asset,
            side=req.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_currency=inst.quote,
            fee_quote=fee,
            is_maker=maker,
            ts_ns=now,
            seq=self._next_fill,
        )
        self._next_fill += 1
        self.fills.append(fill)
        sign = req.side.sign
        self._balances[inst.base] = self._balances.get(inst.base, ZERO) + qty * sign
        self._balances[inst.quote] = self._balances.get(inst.quote, ZERO) - notional * sign - fee
        status = OrderStatus.FILLED if order.filled == req.qty else OrderStatus.PARTIALLY_FILLED
        order.status = status
        if status is OrderStatus.FILLED:
            self._resting.get(req.asset, {}).pop(req.client_order_id, None)
        self._emit(self._report(order, status, fill=fill))
        # the venue's position stream (spec 10 subscribe_positions): confirms the OMS's dirty position
        position = self._positions[req.asset] = self._positions.get(req.asset, ZERO) + qty * sign
        self._emit(PositionUpdate(self.name, req.asset, position, now, now))

    def _finish(self, order: _SimOrder, status: OrderStatus, reason: str) -> None:
        order.status = status
        self._resting.get(order.request.asset, {}).pop(order.request.client_order_id, None)
        self._emit(self._report(order, status, reason=reason))

    def _report(
        self, order: _SimOrder, status: OrderStatus, *, fill: Fill | None = None, code: ErrorCode | None = None, reason: str = ""
    ) -> ExecutionReport:
        now = self._clock.now_ns()
        return ExecutionReport(
            venue=self.name,
            client_order_id=order.request.client_order_id,
            venue_order_id=order.venue_order_id,
            status=status,
            ts_ns=now,
            local_ts_ns=now,
            fill=fill,
            cum_filled_qty=order.filled,
            code=code,
            reason=reason,
            seq=fill.seq if fill else None,
        )

    def _emit(self, report: ExecutionReport) -> None:
        if self._sink is None:
            raise RuntimeError("simulated venue: no report sink set")
        self._sink(report)

    def _snapshot(self, order: _SimOrder) -> VenueOrder:
        r = order.request
        return VenueOrder(
            r.client_order_id, order.venue_order_id, r.asset, r.side, r.qty, order.filled, r.limit_price, r.order_type, order.status, order.ts_ns
        )
