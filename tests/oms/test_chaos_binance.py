"""Chaos scenarios (spec 16) against FakeBinance through the real adapter (bot/venues, ccxt + websockets).

Wired as the composition root wires LIVE: the adapter's report sink (execution reports and position updates)
feeds the engine queue, the adapter drives the OMS's ``FeedHealth`` (connected / disconnected / signs of life),
``on_gap`` goes to ``oms.on_sequence_gap``, SAFE goes to a real ``SafetyController``.

The OMS and the engine run on a clock that follows wall time plus an offset the test moves forward (grace
windows pass without sleeping); the adapter signs its requests with the real wall clock.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.order import OrderStatus
from bot.domain.venue import ExecutionReport, OrderRequest, PositionUpdate
from bot.engine.clock import WallClock
from bot.oms.feed import FeedHealth
from bot.oms.limits import OmsLimits
from bot.risk.safety import TradingState
from bot.venues.binance import BinanceLive, build_binance
from tests.fakes.binance_server import FakeBinance
from tests.oms.engine_rig import EngineRig, start_rig
from tests.venues.helpers import READ, READ_KEY, READ_SECRET, TRADE, TRADE_KEY, TRADE_SECRET, Recorder, SleepRecorder, is_status, venue_settings

D = Decimal
S = OrderStatus
BTC = "BTC/USDT"


class ShiftClock:
    """Wall time plus an offset the test advances: the OMS's grace windows pass without sleeping."""

    def __init__(self) -> None:
        self.shift = 0

    def now_ns(self) -> int:
        return time.time_ns() + self.shift

    def monotonic_ns(self) -> int:
        return time.monotonic_ns() + self.shift

    def advance(self, seconds: float) -> None:
        self.shift += int(seconds * 1_000_000_000)


class BinanceWorld:
    def __init__(self, fake: FakeBinance, live: BinanceLive, rig: EngineRig, clock: ShiftClock, feed: FeedHealth,
                 reports: Recorder, statuses: Recorder, sleeps: SleepRecorder) -> None:
        self.fake, self.live, self.rig, self.clock, self.feed = fake, live, rig, clock, feed
        self.reports, self.statuses, self.sleeps = reports, statuses, sleeps

    @property
    def venue(self) -> Any:
        return self.live.venue

    async def wait_report(self, predicate: Any) -> ExecutionReport:
        report: ExecutionReport = await self.reports.wait_for(predicate)
        await self.rig.settle()  # the engine queue has handled it
        return report


async def _world(fake: FakeBinance, **venue_overrides: Any) -> BinanceWorld:
    clock = ShiftClock()
    feed = FeedHealth(clock, 30 * 1_000_000_000)  # the adapter reports signs of life (messages, pongs)
    reports, statuses, sleeps = Recorder(), Recorder(), SleepRecorder()
    box: dict[str, Any] = {}

    def sink(event: Any) -> None:
        reports(event)
        box["rig"].engine.on_report(event)

    live = build_binance(
        venue_settings(fake, **venue_overrides),
        read_credentials=READ,
        trade_credentials=lambda: TRADE,
        clock=WallClock(),
        on_alert=lambda *a: None,
        on_status=statuses,
        on_gap=lambda gap: box["rig"].oms.on_sequence_gap(gap),
        on_safe=lambda code, reason: box["rig"].safety.enter(TradingState.SAFE, code, reason),
        feed_health=feed,
        sleep=sleeps,
    )
    live.venue.set_report_sink(sink)
    await live.start()
    try:
        await fake.wait_for_ws_clients(2)
        await statuses.wait_for(is_status("user", True))
        rig = await start_rig(live.venue, live.venue.instruments, clock, limits=OmsLimits(grace_window_s=3), feed=feed, set_sink=False)
    except BaseException:
        await live.stop("set-up failed")
        raise
    box["rig"] = rig
    return BinanceWorld(fake, live, rig, clock, feed, reports, statuses, sleeps)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as venue:
        venue.add_key(TRADE_KEY, TRADE_SECRET, can_trade=True)
        venue.add_key(READ_KEY, READ_SECRET, can_trade=False)
        venue.set_balance("USDT", "1000")
        venue.set_balance("BTC", "1")
        venue.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        venue.set_book("ETH/USDT", "2000.00", "1", "2000.01", "1")
        yield venue


@pytest.fixture
async def world(fake: FakeBinance) -> AsyncIterator[BinanceWorld]:
    w = await _world(fake)
    try:
        yield w
    finally:
        w.sleeps.release()
        await w.rig.stop()
        await w.live.stop("test end")


def _fill_of(coid: str) -> Any:
    return lambda r: isinstance(r, ExecutionReport) and r.client_order_id == coid and r.fill is not None


async def test_baseline_holds_the_accounts_btc(world: BinanceWorld) -> None:
    assert world.rig.oms.baseline[BTC] == D("1")  # held before the run: not a mismatch
    res = await world.rig.reconcile()
    assert res.ok and world.rig.refusal() is None


