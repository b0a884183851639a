"""The simulated venue (spec 4.4 "Sim Engine"): the same ``Venue`` port as the live adapter, driven by market data.

It answers like Binance spot (error codes and messages of the REST API) and is deterministic given the event
stream and its seed. Its time is its injected clock, which the composition root makes follow the market data
(``observe(tick.ts_local_ns)``): in DRY_RUN and REPLAY alike the venue lives in event time, never wall time.

Matching rules:
- **Resting limit orders** fill when the opposite best price reaches them (buy: ask <= limit; sell: bid >= limit;
  ``fill_on_touch=False`` requires a strict cross) at their own limit price, as maker. Each tick's displayed size
  at the best price bounds what can fill on that tick, shared by our resting orders in price-then-time priority
  and by any taker order placed before the next tick: a large order fills in parts over several ticks.
- **Taking liquidity** (market orders, limit orders that cross on arrival): the best level first (its displayed
  size minus what we already took since the tick), then deeper levels. With an L2 book (``on_book``) the levels
  are the book's; with L1 only, ``l1_extra_levels`` synthetic levels each one tick worse and with the best
  level's displayed size (a linear-impact slippage model). A market order that exhausts the levels is EXPIRED
  with what it got (as Binance does); a crossing limit order takes only levels within its limit and rests the
  remainder (GTC) or expires it (IOC); FOK fills whole or expires untouched; LIMIT_MAKER that would cross is
  rejected.
- **Fees**: maker or taker rate of the instrument's fee model plus its fixed gas, charged in the quote currency.
- **Filters** (checked when the request arrives, like Binance's REST answer): PRICE_FILTER, LOT_SIZE and
  NOTIONAL failures raise ``VenueError(INVALID_ORDER, "Filter failure: ...", venue_code="-1013")``; an unknown
  symbol -1121; a duplicate open client order id -2010; insufficient free balance -2010
  (``INSUFFICIENT_BALANCE``); cancelling an unknown or closed order -2011.
- **Balances** (spot instruments, ``enforce_balances``): a resting buy locks its notional plus the worst fee, a
  resting sell its base quantity; an order beyond the free balance is refused (-2010). Fills always move base and
  quote; ``get_balances`` reports free and locked. Positions (``get_positions``, and the ``PositionUpdate`` pushed
  after every fill): with ``balance_positions`` a spot instrument's is the total base balance, as on a real spot
  venue (the OMS then needs its start-up baseline); otherwise, and for derivatives, the signed sum of fills.
- **Acknowledgement latency**: with ``ack_latency_ns`` > 0 (plus a seeded uniform jitter up to
  ``latency_jitter_ns``) a new order or a cancel reaches the matching engine only once the clock has moved past
  its due time; until then ``place_order`` / ``cancel_order`` return a report with status PENDING_SUBMIT /
  PENDING_CANCEL and the outcome (ACCEPTED, fills, REJECTED, CANCELED) comes later through the report sink.
  Requests are processed in the order they were sent (due times never decrease), as on one connection.
  With no latency the answer is immediate and fills of a crossing order are reported through the sink right away.

Memory is bounded: terminal orders and fills are kept for lookups (``fetch_order``, ``fetch_fills``) only up to
``history`` entries each; positions and balances are running sums.
"""

from __future__ import annotations

import random
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument, PositionSemantics
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.market import Book, Tick
from bot.domain.money import ZERO
from bot.domain.order import OrderStatus
from bot.domain.ports import Clock, ReportSink
from bot.domain.venue import Balance, ExecutionReport, OrderRequest, PositionUpdate, VenueError, VenueOrder

# Binance's answers (code, message) for what the simulated venue refuses.
DUPLICATE_ORDER = ("-2010", "Duplicate order sent.")
INSUFFICIENT_FUNDS = ("-2010", "Account has insufficient balance for requested action.")
WOULD_TAKE = ("-2010", "Order would immediately match and take.")
UNKNOWN_ORDER = ("-2011", "Unknown order sent.")
INVALID_SYMBOL = ("-1121", "Invalid symbol.")
FILTER_FAILURE = "-1013"
MISSING_PRICE = ("-1102", "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")

