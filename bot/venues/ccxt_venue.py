"""The live venue adapter over ccxt.async_support: the ``Venue`` port (spec 10).

- Reads go through the ``ReadClient`` (read key); create and cancel through a ``TradeClient`` that exists only
  while the key holder supplies a trade key (LIVE armed). Without one, ``place_order`` fails ``NOT_ARMED``
  before anything is sent.
- Money is Decimal at this edge; prices and sizes are rounded to the market's tick and lot (passively: bids
  down, asks up, sizes toward zero) and checked against its limits before sending (``INVALID_ORDER``).
- Every failure is a ``VenueError`` with the taxonomy code (``bot.venues.errors``). A submit is never retried;
  a rate limit on a submit closes the order gate until the venue's Retry-After has passed.
- Outputs carry the venue order id, the request -> ack latency (``ExecutionReport.latency_ns``), and for
  fills the venue's trade id; all fills (submit answer, user-data stream, REST poll) pass one ledger that
  delivers each trade id once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.domain.credentials import Credentials, KeyScope
from bot.domain.errors import DomainError, ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.intent import OrderType, Side
from bot.domain.money import ZERO, fmt
from bot.domain.order import OrderStatus
from bot.domain.ports import Clock, ReportSink
from bot.domain.streams import SequenceGap
from bot.domain.venue import Balance, ExecutionReport, OrderRequest, PositionUpdate, VenueError, VenueOrder
from bot.venues.ccxt_client import ReadClient, TradeClient
from bot.venues.clock_sync import ClockSync
from bot.venues.fills import FillLedger, fee_in_quote
from bot.venues.instruments import instrument_from_market, market_maxima, optional_decimal
from bot.venues.metrics import VenueMetrics

log = logging.getLogger(__name__)

MS = 1_000_000
TradeCredentialsProvider = Callable[[], Credentials | None]
TradeClientFactory = Callable[[Credentials, Mapping[str, Any]], TradeClient]
AlertFn = Callable[[str, str, str], None]
GapFn = Callable[[SequenceGap], None]
MarkFn = Callable[[str], Decimal | None]


class CcxtVenue:
    def __init__(
        self,
        *,
        name: str,
        assets: Sequence[str],
        dialect: Any,
        read: ReadClient,
        trade_factory: TradeClientFactory,
        trade_credentials: TradeCredentialsProvider,
        clock: Clock,
        clock_sync: ClockSync | None = None,
        metrics: VenueMetrics | None = None,
        on_alert: AlertFn | None = None,
        on_gap: GapFn | None = None,
        mark_price: MarkFn | None = None,
    ) -> None:
        self.name = name
        self.assets = tuple(assets)
        self.dialect = dialect
        self.read = read
        self._trade_factory = trade_factory
        self._trade_credentials = trade_credentials
        self.clock = clock
        self.clock_sync = clock_sync
        self.metrics = metrics or VenueMetrics()
        self._on_alert = on_alert
        self._on_gap = on_gap
        self._mark_price = mark_price
        self._sink: ReportSink | None = None
        self.markets: dict[str, Any] = {}
        self.instruments: dict[str, Instrument] = {}
        self._maxima: dict[str, tuple[Decimal | None, Decimal | None, Decimal | None]] = {}
        self._by_venue_symbol: dict[str, str] = {}
        self._trade: TradeClient | None = None
        self._trade_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        self._order_gate_until_ns = 0  # monotonic: a venue rate limit on orders holds new submits until then
        self._order_gate_reason = ""
        self.ledger = FillLedger()
        self._conversion_cache: dict[str, tuple[int, Decimal]] = {}
        self.time_difference_ms = 0

    # ------------------------------------------------------------------ lifecycle
    def set_report_sink(self, sink: ReportSink) -> None:
        self._sink = sink

    async def connect(self) -> None:
        """The clock first (signed calls need its correction), then markets and fees (read key). Streams are
        started by the owner (see build_binance)."""
        if self.clock_sync is not None:
            await self.clock_sync.measure()
        await self.load_instruments()

    async def close(self) -> None:
        await self.drop_trade_client()
        await self.close_pending()
        await self.read.close()

    async def close_pending(self) -> None:
        """Wait for background work this adapter started (a clock re-measurement)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def load_instruments(self) -> Mapping[str, Instrument]:
        markets = await self.read.load_markets()
        missing = [a for a in self.assets if a not in markets]
        if missing:
            raise VenueError(ErrorCode.INVALID_ORDER, f"{self.name} has no market for {', '.join(missing)}: check market.assets")
        fees = None
        if self.read.credentials is not None:
            balance = await self.read.fetch_balance()
            fees = self.dialect.fees_from_account(balance.get("info") or {})
        precision_mode = int(self.read.exchange.precisionMode)
        self.markets = dict(markets)
        for asset in self.assets:
            market = markets[asset]
            if not market.get("active", True):
                raise VenueError(ErrorCode.VENUE_UNAVAILABLE, f"{self.name}: market {asset} is not active (trading halted)")
            inst = instrument_from_market(market, venue=self.name, precision_mode=precision_mode, fees=fees)
            self.instruments[asset] = inst
            self._maxima[asset] = market_maxima(market)
            self._by_venue_symbol[inst.venue_symbol] = asset
        return dict(self.instruments)

    def asset_of(self, venue_symbol: str) -> str | None:
        return self._by_venue_symbol.get(venue_symbol)

    # ------------------------------------------------------------------ clock
    def set_time_difference(self, offset_ms: int) -> None:
        """Sign with venue time: ccxt's nonce is local - timeDifference, so timeDifference = -offset."""
        self.time_difference_ms = -offset_ms
        self.read.exchange.options["timeDifference"] = self.time_difference_ms
        if self._trade is not None:
            self._trade.set_time_difference(self.time_difference_ms)

    # ------------------------------------------------------------------ the trade client
    async def _trade_client(self) -> TradeClient:
        """The trade client for the key the holder supplies now (built, rebuilt or dropped accordingly)."""
        async with self._trade_lock:  # a background sweep and the engine must not build two
            credentials = self._trade_credentials()
            if credentials is None:
                await self._drop_trade_client()
                raise VenueError(ErrorCode.NOT_ARMED, "no trade key: the key holder supplies it only while LIVE is armed")
            if credentials.scope is not KeyScope.TRADE:
                raise VenueError(ErrorCode.AUTHENTICATION_FAILED, f"refused: {credentials.fingerprint()} is not a trade key (the read key never trades)")
            if self._trade is not None and self._trade.fingerprint == credentials.fingerprint():
                return self._trade
            await self._drop_trade_client()
            if not self.markets:
                raise VenueError(ErrorCode.VENUE_UNAVAILABLE, "markets not loaded: connect() first")
            self._trade = self._trade_factory(credentials, self.markets)
            self._trade.set_time_difference(self.time_difference_ms)
            log.info("%s: trade client built for %s", self.name, credentials.fingerprint())
            return self._trade

    async def drop_trade_client(self) -> None:
        """Forget the trade client now (the key holder withdrew the key; also happens at the next use)."""
        async with self._trade_lock:
            await self._drop_trade_client()

    async def _drop_trade_client(self) -> None:
        trade, self._trade = self._trade, None
        if trade is not None:
            log.info("%s: trade client dropped", self.name)
            await trade.close()

    @property
    def has_trade_client(self) -> bool:
        return self._trade is not None

    async def trade_client_if_armed(self) -> TradeClient | None:
        try:
            return await self._trade_client()
        except VenueError:
            return None

    # ------------------------------------------------------------------ orders
    def _instrument(self, asset: str) -> Instrument:
        inst = self.instruments.get(asset)
        if inst is None:
            raise VenueError(ErrorCode.INVALID_ORDER, f"unknown instrument {asset} on {self.name}")
        return inst

    def prepare(self, request: OrderRequest) -> tuple[Instrument, Decimal, Decimal | None]:
        """Round to the market's grid and check its limits; raises VenueError(INVALID_ORDER)."""
        inst = self._instrument(request.asset)
        qty = inst.round_qty(request.qty)
        price = None
        if request.order_type is not OrderType.MARKET:
            if request.limit_price is None:
                raise VenueError(ErrorCode.INVALID_ORDER, f"{request.order_type.value} order without a limit price")
            price = inst.round_price(request.limit_price, is_buy=request.side is Side.BUY)
        elif request.limit_price is not None:
            raise VenueError(ErrorCode.INVALID_ORDER, "a market order carries no limit price")
        try:
            inst.validate_order(qty, price)
        except DomainError as exc:
            raise VenueError(ErrorCode.INVALID_ORDER, exc.message) from None
        max_qty, max_price, max_notional = self._maxima.get(request.asset, (None, None, None))
        if max_qty is not None and qty > max_qty:
            raise VenueError(ErrorCode.INVALID_ORDER, f"{inst.symbol}: quantity {qty} is above the maximum {max_qty}")
        if price is not None and max_price is not None and price > max_price:
            raise VenueError(ErrorCode.INVALID_ORDER, f"{inst.symbol}: price {price} is above the maximum {max_price}")
        reference = price if price is not None else (self._mark_price(request.asset) if self._mark_price else None)
        if reference is not None:
            notional = inst.notional(qty, reference)
            if notional < inst.min_notional:
                raise VenueError(ErrorCode.INVALID_ORDER, f"{inst.symbol}: notional {notional} is below the minimum {inst.min_notional}")
            if price is not None and max_notional is not None and notional > max_notional:
                raise VenueError(ErrorCode.INVALID_ORDER, f"{inst.symbol}: notional {notional} is above the maximum {max_notional}")
        return inst, qty, price

    def _check_order_gate(self) -> None:
        if self.clock_sync is not None:
            self.clock_sync.check()
        now = self.clock.monotonic_ns()
        if now < self._order_gate_until_ns:
            wait_s = (self._order_gate_until_ns - now) / 1e9
            raise VenueError(ErrorCode.RATE_LIMITED, f"order gate closed for {wait_s:.1f} s more: {self._order_gate_reason}", retry_after_s=wait_s)

    def _close_order_gate(self, retry_after_s: float, reason: str) -> None:
        until = self.clock.monotonic_ns() + int(retry_after_s * 1e9)
        if until > self._order_gate_until_ns:
            self._order_gate_until_ns = until
            self._order_gate_reason = reason
        if self._on_alert is not None:
            self._on_alert("warning", f"rate-limit:{self.name}", f"{self.name} rate-limited our orders: no new orders for {retry_after_s:.0f} s")

    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        """Submit once. VenueError(UNKNOWN_ORDER_STATUS / VENUE_UNAVAILABLE): the order may exist, look it up."""
        self._check_order_gate()
        inst, qty, price = self.prepare(request)
        if qty != request.qty or price != request.limit_price:
            # the OMS rounds with these same instruments: a change here means the two disagree
            self.metrics.events["rounded_at_adapter"] += 1
            log.warning("%s: %s rounded to the market grid before sending: qty %s -> %s, price %s -> %s",
                        self.name, request.client_order_id, request.qty, qty, request.limit_price, price)
        order_type, params = self.dialect.order_params(request)
        trade = await self._trade_client()
        start = self.clock.monotonic_ns()
        try:
            result = await trade.create_order(
                inst.symbol, order_type, request.side.value.lower(), fmt(qty), None if price is None else fmt(price), params
            )
        except VenueError as exc:
            if exc.code is ErrorCode.RATE_LIMITED:
                self._close_order_gate(exc.retry_after_s if exc.retry_after_s is not None else 1.0, exc.message)
            if exc.code is ErrorCode.CLOCK_DRIFT and self.clock_sync is not None:
                self._remeasure_clock()
            raise
        latency = self.clock.monotonic_ns() - start
        self.metrics.ack.add(latency)
        report = self._report_from_order(request.asset, result, request.client_order_id, latency_ns=latency)
        if report.venue_order_id:
            self.ledger.remember_order(request.asset, report.venue_order_id, request.client_order_id)
        cum = ZERO
        for raw in self.dialect.response_fills(result):
            cum += self.dialect.decimal(raw.get("qty"), "fill.qty")
            fill_report = await self._fill_from_response(inst, request, report, raw, cum)
            if fill_report is not None:
                self._deliver(fill_report)
        return report

    def _remeasure_clock(self) -> None:
        assert self.clock_sync is not None
        task = asyncio.ensure_future(self._measure_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _measure_quietly(self) -> None:
        assert self.clock_sync is not None
        try:
            await self.clock_sync.measure()
        except VenueError as exc:
            log.warning("clock re-measurement failed: %s", exc)

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport:
        inst = self._instrument(asset)
        trade = await self._trade_client()
        order_id, params = self.dialect.cancel_ref(client_order_id, venue_order_id)
        start = self.clock.monotonic_ns()
        try:
            result = await trade.cancel_order(inst.symbol, order_id, params)
        except VenueError as exc:
            if exc.venue_code not in ("-2011",):
                raise
            # unknown to the venue's cancel: already filled, cancelled or expired? Ask (read key).
            known = await self.fetch_order(asset, client_order_id)
            if known is None or known.status not in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
                raise
            return ExecutionReport(
                venue=self.name,
                client_order_id=client_order_id,
                venue_order_id=known.venue_order_id,
                status=known.status,
                ts_ns=known.ts_ns,
                local_ts_ns=self.clock.now_ns(),
                cum_filled_qty=known.filled_qty,
                code=ErrorCode.ORDER_REJECTED,
                reason=f"cancel refused: the order is already {known.status.value} at the venue",
                latency_ns=self.clock.monotonic_ns() - start,
            )
        latency = self.clock.monotonic_ns() - start
        self.metrics.ack.add(latency)
        return self._report_from_order(asset, result, client_order_id, latency_ns=latency, default_status=OrderStatus.CANCELED)

    async def cancel_all_resting(self, reason: str, assets: Sequence[str] | None = None) -> list[ExecutionReport]:
        """Cancel every open order on our assets (cancel-on-disconnect, service stop): one cancel-all request per
        asset with the trade key (no read first). Reports go to the sink too. Raises VenueError(NOT_ARMED) when
        there is no trade key to cancel with."""
        trade = await self._trade_client()
        reports: list[ExecutionReport] = []
        errors: list[str] = []
        for asset in self.assets if assets is None else assets:
            inst = self._instrument(asset)
            try:
                results = await trade.cancel_all_orders(inst.symbol)
            except VenueError as exc:
                if exc.venue_code == "-2011":  # nothing open
                    continue
                errors.append(f"{asset}: {exc.code} {exc.message}")
                continue
            for result in results:
                coid = self.dialect.canceled_client_order_id(result) or result.get("clientOrderId") or ""
                report = self._report_from_order(asset, result, coid, default_status=OrderStatus.CANCELED, reason=f"cancel-all: {reason}")
                reports.append(report)
                self._deliver(report)
        if errors:
            raise VenueError(ErrorCode.VENUE_UNAVAILABLE, f"cancel-all incomplete ({len(reports)} cancelled): " + "; ".join(errors))
        return reports

    # ------------------------------------------------------------------ reads
    async def fetch_order(self, asset: str, client_order_id: str) -> VenueOrder | None:
        inst = self._instrument(asset)
        raw = await self.read.fetch_order(inst.symbol, None, self.dialect.lookup_params(client_order_id))
        return None if raw is None else self._venue_order(asset, raw)

    async def get_open_orders(self, asset: str | None = None) -> Sequence[VenueOrder]:
        assets = self.assets if asset is None else (asset,)
        out: list[VenueOrder] = []
        for a in assets:
            inst = self._instrument(a)
            for raw in await self.read.fetch_open_orders(inst.symbol):
                out.append(self._venue_order(a, raw))
        return out

    async def get_balances(self) -> Mapping[str, Balance]:
        raw = await self.read.fetch_balance()
        out: dict[str, Balance] = {}
        for row in (raw.get("info") or {}).get("balances") or []:
            free = optional_decimal(row.get("free"), field=f"balance.{row.get('asset')}.free") or ZERO
            locked = optional_decimal(row.get("locked"), field=f"balance.{row.get('asset')}.locked") or ZERO
            out[row["asset"]] = Balance(row["asset"], free, locked)
        if not out:  # a venue without Binance's raw rows: ccxt's unified structure
            for ccy, entry in raw.items():
                if isinstance(entry, Mapping) and "free" in entry and "used" in entry:
                    out[ccy] = Balance(
                        ccy,
                        optional_decimal(entry.get("free"), field=f"balance.{ccy}.free") or ZERO,
                        optional_decimal(entry.get("used"), field=f"balance.{ccy}.used") or ZERO,
                    )
        return dict(sorted(out.items()))

    async def get_positions(self) -> Mapping[str, Decimal]:
        """Spot: the base asset's total balance (free + locked) per instrument, signed (never negative on spot)."""
        balances = await self.get_balances()
        out: dict[str, Decimal] = {}
        for asset in self.assets:
            inst = self._instrument(asset)
            bal = balances.get(inst.base)
            out[asset] = bal.total if bal is not None else ZERO
        return out

    async def fetch_position_snapshot(self, asset: str) -> Decimal:
        return (await self.get_positions())[asset]

    async def fetch_fills(self, asset: str, since_fill_id: str | None = None) -> Sequence[Fill]:
        """Trades after ``since_fill_id`` (all recent ones when None), oldest first, as Fills."""
        inst = self._instrument(asset)
        last = int(since_fill_id) if since_fill_id is not None and since_fill_id.isdigit() else None
        if since_fill_id is not None and last is None:
            log.warning("%s: fill id %r is not a venue trade id: fetching recent trades instead", self.name, since_fill_id)
        trades = await self.read.fetch_my_trades(inst.symbol, self.dialect.trades_since_params(last), limit=1000)
        fills: list[Fill] = []
        for trade in sorted(trades, key=lambda t: int(t["id"])):
            coid = await self._client_id_for(asset, str(trade["order"]))
            fills.append(await self._fill_from_trade(inst, trade, coid))
        return fills

    async def poll_fills(self, asset: str, reason: str, *, anomaly: bool = True) -> int:
        """REST poll of trades after the poll's watermark; new ones go to the sink. Returns how many.

        ``anomaly``: a fill found here should have come on the stream (it was healthy): each one is reported
        as a ``SequenceGap`` of kind "fill". After an outage (reconnect, fallback) recovered fills are expected."""
        last = self.ledger.poll_watermark.get(asset)
        fills = await self.fetch_fills(asset, None if last is None else str(last))
        delivered = 0
        for fill in fills:
            self.ledger.polled(asset, fill.fill_id)
            if not self.ledger.first_time(asset, fill.fill_id):
                continue
            delivered += 1
            self.metrics.events["fills_recovered_by_poll"] += 1
            if fill.venue_order_id:
                self.ledger.add_qty(asset, fill.venue_order_id, fill.qty)
            snapshot = await self.fetch_order(asset, fill.client_order_id) if fill.client_order_id else None
            status = snapshot.status if snapshot is not None else OrderStatus.PARTIALLY_FILLED
            if status not in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED):
                status = OrderStatus.PARTIALLY_FILLED
            self._deliver(
                ExecutionReport(
                    venue=self.name,
                    client_order_id=fill.client_order_id,
                    venue_order_id=fill.venue_order_id,
                    status=status,
                    ts_ns=fill.ts_ns,
                    local_ts_ns=self.clock.now_ns(),
                    fill=fill,
                    cum_filled_qty=snapshot.filled_qty if snapshot is not None else None,
                    reason=f"fill recovered by REST poll ({reason})",
                    seq=int(fill.fill_id) if fill.fill_id.isdigit() else None,
                )
            )
            if self._on_gap is not None and anomaly:
                self._on_gap(
                    SequenceGap(self.name, "user", asset, "fill", "stream", f"trade {fill.fill_id}", self.clock.now_ns(),
                                f"fill {fill.fill_id} of {fill.client_order_id} was not on the user-data stream ({reason})")
                )
        return delivered

    # ------------------------------------------------------------------ mapping
    def _deliver(self, report: ExecutionReport | PositionUpdate) -> None:
        if self._sink is None:
            raise RuntimeError(f"{self.name}: no report sink set (set_report_sink before connect)")
        self._sink(report)

    def deliver_position(self, update: PositionUpdate) -> None:
        """The venue's own position (spot: base balance) from its stream, through the report sink."""
        self._deliver(update)

    def deliver_stream_report(self, asset: str, report: ExecutionReport) -> bool:
        """For the user-data stream: deliver unless its fill was already delivered. True if delivered."""
        if report.venue_order_id and report.client_order_id:
            self.ledger.remember_order(asset, report.venue_order_id, report.client_order_id)
        if report.fill is not None:
            if not self.ledger.first_time(asset, report.fill.fill_id):
                self.metrics.events["duplicate_fills_dropped"] += 1
                return False
            if report.fill.venue_order_id:
                self.ledger.add_qty(asset, report.fill.venue_order_id, report.fill.qty)
        self._deliver(report)
        return True

    def _report_from_order(
        self,
        asset: str,
        result: Mapping[str, Any],
        client_order_id: str,
        *,
        latency_ns: int | None = None,
        default_status: OrderStatus = OrderStatus.ACCEPTED,
        reason: str = "",
    ) -> ExecutionReport:
        info = result.get("info") or {}
        status = self.dialect.status(info.get("status")) or default_status
        ts_ms = info.get("transactTime") or info.get("updateTime") or result.get("timestamp")
        venue_order_id = result.get("id") or (str(info["orderId"]) if "orderId" in info else None)
        cum = optional_decimal(info.get("executedQty", result.get("filled")), field="executedQty")
        return ExecutionReport(
            venue=self.name,
            client_order_id=client_order_id,
            venue_order_id=None if venue_order_id is None else str(venue_order_id),
            status=status,
            ts_ns=int(ts_ms) * MS if ts_ms is not None else self.clock.now_ns(),
            local_ts_ns=self.clock.now_ns(),
            cum_filled_qty=cum,
            latency_ns=latency_ns,
            reason=reason,
            code=ErrorCode.ORDER_REJECTED if status is OrderStatus.REJECTED else None,
        )

    def _venue_order(self, asset: str, raw: Mapping[str, Any]) -> VenueOrder:
        info = raw.get("info") or {}
        status = self.dialect.status(info.get("status"))
        if status is None:
            log.warning("%s: unknown order status %r of %s: treated as resting", self.name, info.get("status"), raw.get("id"))
            status = OrderStatus.ACCEPTED
        side = Side.BUY if str(raw.get("side", info.get("side", ""))).lower() == "buy" else Side.SELL
        price = optional_decimal(raw.get("price"), field="order.price")
        order_type = self.dialect.order_type(info.get("type"))
        return VenueOrder(
            client_order_id=str(raw.get("clientOrderId") or info.get("clientOrderId") or ""),
            venue_order_id=str(raw.get("id")),
            asset=asset,
            side=side,
            qty=optional_decimal(raw.get("amount"), field="order.amount") or ZERO,
            filled_qty=optional_decimal(raw.get("filled"), field="order.filled") or ZERO,
            limit_price=None if order_type is OrderType.MARKET or not price else price,
            order_type=order_type,
            status=status,
            ts_ns=int(raw.get("timestamp") or 0) * MS,
        )

    async def _client_id_for(self, asset: str, venue_order_id: str) -> str:
        known = self.ledger.client_order_id(asset, venue_order_id)
        if known is not None:
            return known
        inst = self._instrument(asset)
        raw = await self.read.fetch_order(inst.symbol, venue_order_id, {})
        coid = "" if raw is None else str(raw.get("clientOrderId") or "")
        if coid:
            self.ledger.remember_order(asset, venue_order_id, coid)
        return coid

    async def fee_conversion(self, currency: str, quote: str) -> Decimal | None:
        """Price of ``currency`` in ``quote`` (e.g. BNB fees): the live mark first, then a cached REST ticker."""
        symbol = f"{currency}/{quote}"
        if self._mark_price is not None:
            mark = self._mark_price(symbol)
            if mark is not None:
                return mark
        now = self.clock.monotonic_ns()
        cached = self._conversion_cache.get(symbol)
        if cached is not None and now - cached[0] < 60 * 1_000_000_000:
            return cached[1]
        if symbol not in self.markets:
            return None
        try:
            ticker = await self.read.fetch_ticker(symbol)
        except VenueError:
            return None
        price = optional_decimal(ticker.get("last") or ticker.get("close"), field=f"{symbol}.last")
        if price is not None:
            self._conversion_cache[symbol] = (now, price)
        return price

    async def fee_quote(self, inst: Instrument, fee: Decimal, currency: str, price: Decimal) -> Decimal:
        conversion = None
        if currency not in (inst.base, inst.quote) and fee != 0:
            conversion = await self.fee_conversion(currency, inst.quote)
        value = fee_in_quote(fee, currency, inst, price, conversion)
        if value is None:
            self.metrics.events["fee_unvalued"] += 1
            log.warning("%s: fee %s %s could not be valued in %s (no price): counted as 0", self.name, fee, currency, inst.quote)
            if self._on_alert is not None:
                self._on_alert("warning", f"fee-unvalued:{self.name}:{currency}", f"A fee in {currency} could not be valued in {inst.quote}: P&L understates fees")
            return ZERO
        return value

    async def _fill_from_response(
        self, inst: Instrument, request: OrderRequest, ack: ExecutionReport, raw: Mapping[str, Any], cum: Decimal
    ) -> ExecutionReport | None:
        trade_id = str(raw.get("tradeId"))
        if not self.ledger.first_time(request.asset, trade_id):
            return None
        qty = self.dialect.decimal(raw.get("qty"), "fill.qty")
        price = self.dialect.decimal(raw.get("price"), "fill.price")
        fee = optional_decimal(raw.get("commission"), field="fill.commission") or ZERO
        currency = str(raw.get("commissionAsset") or inst.quote)
        if ack.venue_order_id:
            self.ledger.add_qty(request.asset, ack.venue_order_id, qty)
        fill = Fill(
            fill_id=trade_id,
            client_order_id=request.client_order_id,
            venue_order_id=ack.venue_order_id,
            venue=self.name,
            asset=request.asset,
            side=request.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_currency=currency,
            fee_quote=await self.fee_quote(inst, fee, currency, price),
            is_maker=False,  # the immediate fills of a submit took liquidity
            ts_ns=ack.ts_ns,
        )
        return ExecutionReport(
            venue=self.name,
            client_order_id=request.client_order_id,
            venue_order_id=ack.venue_order_id,
            status=ack.status if ack.status in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.EXPIRED, OrderStatus.CANCELED) else OrderStatus.PARTIALLY_FILLED,
            ts_ns=ack.ts_ns,
            local_ts_ns=self.clock.now_ns(),
            fill=fill,
            cum_filled_qty=cum,
            seq=int(trade_id) if trade_id.isdigit() else None,
            latency_ns=ack.latency_ns,
        )

    async def _fill_from_trade(self, inst: Instrument, trade: Mapping[str, Any], client_order_id: str) -> Fill:
        price = self.dialect.decimal(trade.get("price"), "trade.price")
        fee_info = trade.get("fee") or {}
        fee = optional_decimal(fee_info.get("cost"), field="trade.fee") or ZERO
        currency = str(fee_info.get("currency") or inst.quote)
        return Fill(
            fill_id=str(trade["id"]),
            client_order_id=client_order_id,
            venue_order_id=str(trade.get("order")) if trade.get("order") is not None else None,
            venue=self.name,
            asset=inst.symbol,
            side=Side.BUY if trade.get("side") == "buy" else Side.SELL,
            qty=self.dialect.decimal(trade.get("amount"), "trade.amount"),
            price=price,
            fee=fee,
            fee_currency=currency,
            fee_quote=await self.fee_quote(inst, fee, currency, price),
            is_maker=trade.get("takerOrMaker") == "maker",
            ts_ns=int(trade.get("timestamp") or 0) * MS,
        )