async def test_silent_fill_found_by_reconciliation_goes_safe_then_resolves(world: BinanceWorld) -> None:
    rig = world.rig
    order = await rig.submit(Side.BUY, "0.1", "99")
    assert order is not None and order.status is S.ACCEPTED
    world.fake.silent_fill(order.client_order_id)  # no executionReport, no outboundAccountPosition
    res = await rig.reconcile()
    assert not res.missed_fills and res.recent_fills == 1 and rig.safety.state is TradingState.ACTIVE  # within grace
    world.clock.advance(4)
    res = await rig.reconcile()
    assert len(res.missed_fills) == 1 and order.status is S.FILLED
    assert rig.safety.state is TradingState.SAFE and rig.safety.code is ErrorCode.POSITION_MISMATCH
    assert rig.portfolio.qty(BTC) == D("0.1")
    world.clock.advance(5)
    res = await rig.reconcile()
    assert res.ok, res.problems
    ok, _ = rig.safety.resume("operator")
    assert ok and rig.safety.state is TradingState.ACTIVE


async def test_fill_confirmed_by_the_venues_position_update_unblocks_the_asset(world: BinanceWorld) -> None:
    rig = world.rig
    order = await rig.submit(Side.BUY, "0.1", "99")
    assert order is not None
    world.fake.fill(order.client_order_id)
    await world.wait_report(lambda r: isinstance(r, PositionUpdate) and r.asset == BTC and r.qty > D("1"))
    assert order.status is S.FILLED
    assert rig.refusal() is None  # dirty after the fill, cleaned by outboundAccountPosition (fees included)
    dirty = [(t["from_state"], t["to_state"]) for t in rig.audit.of("state_transition", kind="dirty", scope=BTC)]
    assert dirty[-2:] == [("CLEAN", "DIRTY"), ("DIRTY", "CLEAN")]


async def test_duplicate_fill_messages_are_counted_once(world: BinanceWorld) -> None:
    rig = world.rig
    order = await rig.submit(Side.BUY, "0.1", "99")
    assert order is not None
    world.fake.duplicate_next_execution_report(times=3)
    world.fake.fill(order.client_order_id)
    await world.wait_report(_fill_of(order.client_order_id))
    world.clock.advance(5)
    await rig.reconcile()  # the same trade again over REST: applied already
    assert order.status is S.FILLED and rig.oms.fills_applied == 1 and rig.portfolio.qty(BTC) == D("0.1")
    assert len(rig.audit.of("fill")) == 1


async def test_stream_drop_blocks_orders_until_recovery_and_reconciliation(world: BinanceWorld) -> None:
    rig = world.rig
    world.sleeps.hold()  # keep the stream down while the test looks
    await world.fake.drop_streams()
    await world.statuses.wait_for(is_status("user", False))
    assert await rig.submit(Side.BUY, "0.1", "99") is None
    assert rig.audit.of("order_event", event="refused")[-1]["code"] == "WS_STALE"
    world.sleeps.release()
    n = len([s for s in world.statuses.items if is_status("user", True)(s)])
    await world.statuses.wait_count(is_status("user", True), n + 1)
    await rig.settle()
    assert rig.refusal() is ErrorCode.DIRTY_POSITION  # back, but fills may have been missed
    world.clock.advance(4)
    await rig.reconcile()
    assert rig.refusal() is None
    order = await rig.submit(Side.BUY, "0.1", "99")
    assert order is not None and order.status is S.ACCEPTED
    assert rig.safety.state is TradingState.ACTIVE


async def test_submit_timeout_leaves_exactly_one_order_at_the_venue(fake: FakeBinance) -> None:
    w = await _world(fake, request_timeout_ms=300)
    try:
        fake.timeout_next("/api/v3/order", method="POST", execute=True)  # placed, the answer never comes
        order = await w.rig.submit(Side.BUY, "0.1", "99")
        assert order is not None and order.status is S.ACCEPTED  # found by client id
        assert len(fake.requests_for("POST", "/api/v3/order")) == 1
        assert [o.client_order_id for o in fake.open_orders(BTC)] == [order.client_order_id]
    finally:
        fake.release_held()
        await w.rig.stop()
        await w.live.stop("test end")


async def test_exchange_side_cancel_is_followed(world: BinanceWorld) -> None:
    rig = world.rig
    order = await rig.submit(Side.BUY, "0.1", "99")
    assert order is not None
    world.fake.exchange_cancel(order.client_order_id)
    await world.wait_report(lambda r: isinstance(r, ExecutionReport) and r.status is S.CANCELED)
    assert order.status is S.CANCELED and rig.oms.live == {}


async def test_unknown_venue_order_is_cancelled(world: BinanceWorld) -> None:
    rig = world.rig
    await world.venue.place_order(OrderRequest("manual-1", BTC, Side.BUY, D("0.1"), OrderType.LIMIT, D("90"), TimeInForce.GTC))
    await world.wait_report(lambda r: isinstance(r, ExecutionReport) and r.client_order_id == "manual-1")
    assert rig.audit.of("order_event", event="unknown_order")  # the stream told us; we did not place it
    res = await rig.reconcile()
    assert res.unknown_orders == ["manual-1"]
    assert world.fake.open_orders(BTC) == []
    assert rig.oms.orders["manual-1"].status is S.CANCELED


async def test_order_burst_goes_safe(world: BinanceWorld) -> None:
    rig = world.rig
    placed = [await rig.submit(Side.BUY, "0.1", str(90 + i)) for i in range(7)]
    assert sum(o is not None for o in placed) == 5
    assert rig.safety.state is TradingState.SAFE and rig.safety.code is ErrorCode.ORDER_RATE_LIMIT_BREACH
    assert len(world.fake.requests_for("POST", "/api/v3/order")) == 5