_OPEN = (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


@dataclass(slots=True, eq=False)
class _SimOrder:
    request: OrderRequest
    venue_order_id: str
    seq: int  # arrival order: time priority
    filled: Decimal
    status: OrderStatus
    ts_ns: int
    inst: Instrument
    locked: Decimal = ZERO  # funds still locked by the resting remainder (quote for buys, base for sells)

    @property
    def remaining(self) -> Decimal:
        return self.request.qty - self.filled


@dataclass(slots=True)
class _Request:
    """A request in flight (ack latency): a new order or a cancel, due at ``due_ns``."""

    due_ns: int
    seq: int
    kind: str  # "new" | "cancel"
    order: _SimOrder


class _Side:
    """Our resting orders on one side of one asset, in priority order (best price first, then arrival)."""

    __slots__ = ("orders", "best")

    def __init__(self) -> None:
        self.orders: list[_SimOrder] = []
        self.best: Decimal | None = None

    def add(self, order: _SimOrder, is_buy: bool) -> None:
        self.orders.append(order)
        if is_buy:
            self.orders.sort(key=lambda o: (-o.request.limit_price, o.seq))  # type: ignore[operator]
        else:
            self.orders.sort(key=lambda o: (o.request.limit_price, o.seq))
        self.best = self.orders[0].request.limit_price

    def remove(self, order: _SimOrder) -> None:
        try:
            self.orders.remove(order)
        except ValueError:
            return
        self.best = self.orders[0].request.limit_price if self.orders else None


class _AssetState:
    __slots__ = ("inst", "buys", "sells", "tick", "book", "taken", "fill_seq")

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.buys = _Side()
        self.sells = _Side()
        self.tick: Tick | None = None
        self.book: Book | None = None
        # liquidity we took since the market data last refreshed: {side sign: {price: qty}} (+1 = asks, -1 = bids)
        self.taken: dict[int, dict[Decimal, Decimal]] = {1: {}, -1: {}}
        self.fill_seq = 0


class SimulatedVenue:
    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        clock: Clock,
        *,
        name: str = "sim",
        balances: Mapping[str, Decimal] | None = None,
        ack_latency_ns: int = 0,
        latency_jitter_ns: int = 0,
        seed: int = 0,
        l1_extra_levels: int = 20,
        fill_on_touch: bool = True,
        enforce_balances: bool = False,  # the composition root turns it on (sim.enforce_balances, default true)
        history: int = 10_000,
        follow_clock: bool = True,
        balance_positions: bool = False,
    ) -> None:
        if ack_latency_ns < 0 or latency_jitter_ns < 0:
            raise ValueError("latencies must not be negative")
        if l1_extra_levels < 0 or history < 1:
            raise ValueError("l1_extra_levels must be >= 0 and history >= 1")
        self.name = name
        self._instruments = dict(instruments)
        self._clock = clock
        # the venue moves its clock with the market data, unless its owner (the engine, sharing it) already does
        self._observe = getattr(clock, "observe", None) if follow_clock else None
        self._sink: ReportSink | None = None
        self._assets = {a: _AssetState(i) for a, i in self._instruments.items()}
        self._open: dict[str, _SimOrder] = {}  # client order id -> open (or in-flight) order
        self._closed: OrderedDict[str, _SimOrder] = OrderedDict()  # bounded history of terminal orders
        self._inflight: deque[_Request] = deque()  # due times never decrease (one connection, in order)
        self._total: dict[str, Decimal] = {k: Decimal(v) for k, v in (balances or {}).items()}
        self._locked: dict[str, Decimal] = {}
        self._positions: dict[str, Decimal] = {}
        self._fills: dict[str, deque[Fill]] = {}
        self._latency = ack_latency_ns
        self._jitter = latency_jitter_ns
        self._rng = random.Random(seed)
        self._extra_levels = l1_extra_levels
        self._touch = fill_on_touch
        self._enforce = enforce_balances
        self._history = history
        # spot position semantics of a real venue (total base balance); False: the signed sum of this venue's fills
        # (what an OMS without a start-up baseline expects). The composition root turns it on.
        self._balance_positions = balance_positions
        self._next_order = 1
        self._seq = 0
        self._last_due = 0
        self.fill_count = 0

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
        """Advance event time, process requests now due, then match resting orders against the new L1."""
        if self._observe is not None:
            self._observe(tick.ts_local_ns)
        if self._inflight and self._inflight[0].due_ns <= self._clock.now_ns():
            self._process_due(tick.asset, tick)
        state = self._assets.get(tick.asset)
        if state is None:
            return
        state.tick = tick
        taken = state.taken
        if taken[1] or taken[-1]:
            taken[1].clear()
            taken[-1].clear()
        buys, sells = state.buys, state.sells
        if buys.best is not None and (tick.ask <= buys.best if self._touch else tick.ask < buys.best):
            self._match_resting(state, buys, Side.BUY, tick)
        if sells.best is not None and (tick.bid >= sells.best if self._touch else tick.bid > sells.best):
            self._match_resting(state, sells, Side.SELL, tick)

    def on_book(self, book: Book) -> None:
        if self._observe is not None:
            self._observe(book.ts_local_ns)
        state = self._assets.get(book.asset)
        if state is not None:
            state.book = book
            state.taken[1].clear()
            state.taken[-1].clear()
        if self._inflight and self._inflight[0].due_ns <= self._clock.now_ns():
            self._process_due(book.asset, None)

    def _match_resting(self, state: _AssetState, side: _Side, order_side: Side, tick: Tick) -> None:
        is_buy = order_side is Side.BUY
        for order in list(side.orders):
            limit = order.request.limit_price
            assert limit is not None
            if is_buy:
                if not (tick.ask <= limit if self._touch else tick.ask < limit):
                    break
                best, available = tick.ask, tick.ask_size
                taken = state.taken[1]
            else:
                if not (tick.bid >= limit if self._touch else tick.bid > limit):
                    break
                best, available = tick.bid, tick.bid_size
                taken = state.taken[-1]
            available -= taken.get(best, ZERO)
            if available <= 0:
                break
            qty = min(order.remaining, available)
            taken[best] = taken.get(best, ZERO) + qty
            self._fill(order, qty, limit, maker=True)

    # ------------------------------------------------------------------ port: orders
    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        coid = request.client_order_id
        if coid in self._open:
            raise VenueError(ErrorCode.ORDER_REJECTED, DUPLICATE_ORDER[1], venue_code=DUPLICATE_ORDER[0])
        state = self._assets.get(request.asset)
        if state is None:
            raise VenueError(ErrorCode.INVALID_ORDER, f"{INVALID_SYMBOL[1]} ({request.asset})", venue_code=INVALID_SYMBOL[0])
        inst = state.inst
        is_market = request.order_type is OrderType.MARKET
        if not is_market and request.limit_price is None:
            raise VenueError(ErrorCode.INVALID_ORDER, MISSING_PRICE[1], venue_code=MISSING_PRICE[0])
        failure = inst.check_order(request.qty, None if is_market else request.limit_price)
        if failure is not None:
            raise VenueError(ErrorCode.INVALID_ORDER, f"Filter failure: {failure.filter} ({failure.message})", venue_code=FILTER_FAILURE)
        if is_market and state.tick is not None:
            ref = (state.tick.bid + state.tick.ask) / 2  # Binance checks a market order's notional at the average price
            notional = inst.notional(request.qty, ref)
            if notional < inst.min_notional:
                raise VenueError(
                    ErrorCode.INVALID_ORDER,
                    f"Filter failure: NOTIONAL ({request.asset}: notional {notional} is below the minimum {inst.min_notional})",
                    venue_code=FILTER_FAILURE,
                )
        if is_market and state.tick is None:
            raise VenueError(ErrorCode.MARKET_DATA_STALE, f"no market data for {request.asset} yet: a market order has no price")
        now = self._clock.now_ns()
        order = _SimOrder(request, str(self._next_order), self._next_seq(), ZERO, OrderStatus.PENDING_SUBMIT, now, inst)
        self._next_order += 1
        self._lock_funds(order, state)  # raises INSUFFICIENT_BALANCE: the order never existed
        self._open[coid] = order
        if self._latency or self._jitter:
            self._inflight.append(_Request(self._due(now), order.seq, "new", order))
            return self._report(order, OrderStatus.PENDING_SUBMIT, reason="in flight to the matching engine")
        return self._activate(order, state, emit_ack=False)

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport:
        order = self._open.get(client_order_id)
        if order is None or order.request.asset != asset:
            raise VenueError(ErrorCode.ORDER_REJECTED, UNKNOWN_ORDER[1], venue_code=UNKNOWN_ORDER[0])
        if self._latency or self._jitter:
            self._inflight.append(_Request(self._due(self._clock.now_ns()), self._next_seq(), "cancel", order))
            return self._report(order, OrderStatus.PENDING_CANCEL, reason="cancel in flight to the matching engine")
        if order.status is OrderStatus.PENDING_SUBMIT:  # pragma: no cover - only with latency
            raise VenueError(ErrorCode.ORDER_REJECTED, UNKNOWN_ORDER[1], venue_code=UNKNOWN_ORDER[0])
        self._terminate(order, OrderStatus.CANCELED)
        return self._report(order, OrderStatus.CANCELED, reason="canceled by request")

    async def fetch_order(self, asset: str, client_order_id: str) -> VenueOrder | None:
        order = self._open.get(client_order_id) or self._closed.get(client_order_id)
        if order is None or order.request.asset != asset or order.status is OrderStatus.PENDING_SUBMIT:
            return None
        return self._snapshot(order)

    async def get_open_orders(self, asset: str | None = None) -> Sequence[VenueOrder]:
        return [
            self._snapshot(o)
            for o in sorted(self._open.values(), key=lambda o: o.seq)
            if o.status in _OPEN and (asset is None or o.request.asset == asset)
        ]

    async def get_balances(self) -> Mapping[str, Balance]:
        out = {}
        for a in sorted(self._total):
            locked = self._locked.get(a, ZERO)
            out[a] = Balance(a, self._total[a] - locked, locked)
        return out

    async def get_positions(self) -> Mapping[str, Decimal]:
        """Per instrument: spot = total base balance (what a spot venue holds), derivatives = signed contracts."""
        return {a: self._venue_position(st) for a, st in sorted(self._assets.items())}

    async def fetch_position_snapshot(self, asset: str) -> Decimal:
        state = self._assets.get(asset)
        return ZERO if state is None else self._venue_position(state)

    async def fetch_fills(self, asset: str, since_fill_id: str | None = None) -> Sequence[Fill]:
        fills = list(self._fills.get(asset, ()))
        if since_fill_id is not None:
            ids = [f.fill_id for f in fills]
            if since_fill_id in ids:
                fills = fills[ids.index(since_fill_id) + 1 :]
        return fills

    # ------------------------------------------------------------------ introspection (tests, reports)
    def open_order_count(self) -> int:
        return len(self._open)

    def event_time_ns(self) -> int:
        return self._clock.now_ns()

    # ------------------------------------------------------------------ internals: requests
    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _due(self, now: int) -> int:
        jitter = self._rng.randint(0, self._jitter) if self._jitter else 0
        due = max(now + self._latency + jitter, self._last_due)
        self._last_due = due
        return due

    def _process_due(self, asset: str, tick: Tick | None) -> None:
        now = self._clock.now_ns()
        inflight = self._inflight
        while inflight and inflight[0].due_ns <= now:
            req = inflight.popleft()
            order = req.order
            state = self._assets[order.request.asset]
            if req.kind == "new":
                if order.status is OrderStatus.PENDING_SUBMIT:  # not cancelled meanwhile
                    self._activate(order, state, emit_ack=True)
            elif order.status in _OPEN:
                self._terminate(order, OrderStatus.CANCELED)
                self._emit(self._report(order, OrderStatus.CANCELED, reason="canceled by request"))
            elif order.status is OrderStatus.PENDING_SUBMIT:  # pragma: no cover - cancels never overtake orders
                self._terminate(order, OrderStatus.CANCELED)
                self._emit(self._report(order, OrderStatus.CANCELED, reason="canceled before it reached the book"))
            else:
                # the order ended before the cancel arrived (filled or expired): Binance answers -2011
                self._emit(
                    self._report(order, order.status, code=ErrorCode.ORDER_REJECTED, reason=f"cancel: {UNKNOWN_ORDER[0]} {UNKNOWN_ORDER[1]}")
                )

    def _activate(self, order: _SimOrder, state: _AssetState, *, emit_ack: bool) -> ExecutionReport:
        """The order reaches the matching engine now: reject, take liquidity, rest or expire."""
        req = order.request
        tick = state.tick
        is_buy = req.side is Side.BUY
        limit = req.limit_price
        crosses = False
        if req.order_type is OrderType.MARKET:
            if tick is None:  # pragma: no cover - refused at placement
                return self._reject(order, ErrorCode.MARKET_DATA_STALE, "no market data", emit_ack)
        elif tick is not None:
            crosses = tick.ask <= limit if is_buy else tick.bid >= limit  # type: ignore[operator]
        if crosses and req.order_type is OrderType.LIMIT_MAKER:
            return self._reject(order, ErrorCode.ORDER_REJECTED, f"{WOULD_TAKE[0]} {WOULD_TAKE[1]}", emit_ack)
        if req.order_type is not OrderType.MARKET and req.tif is TimeInForce.FOK:
            fillable = sum((size for _p, size in self._levels(state, req.side, limit)), ZERO) if crosses else ZERO
            if fillable < req.qty:
                self._terminate(order, OrderStatus.EXPIRED)
                report = self._report(order, OrderStatus.EXPIRED, reason="FOK: not fully fillable")
                if emit_ack:
                    self._emit(report)
                return report
        order.status = OrderStatus.ACCEPTED
        ack = self._report(order, OrderStatus.ACCEPTED, latency_ns=self._clock.now_ns() - order.ts_ns)
        if emit_ack:
            self._emit(ack)
        if req.order_type is OrderType.MARKET or crosses:
            self._take(order, state, limit if req.order_type is not OrderType.MARKET else None)
        if order.status in _OPEN:
            if req.order_type is OrderType.MARKET:
                self._terminate(order, OrderStatus.EXPIRED)
                self._emit(self._report(order, OrderStatus.EXPIRED, reason="market order: no more liquidity"))
            elif req.tif is TimeInForce.IOC or req.tif is TimeInForce.FOK:
                self._terminate(order, OrderStatus.EXPIRED)
                self._emit(self._report(order, OrderStatus.EXPIRED, reason=f"{req.tif.value} remainder"))
            else:
                (state.buys if is_buy else state.sells).add(order, is_buy)
        return ack

    def _reject(self, order: _SimOrder, code: ErrorCode, reason: str, emit: bool) -> ExecutionReport:
        self._terminate(order, OrderStatus.REJECTED)
        if not emit:
            venue_code, _, message = reason.partition(" ")
            raise VenueError(code, message, venue_code=venue_code)
        report = self._report(order, OrderStatus.REJECTED, code=code, reason=reason)
        self._emit(report)
        return report

    def _terminate(self, order: _SimOrder, status: OrderStatus) -> None:
        order.status = status
        req = order.request
        state = self._assets[req.asset]
        (state.buys if req.side is Side.BUY else state.sells).remove(order)
        self._unlock(order)
        self._open.pop(req.client_order_id, None)
        closed = self._closed
        closed[req.client_order_id] = order
        if len(closed) > self._history:
            closed.popitem(last=False)

    # ------------------------------------------------------------------ internals: liquidity
    def _levels(self, state: _AssetState, side: Side, limit: Decimal | None) -> Iterator[tuple[Decimal, Decimal]]:
        """(price, available size) levels an order on ``side`` can take, best first, within ``limit``."""
        tick = state.tick
        if tick is None:
            return
        inst = state.inst
        if side is Side.BUY:
            best, size = tick.ask, tick.ask_size
        else:
            best, size = tick.bid, tick.bid_size
        sign = side.sign
        taken = state.taken[sign]

        def within(price: Decimal) -> bool:
            return limit is None or (price <= limit if sign > 0 else price >= limit)

        if not within(best):
            return
        left = size - taken.get(best, ZERO)
        if left > 0:
            yield best, left
        book = state.book
        if book is not None:
            levels = book.asks if sign > 0 else book.bids
            for lv in levels:
                if (lv.price > best) if sign > 0 else (lv.price < best):
                    if not within(lv.price):
                        return
                    left = lv.size - taken.get(lv.price, ZERO)
                    if left > 0:
                        yield lv.price, left
            return
        for j in range(1, self._extra_levels + 1):
            price = best + inst.tick_size * j * sign
            if price <= 0 or not within(price):
                return
            left = size - taken.get(price, ZERO)
            if left > 0:
                yield price, left

    def _take(self, order: _SimOrder, state: _AssetState, limit: Decimal | None) -> None:
        side = order.request.side
        taken = state.taken[side.sign]
        for price, available in list(self._levels(state, side, limit)):
            left = order.remaining
            if left <= 0:
                break
            qty = min(left, available)
            taken[price] = taken.get(price, ZERO) + qty
            self._fill(order, qty, price, maker=False)

    # ------------------------------------------------------------------ internals: funds
    def _lock_funds(self, order: _SimOrder, state: _AssetState) -> None:
        inst = state.inst
        if not self._enforce or inst.semantics is not PositionSemantics.SPOT:
            return
        req = order.request
        worst_fee = max(inst.fees.maker, inst.fees.taker, ZERO)
        if req.side is Side.BUY:
            asset = inst.quote
            if req.order_type is OrderType.MARKET:
                cost = ZERO
                left = req.qty
                for price, size in self._levels(state, Side.BUY, None):
                    take = min(left, size)
                    cost += inst.notional(take, price)
                    left -= take
                    if left <= 0:
                        break
                need = cost * (1 + worst_fee) + inst.fees.gas
            else:
                need = inst.notional(req.qty, req.limit_price) * (1 + worst_fee) + inst.fees.gas  # type: ignore[arg-type]
        else:
            asset = inst.base
            need = req.qty
        free = self._total.get(asset, ZERO) - self._locked.get(asset, ZERO)
        if need > free:
            raise VenueError(
                ErrorCode.INSUFFICIENT_BALANCE,
                f"{INSUFFICIENT_FUNDS[1]} (needs {need} {asset}, free {free})",
                venue_code=INSUFFICIENT_FUNDS[0],
            )
        order.locked = need
        self._locked[asset] = self._locked.get(asset, ZERO) + need

    def _unlock(self, order: _SimOrder, amount: Decimal | None = None) -> None:
        if not order.locked:
            return
        inst = order.inst
        asset = inst.quote if order.request.side is Side.BUY else inst.base
        release = order.locked if amount is None else min(amount, order.locked)
        order.locked -= release
        self._locked[asset] -= release

    # ------------------------------------------------------------------ internals: fills and reports
    def _fill(self, order: _SimOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        req = order.request
        inst = order.inst
        state = self._assets[req.asset]
        notional = inst.notional(qty, price)
        fee = inst.fees.fee(notional, maker=maker)
        if order.locked:
            if req.side is Side.BUY:
                rate = max(inst.fees.maker, inst.fees.taker, ZERO)
                share = notional * (1 + rate) + (inst.fees.gas if order.filled + qty == req.qty else ZERO)
            else:
                share = qty
            self._unlock(order, share)
        order.filled += qty
        state.fill_seq += 1
        self.fill_count += 1
        now = self._clock.now_ns()
        fill = Fill(
            fill_id=f"{self.name}-{inst.venue_symbol}-{state.fill_seq}",
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
            seq=state.fill_seq,
        )
        history = self._fills.get(req.asset)
        if history is None:
            history = self._fills[req.asset] = deque(maxlen=self._history)
        history.append(fill)
        sign = req.side.sign
        signed = qty * sign
        self._positions[req.asset] = self._positions.get(req.asset, ZERO) + signed
        if inst.semantics is PositionSemantics.SPOT:
            self._total[inst.base] = self._total.get(inst.base, ZERO) + signed
            self._total[inst.quote] = self._total.get(inst.quote, ZERO) - notional * sign - fee
        else:
            self._total[inst.quote] = self._total.get(inst.quote, ZERO) - fee
        if order.filled == req.qty:
            self._terminate(order, OrderStatus.FILLED)
            status = OrderStatus.FILLED
        else:
            order.status = status = OrderStatus.PARTIALLY_FILLED
        self._emit(self._report(order, status, fill=fill))
        # the venue's position stream (spec 10 subscribe_positions): what confirms the OMS's dirty position
        self._emit(PositionUpdate(self.name, req.asset, self._venue_position(state), now, now))

    def _venue_position(self, state: _AssetState) -> Decimal:
        """The venue's own position semantics: spot = total base balance (free + locked), derivatives = contracts."""
        inst = state.inst
        if self._balance_positions and inst.semantics is PositionSemantics.SPOT:
            return self._total.get(inst.base, ZERO)
        return self._positions.get(inst.symbol, ZERO)

    def _report(
        self,
        order: _SimOrder,
        status: OrderStatus,
        *,
        fill: Fill | None = None,
        code: ErrorCode | None = None,
        reason: str = "",
        latency_ns: int | None = None,
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
            seq=fill.seq if fill is not None else None,
            latency_ns=latency_ns,
        )

    def _emit(self, report: ExecutionReport | PositionUpdate) -> None:
        if self._sink is None:
            raise RuntimeError("simulated venue: no report sink set")
        self._sink(report)

    def _snapshot(self, order: _SimOrder) -> VenueOrder:
        r = order.request
        return VenueOrder(
            r.client_order_id, order.venue_order_id, r.asset, r.side, r.qty, order.filled, r.limit_price, r.order_type, order.status, order.ts_ns
        )

