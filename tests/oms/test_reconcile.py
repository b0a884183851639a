"""Reconciliation (spec 4.7.3): fetch outside the loop, apply inside it; grace, thresholds, fail fast."""

from __future__ import annotations

from decimal import Decimal

from bot.domain.errors import ErrorCode
from bot.domain.intent import Side
from bot.domain.venue import OrderRequest, VenueError
from bot.oms.limits import OmsLimits
from bot.oms.reconcile import Reconciler, reconcile_once
from tests.oms.support import ASSET, ASSET2, D, S, direct_call, rig


async def test_silent_fill_is_left_to_the_stream_within_grace_then_applied_once_with_safe_and_resolved() -> None:
    r = rig()
    rec = Reconciler(r.oms)
    await rec.take_baseline(direct_call)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    fill, _ = r.venue.execute(o.client_order_id, D("0.4"))
    r.venue.outbox.clear()  # the stream never delivers it
    r.advance(1)
    res = await rec.reconcile_once(direct_call)
    assert res.recent_fills == 1 and not res.missed_fills and r.safe_calls == []
    assert [a.status for a in res.assets if a.asset == ASSET] == ["grace"]
    r.advance(r.oms.limits.grace_window_s)
    res = await rec.reconcile_once(direct_call)
    assert [f.fill_id for f in res.missed_fills] == [fill.fill_id] and not res.ok
    assert r.safe_codes == [ErrorCode.POSITION_MISMATCH] and "missed by the stream" in r.safe_calls[0][1]
    assert o.filled_qty == D("0.4") and o.status is S.PARTIALLY_FILLED and r.portfolio.qty(ASSET) == D("0.4")
    assert r.audit.of("fill", fill_id=fill.fill_id)[0]["data"]["source"] == "reconciliation"
    incident = r.audit.of("state_transition", kind="incident")[0]
    assert incident["code"] == "POSITION_MISMATCH" and incident["data"]["fills"][0]["id"] == fill.fill_id
    assert rec.resume_check()[0] is False
    # resolved: the next cycle agrees, the asset is clean again, the resume check passes
    r.advance(5)
    res = await rec.reconcile_once(direct_call)
    assert res.ok and r.oms.check_new_order(ASSET) is None and rec.resume_check()[0] is True
    # the stream delivers it late after all: not counted twice
    r.oms.on_report(r.venue._report(r.venue.orders[o.client_order_id], S.PARTIALLY_FILLED, fill))
    assert r.portfolio.qty(ASSET) == D("0.4")
    assert r.safe_codes == [ErrorCode.POSITION_MISMATCH]


async def test_persistent_position_mismatch_goes_safe_with_incident_after_the_grace_window() -> None:
    r = rig(OmsLimits(grace_window_s=3))
    rec = Reconciler(r.oms)
    await rec.take_baseline(direct_call)
    r.venue.positions_extra[ASSET] = D("0.5")  # appears at the venue without a fill (transfer, manual trade elsewhere)
    res = await rec.reconcile_once(direct_call)
    assert [a.status for a in res.assets if a.asset == ASSET] == ["mismatch"] and r.safe_calls == []
    assert r.oms.check_new_order(ASSET).code is ErrorCode.DIRTY_POSITION  # type: ignore[union-attr]
    r.advance(2)
    await rec.reconcile_once(direct_call)
    assert r.safe_calls == []  # persisted, but not yet past the grace window
    r.advance(1)
    res = await rec.reconcile_once(direct_call)
    assert r.safe_codes == [ErrorCode.POSITION_MISMATCH] and res.safe == [ErrorCode.POSITION_MISMATCH]
    assert "persistent position mismatch" in r.safe_calls[0][1]
    incident = r.audit.of("state_transition", kind="incident")[0]
    assert incident["data"]["venue_qty"] == D("0.5") and incident["data"]["internal_qty"] == D("0")
    rows = r.audit.of("reconciliation", asset=ASSET)
    assert rows and rows[-1]["ok"] is False and rows[-1]["venue_qty"] == D("0.5") and rows[-1]["code"] == "POSITION_MISMATCH"
    r.advance(5)
    await rec.reconcile_once(direct_call)
    assert r.safe_codes == [ErrorCode.POSITION_MISMATCH]  # one request for the episode


