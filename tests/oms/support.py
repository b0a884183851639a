"""Test doubles for the OMS: an audit sink that checks columns, a model venue whose truth tests control."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import Intent, OrderType, Side, TimeInForce
from bot.domain.money import ZERO
from bot.domain.order import OrderStatus
from bot.domain.position import Portfolio
from bot.domain.venue import Balance, ExecutionReport, OrderRequest, PositionUpdate, VenueError, VenueOrder
from bot.engine.clock import ManualClock
from bot.oms.feed import FeedHealth
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.store.models import AUDIT_TABLES

D = Decimal
S = OrderStatus
SEC = 1_000_000_000
T0 = 1_767_225_600 * SEC  # 2026-01-01T00:00:00Z
ASSET = "BTC/USDT"
ASSET2 = "ETH/USDT"

_COLUMNS = {kind: {c.name for c in model.__table__.columns} for kind, model in AUDIT_TABLES.items()}  # type: ignore[attr-defined]


class MemoryAudit:
    """An AuditSink that keeps rows in memory and refuses columns the real tables do not have."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, row: dict[str, Any]) -> None:
        cols = _COLUMNS[kind]
        extra = {k for k in row if k not in cols and k not in ("ts_ns", "venue_ts_ns")}
        assert not extra, f"audit kind {kind!r} has no column(s) {sorted(extra)}"
        self.rows.append((kind, dict(row)))

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None

    def of(self, table: str, **match: Any) -> list[dict[str, Any]]:
        return [r for k, r in self.rows if k == table and all(r.get(key) == v for key, v in match.items())]


def instrument(symbol: str = ASSET, venue: str = "model") -> Instrument:
    base, quote = symbol.split("/")
    return Instrument(
        symbol=symbol,
        venue=venue,
        venue_symbol=base + quote,
        base=base,
        quote=quote,
        tick_size=D("0.01"),
        lot_size=D("0.001"),
        min_qty=D("0.001"),
        min_notional=D("0"),
        fees=FeeModel(maker=D("0.001"), taker=D("0.001")),
    )


@dataclass
class _VO:
    request: OrderRequest
    venue_order_id: str
    status: OrderStatus
    filled: Decimal = ZERO
    ts_ns: int = 0

    def view(self) -> VenueOrder:
        r = self.request
        return VenueOrder(r.client_order_id, self.venue_order_id, r.asset, r.side, r.qty, self.filled, r.limit_price, r.order_type, self.status, self.ts_ns)


