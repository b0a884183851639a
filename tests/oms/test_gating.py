"""The OMS's own gates: dirty positions, stream health, placement rate, flip-flop, reconciliation freshness."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.errors import ErrorCode
from bot.domain.intent import Side
from bot.oms.limits import OmsLimits
from bot.oms.reconcile import Reconciler
from bot.oms.spam import FlipFlopDetector, RateLimiter
from tests.oms.support import ASSET, ASSET2, SEC, D, direct_call, rig


def _code(r, asset: str = ASSET) -> ErrorCode | None:  # type: ignore[no-untyped-def]
    refusal = r.oms.check_new_order(asset)
    return refusal.code if refusal else None


# ----------------------------------------------------------------------------- dirty flags
async def test_fill_makes_the_asset_dirty_blocking_new_orders_not_cancels_until_the_venue_agrees() -> None:
    r = rig()
    a = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    b = await r.oms.submit(r.intent(Side.SELL, "1", "120"))
    assert a and b
    r.venue.execute(a.client_order_id, D("0.5"))
    r.venue.deliver(r.oms)
    assert _code(r) is ErrorCode.DIRTY_POSITION and _code(r, ASSET2) is None
    assert await r.oms.submit(r.intent(Side.BUY, "1", "99")) is None
    refused = r.audit.of("order_event", event="refused")[-1]
    assert refused["code"] == "DIRTY_POSITION" and "fill t1" in refused["reason"]
    assert await r.oms.cancel(b.client_order_id)  # cancels are allowed while dirty
    # a position update that does not agree (it predates the fill) keeps it dirty
    r.oms.on_position(type(r.venue.position_update(ASSET))("model", ASSET, D("0"), 0, 0))
    assert _code(r) is ErrorCode.DIRTY_POSITION
    r.venue.outbox.clear()
    r.venue.position_update(ASSET)  # 0.5: agrees
    r.venue.deliver(r.oms)
    assert _code(r) is None
    rows = [(t["from_state"], t["to_state"]) for t in r.audit.of("state_transition", kind="dirty", scope=ASSET)]
    assert rows == [("CLEAN", "DIRTY"), ("DIRTY", "CLEAN")]


async def test_dirty_past_max_age_requests_safe_once_per_episode() -> None:
    r = rig(OmsLimits(dirty_max_age_s=15))
    a = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert a
    r.venue.execute(a.client_order_id, D("1"))
    r.venue.deliver(r.oms)
    r.advance(15)
    r.oms.check_timers()
    assert r.safe_calls == []
    r.advance(0.001)
    r.oms.check_timers()
    r.oms.check_timers()
    assert r.safe_codes == [ErrorCode.DIRTY_POSITION]
    assert r.audit.of("state_transition", kind="oms_safe")[0]["scope"] == ASSET
    assert r.audit.of("state_transition", kind="incident")[0]["data"]["cause"] == "fill t1 (stream)"
    assert r.alerts[-1][0] == "critical"


async def test_a_disagreeing_position_update_on_a_clean_asset_makes_it_dirty() -> None:
    r = rig()
    r.venue.positions_extra[ASSET] = D("2")  # somebody moved funds
    r.venue.position_update(ASSET)
    r.venue.deliver(r.oms)
    assert _code(r) is ErrorCode.DIRTY_POSITION


# ----------------------------------------------------------------------------- stream health
async def test_stream_down_or_stale_blocks_new_orders_and_recovery_waits_for_reconciliation() -> None:
    r = rig(feed_stale_s=30)
    feed = r.oms.feed
    assert feed is not None
    assert _code(r) is ErrorCode.WS_STALE  # fail closed: not connected yet
    feed.connected()
    assert _code(r) is None
    r.advance(31)
    assert _code(r) is ErrorCode.WS_STALE and "stale" in r.oms.check_new_order(ASSET).reason  # type: ignore[union-attr]
    feed.alive()
    # healthy again, but it was silent: fills may have been missed, every asset waits for a reconciliation
    assert _code(r) is ErrorCode.DIRTY_POSITION
    rec = Reconciler(r.oms)
    await rec.reconcile_once(direct_call)
    assert _code(r) is None
    feed.disconnected("connection reset")
    assert await r.oms.submit(r.intent()) is None
    assert r.audit.of("order_event", event="refused")[-1]["code"] == "WS_STALE"
    feed.connected()
    # back, but fills may have been missed: every asset is dirty until a reconciliation agrees
    assert _code(r) is ErrorCode.DIRTY_POSITION and _code(r, ASSET2) is ErrorCode.DIRTY_POSITION
    await rec.reconcile_once(direct_call)
    assert _code(r) is None and _code(r, ASSET2) is None
    feeds = [(t["from_state"], t["to_state"]) for t in r.audit.of("state_transition", kind="feed")]
    assert feeds == [("DOWN", "UP"), ("UP", "DOWN"), ("DOWN", "UP"), ("UP", "DOWN"), ("DOWN", "UP")]


async def test_a_drop_and_reconnect_between_two_looks_is_not_missed() -> None:
    r = rig(feed_stale_s=30)
    feed = r.oms.feed
    assert feed is not None
    feed.connected()
    r.oms.check_timers()
    feed.disconnected("blip")
    feed.connected()
    r.oms.check_timers()
    assert _code(r) is ErrorCode.DIRTY_POSITION
    assert [t["to_state"] for t in r.audit.of("state_transition", kind="feed")] == ["UP", "DOWN", "UP"]


# ----------------------------------------------------------------------------- spam controls
def test_rate_limiter_windows() -> None:
    five = RateLimiter(Decimal("5"))
    assert (five.window_ns, five.max_count) == (SEC, 5)
    half = RateLimiter(Decimal("0.5"))
    assert (half.window_ns, half.max_count) == (2 * SEC, 1)
    odd = RateLimiter(Decimal("2.5"))
    assert (odd.window_ns, odd.max_count) == (SEC, 2)
    for t in range(5):
        assert five.allows("A", t)
        five.record("A", t)
    assert not five.allows("A", SEC - 1) and five.allows("B", 0)
    assert five.allows("A", SEC)  # the first one left the window
    with pytest.raises(ValueError):
        RateLimiter(Decimal(0))
    ff = FlipFlopDetector(60 * SEC, 2)
    assert [ff.record_cycle("A", t) for t in (0, 1, 2)] == [1, 2, 3] and ff.breached("A", 2)
    assert not ff.breached("A", 60 * SEC + 1)


async def test_sixth_order_in_a_second_is_refused_and_requests_safe() -> None:
    r = rig()
    for i in range(5):
        assert await r.oms.submit(r.intent(Side.BUY, "0.01", str(90 + i)))
        r.advance(0.1)
    assert await r.oms.submit(r.intent(Side.BUY, "0.01", "80")) is None
    assert r.safe_codes == [ErrorCode.ORDER_RATE_LIMIT_BREACH]
    assert await r.oms.submit(r.intent(Side.BUY, "0.01", "80", asset=ASSET2))  # per asset
    assert await r.oms.submit(r.intent(Side.BUY, "0.01", "80")) is None
    assert r.safe_codes == [ErrorCode.ORDER_RATE_LIMIT_BREACH]  # one request per episode
    r.advance(0.6)  # the first order left the one-second window
    assert await r.oms.submit(r.intent(Side.BUY, "0.01", "80"))
    assert len([c for c in r.venue.calls if c[0] == "place"]) == 7


async def test_place_cancel_storm_is_a_flip_flop() -> None:
    r = rig(OmsLimits(flipflop_max_cycles=10, flipflop_window_s=60, max_orders_per_s=Decimal(100)))
    for _ in range(10):
        o = await r.oms.submit(r.intent(Side.BUY, "0.01", "90"))
        assert o is not None
        await r.oms.cancel(o.client_order_id)
        r.advance(1)
    assert r.safe_calls == []
    o = await r.oms.submit(r.intent(Side.BUY, "0.01", "90"))
    assert o is not None
    await r.oms.cancel(o.client_order_id)  # the 11th cycle within the minute
    assert r.safe_codes == [ErrorCode.FLIPFLOP_DETECTED]
    assert _code(r) is ErrorCode.FLIPFLOP_DETECTED and _code(r, ASSET2) is None
    r.advance(60)
    assert _code(r) is None


async def test_cycles_with_fills_and_safety_cancels_are_not_flip_flops() -> None:
    r = rig(OmsLimits(flipflop_max_cycles=2, max_orders_per_s=Decimal(100)))
    for _ in range(3):
        o = await r.oms.submit(r.intent(Side.BUY, "1", "90"))
        assert o is not None
        r.venue.execute(o.client_order_id, D("0.1"))
        r.venue.deliver(r.oms)
        r.venue.position_update(ASSET)
        r.venue.deliver(r.oms)
        await r.oms.cancel(o.client_order_id)  # it traded: not a place/cancel cycle
    for _ in range(3):
        assert await r.oms.submit(r.intent(Side.BUY, "0.01", "90"))
    await r.oms.cancel_all(reason="kill")
    assert r.safe_calls == [] and _code(r) is None


# ----------------------------------------------------------------------------- reconciliation freshness
async def test_new_orders_stop_when_scheduled_reconciliation_stops() -> None:
    r = rig(OmsLimits(reconcile_max_age_s=30))
    rec = Reconciler(r.oms)
    await rec.take_baseline(direct_call)
    r.advance(100)
    assert _code(r) is None  # the start-up baseline does not arm the gate: nothing schedules yet
    await rec.reconcile_once(direct_call)
    r.advance(30)
    assert _code(r) is None
    r.advance(1)
    r.oms.check_timers()
    assert _code(r) is ErrorCode.RECONCILE_STALE
    stale = r.audit.of("state_transition", kind="reconcile")
    assert [(t["from_state"], t["to_state"]) for t in stale] == [("FRESH", "STALE")]
    await rec.reconcile_once(direct_call)
    assert _code(r) is None
    assert r.audit.of("state_transition", kind="reconcile")[-1]["to_state"] == "FRESH"
