"""Chaos scenarios (spec 16) against the simulated venue behind a fault-injecting wrapper, through the engine loop.

1. a fill the stream never reports -> reconciliation finds it -> SAFE, then resolved (resume passes);
2. duplicate fill messages -> counted once;
3. stream drop -> new orders blocked -> recovery after reconciliation;
4. submit timeout -> exactly one order at the venue (answer lost, or request lost);
5. exchange-side cancel -> the OMS follows (reported, or missed and found by reconciliation);
6. an unknown order at the venue -> cancelled;
7. place/cancel storm -> SAFE (rate limit; flip-flop).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.domain.errors import ErrorCode
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.market import Tick
from bot.domain.order import OrderStatus
from bot.domain.venue import OrderRequest
from bot.engine.clock import ManualClock
from bot.engine.sim_venue import SimulatedVenue
from bot.oms.feed import FeedHealth
from bot.oms.limits import OmsLimits
from bot.risk.safety import TradingState
from tests.oms.engine_rig import EngineRig, start_rig
from tests.oms.faulty_venue import FaultyVenue
from tests.oms.support import SEC, T0

D = Decimal
S = OrderStatus
BTC = "BTC/USDT"
INST = {
    BTC: Instrument(
        symbol=BTC, venue="sim", venue_symbol="BTCUSDT", base="BTC", quote="USDT", tick_size=D("0.01"), lot_size=D("0.00001"),
        min_qty=D("0.00001"), min_notional=D("5"), fees=FeeModel(maker=D("0.001"), taker=D("0.001")),
    )
}


class World:
    def __init__(self, *, feed: bool = False, limits: OmsLimits | None = None) -> None:
        self.clock = ManualClock(T0)
        # as the service builds it: balances enforced, positions in spot semantics (the base balance, 0.5 BTC held)
        self.sim = SimulatedVenue(
            INST, self.clock, balances={"USDT": D("100000"), "BTC": D("0.5")}, enforce_balances=True, balance_positions=True
        )
        self.feed = FeedHealth(self.clock, 30 * SEC) if feed else None
        self.venue = FaultyVenue(self.sim, self.feed)
        self.limits = limits or OmsLimits()
        self.rig: EngineRig
        self.seq = 0

    async def start(self) -> EngineRig:
        self.rig = await start_rig(self.venue, INST, self.clock, limits=self.limits, feed=self.feed, freshness_clock=self.clock.monotonic_ns)
        return self.rig

    async def tick(self, bid: str, ask: str, size: str = "1") -> None:
        """Market data reaches the simulated venue inside the loop (it matches; its reports follow the tick)."""
        self.seq += 1
        t = Tick(BTC, D(bid), D(size), D(ask), D(size), self.clock.now_ns(), self.clock.now_ns(), self.seq, "sim")
        await self.rig.call(lambda: self.venue.on_tick(t))

    def advance(self, seconds: float) -> None:
        self.clock.advance(int(seconds * SEC))


@pytest.fixture
async def world() -> AsyncIterator[World]:
    w = World()
    await w.start()
    yield w
    await w.rig.stop()


async def test_silent_fill_found_by_reconciliation_goes_safe_then_resolves(world: World) -> None:
    rig = world.rig
    order = await rig.submit(Side.BUY, "0.01", "1000")
    assert order is not None and order.status is S.ACCEPTED
    world.venue.drop_fills = 1  # the stream will lose the fill and the position update after it
    await world.tick("998", "999")  # the ask crosses our bid: filled at the venue
    fills = await world.sim.fetch_fills(BTC)
    assert len(fills) == 1 and order.status is S.ACCEPTED and rig.portfolio.qty(BTC) == 0
    assert rig.safety.state is TradingState.ACTIVE
    world.advance(rig.oms.limits.grace_window_s + 1)
    res = await rig.reconcile()
    assert [f.fill_id for f in res.missed_fills] == [fills[0].fill_id]
    assert rig.safety.state is TradingState.SAFE and rig.safety.code is ErrorCode.POSITION_MISMATCH
    assert order.status is S.FILLED and rig.portfolio.qty(BTC) == D("0.01")
    assert rig.audit.of("state_transition", kind="incident") and any(a[0] == "critical" for a in rig.alerts)
    ok, _checks = rig.safety.resume("operator")
    assert not ok  # positions not reconciled yet: the last cycle found a problem
    world.advance(5)
    res = await rig.reconcile()
    assert res.ok and rig.refusal() is None
    ok, _checks = rig.safety.resume("operator")
    assert ok and rig.safety.state is TradingState.ACTIVE
    # and the lost report, if it ever arrives, is not counted again
    for event in world.venue.dropped:
        rig.engine.on_report(event)  # type: ignore[arg-type]
    await rig.settle()
    assert rig.portfolio.qty(BTC) == D("0.01") and rig.oms.fills_applied == 1


async def test_duplicate_fill_messages_are_counted_once(world: World) -> None:
    rig = world.rig
    world.venue.duplicate = True
    order = await rig.submit(Side.BUY, "0.02", "1000")
    assert order is not None
    await world.tick("998", "999", size="0.005")  # partial: 0.005
    await world.tick("998", "999", size="1")  # the rest: 0.015
    assert order.status is S.FILLED and order.filled_qty == D("0.02")
    assert rig.portfolio.qty(BTC) == D("0.02") == await world.sim.fetch_position_snapshot(BTC) - rig.oms.baseline[BTC]
    assert rig.oms.baseline[BTC] == D("0.5")
    assert rig.oms.fills_applied == 2 and rig.oms.duplicate_fills == 2 and len(rig.audit.of("fill")) == 2
    # the simulated venue's position updates confirmed the fills: trading continues without waiting
    assert rig.refusal() is None and rig.safety.state is TradingState.ACTIVE


async def test_stream_drop_blocks_orders_until_it_recovers_and_reconciliation_agrees() -> None:
    w = World(feed=True)
    rig = await w.start()
    try:
        assert await rig.submit(Side.BUY, "0.01", "1000") is None  # not connected yet: fail closed
        assert rig.audit.of("order_event", event="refused")[-1]["code"] == "WS_STALE"
        w.venue.restore_stream()
        resting = await rig.submit(Side.BUY, "0.01", "1000")
        assert resting is not None and resting.status is S.ACCEPTED
        w.venue.drop_stream()
        await w.tick("998", "999")  # filled while the stream is down: the report is lost
        assert await rig.submit(Side.SELL, "0.01", "1200") is None
        assert rig.refusal() is ErrorCode.WS_STALE
        assert await rig.cancel("nothing") is False  # cancels are never gated (nothing to cancel here)
        w.venue.restore_stream()
        await rig.settle()  # the guard sees the recovery
        assert rig.refusal() is ErrorCode.DIRTY_POSITION  # fills may have been missed: reconcile first
        w.advance(rig.oms.limits.grace_window_s + 1)
        res = await rig.reconcile()
        assert len(res.recovered_fills) == 1 and resting.status is S.FILLED
        assert rig.safety.state is TradingState.ACTIVE  # an outage's fills recovered over REST are expected
        w.advance(5)
        await rig.reconcile()
        assert rig.refusal() is None
        again = await rig.submit(Side.SELL, "0.01", "1200")
        assert again is not None and again.status is S.ACCEPTED
        feed_rows = [(t["from_state"], t["to_state"]) for t in rig.audit.of("state_transition", kind="feed")]
        assert feed_rows == [("DOWN", "UP"), ("UP", "DOWN"), ("DOWN", "UP")]
    finally:
        await rig.stop()


async def test_submit_timeout_after_the_venue_got_it_leaves_exactly_one_order(world: World) -> None:
    rig = world.rig
    world.venue.timeout_next_place = "after"
    order = await rig.submit(Side.BUY, "0.01", "900")
    assert order is not None and order.status is S.ACCEPTED  # found by client id
    assert world.venue.place_calls == [order.client_order_id]
    assert [o.client_order_id for o in await world.sim.get_open_orders()] == [order.client_order_id]


async def test_submit_timeout_before_the_venue_is_never_resent(world: World) -> None:
    rig = world.rig
    world.venue.timeout_next_place = "before"
    order = await rig.submit(Side.BUY, "0.01", "900")
    assert order is not None and order.status is S.UNKNOWN
    assert rig.refusal() is ErrorCode.UNKNOWN_ORDER_STATUS
    world.advance(rig.oms.limits.grace_window_s + 1)
    await rig.reconcile()
    assert order.status is S.REJECTED and rig.refusal() is None
    assert world.venue.place_calls == [order.client_order_id] and await world.sim.get_open_orders() == []


async def test_exchange_side_cancel_is_followed(world: World) -> None:
    rig = world.rig
    a = await rig.submit(Side.BUY, "0.01", "900")
    b = await rig.submit(Side.BUY, "0.01", "901")
    assert a is not None and b is not None
    await world.venue.exchange_cancel(BTC, a.client_order_id)  # reported on the stream
    await rig.settle()
    assert a.status is S.CANCELED
    world.venue.stream_up = False  # this one's report is lost (without the stream being declared down)
    await world.venue.exchange_cancel(BTC, b.client_order_id)
    world.venue.stream_up = True
    await rig.settle()
    assert b.status is S.ACCEPTED
    res = await rig.reconcile()
    assert (b.client_order_id, "ACCEPTED", "CANCELED") in res.resolved and b.status is S.CANCELED
    assert rig.oms.live == {}


async def test_unknown_venue_order_is_cancelled(world: World) -> None:
    rig = world.rig
    await world.venue.foreign_order(OrderRequest("manual-1", BTC, Side.SELL, D("0.01"), OrderType.LIMIT, D("5000"), TimeInForce.GTC))
    assert len(await world.sim.get_open_orders()) == 1
    res = await rig.reconcile()
    assert res.unknown_orders == ["manual-1"]
    assert await world.sim.get_open_orders() == []
    assert rig.oms.orders["manual-1"].status is S.CANCELED
    assert any("manual-1" in text and "cancelling" in text for _, _, text in rig.alerts)


async def test_order_burst_breaches_the_rate_limit_and_goes_safe(world: World) -> None:
    rig = world.rig
    placed = 0
    for i in range(8):  # a runaway loop: 8 orders within 0.4 s
        if await rig.submit(Side.BUY, "0.01", str(900 - i)) is not None:
            placed += 1
        world.advance(0.05)
    assert placed == 5
    assert rig.safety.state is TradingState.SAFE and rig.safety.code is ErrorCode.ORDER_RATE_LIMIT_BREACH


async def test_place_cancel_storm_under_the_rate_limit_is_a_flip_flop(world: World) -> None:
    rig = world.rig
    cycles = 0
    while rig.safety.state is TradingState.ACTIVE and cycles < 200:
        order = await rig.submit(Side.BUY, "0.01", "900")
        assert order is not None, rig.audit.of("order_event", event="refused")[-1]
        assert await rig.cancel(order.client_order_id)
        cycles += 1
        world.advance(0.25)  # 4 per second: under the 5/s rate limit
    assert cycles == rig.oms.limits.flipflop_max_cycles + 1 == 151
    assert rig.safety.code is ErrorCode.FLIPFLOP_DETECTED
    assert rig.refusal() is ErrorCode.FLIPFLOP_DETECTED