@dataclass
class ModelVenue:
    """A venue whose truth the test drives. Stream reports go to ``outbox`` until the test delivers them.

    place modes: "ack" (accepted), "reject" (venue refusal), "timeout_placed" (the order is placed, the answer
    is lost: VENUE_UNAVAILABLE), "timeout_lost" (the request never arrived), "unknown_placed" (placed, answered
    UNKNOWN_ORDER_STATUS, like Binance -1007).
    """

    clock: ManualClock
    name: str = "model"
    place_mode: str = "ack"
    fail: dict[str, VenueError] = field(default_factory=dict)  # method -> error raised once
    orders: dict[str, _VO] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    outbox: list[ExecutionReport | PositionUpdate] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    positions_extra: dict[str, Decimal] = field(default_factory=dict)  # holdings not made by fills (deposits)
    seq: dict[str, int] = field(default_factory=dict)
    _next_id: int = 1
    _next_fill: int = 1

    def _maybe_fail(self, method: str) -> None:
        err = self.fail.pop(method, None)
        if err is not None:
            raise err

    # --- port ------------------------------------------------------------------------------
    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def load_instruments(self) -> Mapping[str, Instrument]:
        return {ASSET: instrument(ASSET, self.name), ASSET2: instrument(ASSET2, self.name)}

    def set_report_sink(self, sink: Any) -> None: ...

    def _report(self, vo: _VO, status: OrderStatus, fill: Fill | None = None, code: ErrorCode | None = None, reason: str = "") -> ExecutionReport:
        now = self.clock.now_ns()
        return ExecutionReport(self.name, vo.request.client_order_id, vo.venue_order_id, status, now, now, fill, vo.filled, code, reason)

    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        self.calls.append(("place", request.client_order_id))
        self._maybe_fail("place")
        mode = self.place_mode
        if mode == "timeout_lost":
            raise VenueError(ErrorCode.VENUE_UNAVAILABLE, "request timed out")
        if request.client_order_id in self.orders and self.orders[request.client_order_id].status in (S.ACCEPTED, S.PARTIALLY_FILLED):
            raise VenueError(ErrorCode.ORDER_REJECTED, "Duplicate order sent.", venue_code="-2010")
        vo = _VO(request, str(self._next_id), S.ACCEPTED, ts_ns=self.clock.now_ns())
        self._next_id += 1
        if mode == "reject":
            vo.status = S.REJECTED
            self.orders[request.client_order_id] = vo
            raise VenueError(ErrorCode.INSUFFICIENT_BALANCE, "Account has insufficient balance for requested action.", venue_code="-2010")
        self.orders[request.client_order_id] = vo
        if mode == "timeout_placed":
            raise VenueError(ErrorCode.VENUE_UNAVAILABLE, "request timed out")
        if mode == "unknown_placed":
            raise VenueError(ErrorCode.UNKNOWN_ORDER_STATUS, "Send status unknown; execution status unknown.", venue_code="-1007")
        return self._report(vo, S.ACCEPTED)

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport:
        self.calls.append(("cancel", client_order_id))
        self._maybe_fail("cancel")
        vo = self.orders.get(client_order_id)
        if vo is None or vo.status not in (S.ACCEPTED, S.PARTIALLY_FILLED):
            raise VenueError(ErrorCode.ORDER_REJECTED, "Unknown order sent.", venue_code="-2011")
        vo.status = S.CANCELED
        return self._report(vo, S.CANCELED, reason="canceled by request")

    async def fetch_order(self, asset: str, client_order_id: str) -> VenueOrder | None:
        self.calls.append(("fetch", client_order_id))
        self._maybe_fail("fetch")
        vo = self.orders.get(client_order_id)
        return vo.view() if vo is not None else None

    async def get_open_orders(self, asset: str | None = None) -> Sequence[VenueOrder]:
        self._maybe_fail("open_orders")
        return [vo.view() for vo in self.orders.values() if vo.status in (S.ACCEPTED, S.PARTIALLY_FILLED) and (asset is None or vo.request.asset == asset)]

    async def get_balances(self) -> Mapping[str, Balance]:
        return {}

    async def get_positions(self) -> Mapping[str, Decimal]:
        self._maybe_fail("positions")
        return self.positions()

    async def fetch_position_snapshot(self, asset: str) -> Decimal:
        return self.positions().get(asset, ZERO)

    async def fetch_fills(self, asset: str, since_fill_id: str | None = None) -> Sequence[Fill]:
        self._maybe_fail("fills")
        fills = [f for f in self.fills if f.asset == asset]
        if since_fill_id is not None:
            ids = [f.fill_id for f in fills]
            if since_fill_id in ids:
                fills = fills[ids.index(since_fill_id) + 1 :]
        return fills

    # --- truth, driven by the test -------------------------------------------------------------
    def positions(self) -> dict[str, Decimal]:
        out = dict(self.positions_extra)
        for f in self.fills:
            out[f.asset] = out.get(f.asset, ZERO) + f.qty * f.side.sign
        return out

    def execute(self, coid: str, qty: Decimal, price: Decimal | None = None, *, fee: Decimal = ZERO, fee_ccy: str = "USDT") -> tuple[Fill, ExecutionReport]:
        """The venue fills ``qty`` of an order (open, or just canceled/expired: a late fill). Queues the report."""
        vo = self.orders[coid]
        r = vo.request
        assert vo.filled + qty <= r.qty, "the model venue never overfills"
        vo.filled += qty
        seq = self.seq[r.asset] = self.seq.get(r.asset, 0) + 1
        now = self.clock.now_ns()
        fill = Fill(
            f"t{self._next_fill}", coid, vo.venue_order_id, self.name, r.asset, r.side, qty,
            price if price is not None else (r.limit_price or D("100")), fee, fee_ccy, fee, True, now, seq=seq,
        )
        self._next_fill += 1
        self.fills.append(fill)
        if vo.status in (S.ACCEPTED, S.PARTIALLY_FILLED):
            vo.status = S.FILLED if vo.filled == r.qty else S.PARTIALLY_FILLED
        report = self._report(vo, vo.status, fill)  # a late fill after a cancel reports CANCELED with the fill
        self.outbox.append(report)
        return fill, report

    def position_update(self, asset: str) -> PositionUpdate:
        now = self.clock.now_ns()
        update = PositionUpdate(self.name, asset, self.positions().get(asset, ZERO), now, now)
        self.outbox.append(update)
        return update

    def exchange_cancel(self, coid: str) -> ExecutionReport:
        vo = self.orders[coid]
        vo.status = S.CANCELED
        report = self._report(vo, S.CANCELED, reason="canceled by the exchange")
        self.outbox.append(report)
        return report

    def foreign_order(self, coid: str, side: Side = Side.BUY, qty: str = "0.5", price: str = "90", asset: str = ASSET) -> None:
        """An open order at the venue that this OMS did not place (a previous run, a human)."""
        req = OrderRequest(coid, asset, side, D(qty), OrderType.LIMIT, D(price), TimeInForce.GTC)
        self.orders[coid] = _VO(req, str(self._next_id), S.ACCEPTED, ts_ns=self.clock.now_ns())
        self._next_id += 1

    def deliver(self, oms: OrderManager) -> int:
        n = len(self.outbox)
        for event in self.outbox:
            oms.on_report(event)  # type: ignore[arg-type]
        self.outbox.clear()
        return n