async def test_relative_and_absolute_tolerance() -> None:
    r = rig(OmsLimits(mismatch_threshold=Decimal("0.001"), mismatch_abs_qty=Decimal("0.00001")))
    rec = Reconciler(r.oms)
    await rec.take_baseline(direct_call)
    o = await r.oms.submit(r.intent(Side.BUY, "10", "100"))
    assert o
    r.venue.execute(o.client_order_id, D("10"))
    r.venue.deliver(r.oms)
    r.advance(10)
    r.venue.positions_extra[ASSET] = D("0.009")  # 0.09 % of 10.009: within 0.1 %
    res = await rec.reconcile_once(direct_call)
    assert [a.status for a in res.assets if a.asset == ASSET] == ["ok"]
    r.venue.positions_extra[ASSET] = D("0.011")
    res = await rec.reconcile_once(direct_call)
    assert [a.status for a in res.assets if a.asset == ASSET] == ["mismatch"]
    assert r.oms.limits.agrees(D("0"), D("0.00001")) and not r.oms.limits.agrees(D("0"), D("0.000011"))


async def test_baseline_takes_existing_holdings_and_ignores_fill_history() -> None:
    r = rig()
    old = r.venue
    old.positions_extra[ASSET] = D("3")  # held before this run
    old.foreign_order("prev-run-1")
    old.execute("prev-run-1", D("0.2"))  # history: traded before this run started
    old.outbox.clear()
    r.advance(10)
    rec = Reconciler(r.oms)
    rec.started_ns = r.clock.now_ns()  # the reconciler of a run that starts now
    res = await rec.take_baseline(direct_call)
    assert r.oms.baseline[ASSET] == D("3.2") and r.portfolio.qty(ASSET) == 0
    assert res.history_fills == 1 and not res.missed_fills and rec.watermark[ASSET] == "t1"
    assert res.unknown_orders == ["prev-run-1"] and res.cancels == ["prev-run-1"]
    assert r.venue.orders["prev-run-1"].status is S.CANCELED  # cancelled by default
    assert r.oms.orders["prev-run-1"].status is S.CANCELED and r.oms.orders["prev-run-1"].tag == "unknown"
    assert r.audit.of("order", client_order_id="prev-run-1")[0]["data"]["origin"] == "venue"
    assert not [a for a in res.assets if a.status == "mismatch"]


async def test_unknown_venue_orders_adopted_when_configured() -> None:
    r = rig(OmsLimits(unknown_orders="adopt"))
    rec = Reconciler(r.oms)
    r.venue.foreign_order("manual-1", Side.SELL, "0.5", "120")
    res = await rec.reconcile_once(direct_call)
    assert res.unknown_orders == ["manual-1"] and res.cancels == []
    adopted = r.oms.orders["manual-1"]
    assert adopted.status is S.ACCEPTED and adopted.tag == "adopted" and adopted.strategy_id == ""
    assert r.oms.open_exposure(ASSET) == (D("0"), D("0.5"))  # risk sees its exposure
    assert r.venue.orders["manual-1"].status is S.ACCEPTED
    assert r.alerts and "adopted" in r.alerts[-1][2]
    res = await rec.reconcile_once(direct_call)
    assert res.unknown_orders == []  # tracked now


async def test_exchange_side_cancel_missed_by_the_stream_is_resolved_by_lookup() -> None:
    r = rig()
    rec = Reconciler(r.oms)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    r.venue.exchange_cancel(o.client_order_id)
    r.venue.outbox.clear()  # the stream lost the cancel
    res = await rec.reconcile_once(direct_call)
    assert (o.client_order_id, "ACCEPTED", "CANCELED") in res.resolved and o.status is S.CANCELED
    assert ("fetch", o.client_order_id) in r.venue.calls


async def test_acknowledged_order_the_venue_no_longer_knows_is_never_dropped() -> None:
    r = rig(OmsLimits(grace_window_s=3))
    rec = Reconciler(r.oms)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    del r.venue.orders[o.client_order_id]  # the venue lost it
    await rec.reconcile_once(direct_call)
    assert o.status is S.UNKNOWN and o.client_order_id in r.oms.live
    assert r.oms.check_new_order(ASSET).code is ErrorCode.UNKNOWN_ORDER_STATUS  # type: ignore[union-attr]
    r.advance(4)
    res = await rec.reconcile_once(direct_call)
    assert o.status is S.UNKNOWN and r.safe_codes == [ErrorCode.POSITION_MISMATCH]
    assert res.safe == [ErrorCode.POSITION_MISMATCH]