@dataclass
class Rig:
    clock: ManualClock
    venue: ModelVenue
    audit: MemoryAudit
    portfolio: Portfolio
    oms: OrderManager
    safe_calls: list[tuple[ErrorCode, str]]
    alerts: list[tuple[str, str, str]]
    n: int = 0

    def intent(self, side: Side = Side.BUY, qty: str = "1", price: str = "100", asset: str = ASSET, strategy: str = "s1") -> Intent:
        self.n += 1
        return Intent(f"run0-{self.n}", self.clock.now_ns(), strategy, asset, side, D(qty), OrderType.LIMIT, D(price))

    def advance(self, seconds: float) -> None:
        self.clock.advance(int(seconds * SEC))

    @property
    def safe_codes(self) -> list[ErrorCode]:
        return [c for c, _ in self.safe_calls]


def rig(limits: OmsLimits | None = None, *, feed_stale_s: float | None = None, **kw: Any) -> Rig:
    clock = ManualClock(T0)
    if feed_stale_s is not None:
        kw["feed"] = FeedHealth(clock, int(feed_stale_s * SEC))
    venue = ModelVenue(clock)
    audit = MemoryAudit()
    portfolio = Portfolio()
    safe_calls: list[tuple[ErrorCode, str]] = []
    alerts: list[tuple[str, str, str]] = []
    oms = OrderManager(
        venue=venue,
        venue_name=venue.name,
        portfolio=portfolio,
        audit=audit,
        clock=clock,
        instruments={ASSET: instrument(ASSET, venue.name), ASSET2: instrument(ASSET2, venue.name)},
        limits=limits or OmsLimits(),
        on_safe=lambda code, reason: safe_calls.append((code, reason)),
        alert=lambda sev, key, text: alerts.append((sev, key, text)),
        id_prefix="run0",
        **kw,
    )
    return Rig(clock, venue, audit, portfolio, oms, safe_calls, alerts)


async def direct_call(fn: Any) -> Any:
    """``engine.call`` without an engine (unit tests: nothing else runs concurrently)."""
    import asyncio

    result = fn()
    if asyncio.iscoroutine(result):
        result = await result
    return result