async def test_order_we_hold_closed_but_open_at_the_venue_is_cancelled_there() -> None:
    r = rig()
    rec = Reconciler(r.oms)
    r.venue.place_mode = "timeout_lost"
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o and o.status is S.UNKNOWN
    r.advance(5)
    await rec.reconcile_once(direct_call)
    assert o.status is S.REJECTED  # not found after the grace window
    # ...yet it shows up (the request had been delayed, not lost)
    r.venue.place_mode = "ack"
    await r.venue.place_order(OrderRequest(o.client_order_id, ASSET, Side.BUY, D("1"), o.order_type, D("100"), o.tif))
    r.advance(1)
    res = await rec.reconcile_once(direct_call)
    assert res.zombies == [(ASSET, o.client_order_id, r.venue.orders[o.client_order_id].venue_order_id)]
    assert r.venue.orders[o.client_order_id].status is S.CANCELED
    assert r.audit.of("order_event", event="zombie_cancel")


async def test_venue_reporting_more_filled_than_our_fills_fetches_them() -> None:
    r = rig()
    rec = Reconciler(r.oms, full_scan_every=1000)
    await rec.take_baseline(direct_call)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    r.venue.execute(o.client_order_id, D("0.3"))
    r.venue.outbox.clear()
    r.venue.positions_extra[ASSET] = D("-0.3")  # the position happens to look unchanged: only the order tells
    r.advance(10)
    res = await rec.reconcile_once(direct_call)
    assert [f.qty for f in res.missed_fills] == [D("0.3")]


async def test_fetch_failure_is_audited_and_does_not_renew_freshness() -> None:
    r = rig()
    rec = Reconciler(r.oms)
    r.venue.fail["positions"] = VenueError(ErrorCode.VENUE_UNAVAILABLE, "503")
    res = await reconcile_once(rec, direct_call)
    assert not res.ok and res.errors == ["VENUE_UNAVAILABLE: 503"]
    row = r.audit.of("reconciliation")[-1]
    assert row["ok"] is False and row["code"] == "VENUE_UNAVAILABLE" and "fetch failed" in row["detail"]
    assert r.oms.gates.last_reconcile_ok_ns is None


async def test_watermark_limits_the_fills_fetched() -> None:
    r = rig()
    rec = Reconciler(r.oms, full_scan_every=1)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    r.venue.execute(o.client_order_id, D("0.5"))
    r.venue.deliver(r.oms)
    r.advance(10)
    await rec.reconcile_once(direct_call)
    assert rec.watermark == {ASSET: "t1"}
    snap = await rec.fetch()
    assert snap.fills == {ASSET: (), ASSET2: ()}


async def test_reconciliation_summary_row_every_cycle() -> None:
    r = rig()
    rec = Reconciler(r.oms)
    res = await rec.reconcile_once(direct_call)
    assert res.ok
    row = r.audit.of("reconciliation")[-1]
    assert row["asset"] is None and row["ok"] is True and row["venue"] == "model" and "2 asset(s)" in row["detail"]


async def test_lost_late_fills_that_net_to_zero_are_found_by_the_periodic_full_scan() -> None:
    """A buy and a sell, both cancelled, both filled late at the venue, both reports lost: the position agrees
    (+x - x = 0), so no targeted look finds them; the full scan every ``full_scan_every`` cycles does."""
    r = rig(OmsLimits(grace_window_s=3))
    rec = Reconciler(r.oms, full_scan_every=3)
    await rec.take_baseline(direct_call)  # cycle 1 (a full scan)
    buy = await r.oms.submit(r.intent(Side.BUY, "0.1", "100"))
    sell = await r.oms.submit(r.intent(Side.SELL, "0.1", "100"))
    assert buy and sell
    for o in (buy, sell):
        await r.oms.cancel(o.client_order_id, "test")
    r.venue.deliver(r.oms)
    fills = [r.venue.execute(o.client_order_id, D("0.1"), D("101"))[0] for o in (buy, sell)]
    r.venue.outbox.clear()  # the stream loses both late fills
    r.advance(10)
    res = await rec.reconcile_once(direct_call)  # cycle 2: targeted, the position agrees
    assert not res.missed_fills and [a.status for a in res.assets if a.asset == ASSET] == ["ok"]
    res = await rec.reconcile_once(direct_call)  # cycle 3: targeted
    assert not res.missed_fills and r.oms.fills_applied == 0
    res = await rec.reconcile_once(direct_call)  # cycle 4 (cycles % 3 == 0): the full scan
    assert sorted(f.fill_id for f in res.missed_fills) == sorted(f.fill_id for f in fills)
    assert r.safe_codes == [ErrorCode.POSITION_MISMATCH] and r.portfolio.qty(ASSET) == D("0")
    assert buy.filled_qty == sell.filled_qty == D("0.1") and r.oms.fills_applied == 2
