"""The OMS's memory horizon (``oms.retention_s``): terminal orders and fill ids are forgotten after the retention,
and nothing that forgetting could let through gets through: no second order for an intent, no fill counted twice,
no zombie order adopted as someone else's."""

from __future__ import annotations

import pytest

from bot.domain.errors import ErrorCode
from bot.domain.intent import Side
from bot.domain.position import SeenFills
from bot.oms.limits import OmsLimits
from bot.oms.reconcile import Reconciler
from tests.oms.support import ASSET, D, S, direct_call, rig

RETENTION = 100.0


def limits(**kw: object) -> OmsLimits:
    return OmsLimits(retention_s=RETENTION, **kw)  # type: ignore[arg-type]


def test_seen_fills_forget_only_fills_older_than_the_cutoff_even_out_of_order() -> None:
    seen = SeenFills()
    assert seen.add(("v", "a"), 10) and seen.add(("v", "b"), 30) and seen.add(("v", "c"), 20)
    assert not seen.add(("v", "a"), 10)
    assert seen.forget_before(25) == 1  # "a" (10); "b" (30) stops the sweep, "c" (20) waits behind it
    assert ("v", "a") not in seen and ("v", "b") in seen and ("v", "c") in seen
    assert seen.forget_before(31) == 2 and len(seen) == 0


def test_retention_below_its_floor_is_refused() -> None:
    with pytest.raises(ValueError, match="retention_s"):
        OmsLimits(retention_s=59)
    with pytest.raises(ValueError, match="at least 100"):
        OmsLimits(retention_s=90, grace_window_s=10)  # ten grace windows


async def test_terminal_orders_are_retired_after_the_retention_and_live_ones_kept() -> None:
    r = rig(limits())
    filled = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    cancelled = await r.oms.submit(r.intent(Side.SELL, "1", "101"))
    resting = await r.oms.submit(r.intent(Side.BUY, "1", "99"))
    assert filled and cancelled and resting
    r.venue.execute(filled.client_order_id, D("1"))
    r.venue.deliver(r.oms)
    await r.oms.cancel(cancelled.client_order_id, "test")
    assert filled.status is S.FILLED and cancelled.status is S.CANCELED
    r.advance(RETENTION - 1)
    r.oms.check_timers()
    assert len(r.oms.orders) == 3  # not yet
    r.advance(2)
    r.oms.check_timers()
    assert set(r.oms.orders) == {resting.client_order_id}
    assert r.oms.orders_retired == 2 and r.oms.status()["orders_in_memory"] == 1
    assert len(r.portfolio.seen_fill_ids) == 0 and r.oms.fill_ids_forgotten == 1
    assert r.portfolio.qty(ASSET) == D("1")  # the position is a running sum: forgetting ids changes nothing
    r.advance(RETENTION * 10)
    r.oms.check_timers()
    assert set(r.oms.orders) == {resting.client_order_id}  # live orders are never retired


async def test_memory_stays_bounded_over_a_long_run() -> None:
    r = rig(limits(max_orders_per_s=D(100), flipflop_max_cycles=10_000))
    peak = 0
    for i in range(400):  # one order every 2 s for 800 s, eight retentions
        o = await r.oms.submit(r.intent(Side.BUY if i % 2 else Side.SELL, "0.1", "100"))
        assert o is not None
        if i % 3:
            await r.oms.cancel(o.client_order_id, "requote")
        else:
            r.venue.execute(o.client_order_id, D("0.1"))
            r.venue.position_update(ASSET)  # the venue's position agrees: the asset is clean again
            r.venue.deliver(r.oms)
        r.advance(2)
        r.oms.check_timers()
        peak = max(peak, len(r.oms.orders))
    assert peak <= RETENTION / 2 + 2  # what one retention holds, never the whole run
    assert r.oms.orders_retired >= 400 - peak
    assert len(r.portfolio.seen_fill_ids) <= RETENTION / 2 / 3 + 2


async def test_a_late_fill_restarts_the_clock_and_is_applied_once() -> None:
    r = rig(limits())
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    await r.oms.cancel(o.client_order_id, "test")
    r.advance(RETENTION - 10)
    fill, _ = r.venue.execute(o.client_order_id, D("1"))  # the venue reports a fill from before the cancel, late
    r.venue.deliver(r.oms)
    assert o.status is S.FILLED and r.portfolio.qty(ASSET) == D("1")
    r.advance(20)
    r.oms.check_timers()
    assert o.client_order_id in r.oms.orders  # changed 20 s ago: kept
    r.venue.deliver(r.oms)
    r.oms.on_report(r.venue._report(r.venue.orders[o.client_order_id], S.CANCELED, fill))  # duplicate
    assert r.portfolio.qty(ASSET) == D("1") and r.oms.duplicate_fills == 1
    r.advance(RETENTION)
    r.oms.check_timers()
    assert o.client_order_id not in r.oms.orders


async def test_an_order_waiting_for_fills_the_venue_reported_is_kept() -> None:
    r = rig(limits())
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    fill, report = r.venue.execute(o.client_order_id, D("0.4"))
    r.venue.outbox.clear()
    r.venue.exchange_cancel(o.client_order_id)
    r.venue.deliver(r.oms)  # CANCELED with cum filled 0.4, the fill itself lost
    assert o.status is S.CANCELED and o.client_order_id in r.oms.awaiting_fills()
    r.advance(RETENTION * 3)
    r.oms.check_timers()
    assert o.client_order_id in r.oms.orders


async def test_an_intent_older_than_the_retention_is_refused_so_a_retired_order_is_never_sent_twice() -> None:
    r = rig(limits())
    intent = r.intent(Side.BUY, "1", "100")
    o = await r.oms.submit(intent)
    assert o
    await r.oms.cancel(o.client_order_id, "test")
    r.advance(RETENTION + 1)
    r.oms.check_timers()
    assert o.client_order_id not in r.oms.orders
    places = [c for c in r.venue.calls if c[0] == "place"]
    assert await r.oms.submit(intent) is None  # the same intent again, after its order was retired
    assert [c for c in r.venue.calls if c[0] == "place"] == places
    refusal = r.audit.of("order_event", event="refused")[-1]
    assert refusal["code"] == ErrorCode.INVALID_ORDER.value and "older than oms.retention_s" in refusal["reason"]
    stale = r.intent(Side.BUY, "1", "100")
    r.advance(RETENTION + 1)
    assert await r.oms.submit(stale) is None  # any intent that old: its decision is stale anyway


async def test_a_report_for_a_retired_order_never_counts_its_fill_twice() -> None:
    r = rig(limits())
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    fill, report = r.venue.execute(o.client_order_id, D("1"))
    r.venue.deliver(r.oms)
    r.advance(RETENTION + 1)
    r.oms.check_timers()
    assert o.client_order_id not in r.oms.orders and (fill.venue, fill.fill_id) not in r.portfolio.seen_fill_ids
    r.oms.on_report(report)  # the stream replays it (a reconnect), long after
    assert r.portfolio.qty(ASSET) == D("1") and r.oms.fills_applied == 1 and r.oms.fills_beyond_horizon == 1
    event = r.audit.of("order_event", event="unknown_order")[-1]
    assert "retired from memory" in event["reason"]
    stale = r.audit.of("order_event", event="stale_fill")[-1]
    assert stale["code"] == ErrorCode.POSITION_MISMATCH.value and "beyond oms.retention_s" in stale["reason"]
    assert r.oms.check_new_order(ASSET).code is ErrorCode.DIRTY_POSITION  # type: ignore[union-attr]
    assert any("stale_fill" in key for _, key, _ in r.alerts)


async def test_reconciliation_refetching_forgotten_fills_does_not_count_them_twice_and_cleans_the_asset() -> None:
    r = rig(limits())
    rec = Reconciler(r.oms, full_scan_every=1)
    await rec.take_baseline(direct_call)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    fill, _ = r.venue.execute(o.client_order_id, D("1"))
    r.venue.position_update(ASSET)
    r.venue.deliver(r.oms)
    r.advance(RETENTION + 1)
    r.oms.check_timers()
    assert r.safe_calls == [] and r.oms.check_new_order(ASSET) is None
    rec.watermark.clear()  # as if the fill fetch had failed all along: the venue returns the old fill again
    res = await rec.reconcile_once(direct_call)
    assert [f.fill_id for f in res.beyond_horizon] == [fill.fill_id] and not res.missed_fills
    assert r.portfolio.qty(ASSET) == D("1") and r.safe_calls == []
    assert [a.status for a in res.assets if a.asset == ASSET] == ["ok"]
    assert r.oms.check_new_order(ASSET) is None  # the position agrees: clean again
    assert r.audit.of("reconciliation")[-1]["data"]["beyond_horizon"] == [fill.fill_id]


async def test_a_genuinely_lost_fill_older_than_the_retention_goes_safe_through_the_position_check() -> None:
    r = rig(limits(grace_window_s=3))
    rec = Reconciler(r.oms, full_scan_every=1)
    await rec.take_baseline(direct_call)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    r.venue.execute(o.client_order_id, D("1"))
    r.venue.outbox.clear()  # the stream lost it, and reconciliation could not reach the venue for a long time
    r.venue.orders[o.client_order_id].filled = D("0")  # ... and the cancel report does not say it was filled
    r.venue.exchange_cancel(o.client_order_id)
    r.venue.deliver(r.oms)
    assert o.status is S.CANCELED and r.oms.check_new_order(ASSET) is None
    r.advance(RETENTION + 1)
    r.oms.check_timers()
    assert o.client_order_id not in r.oms.orders and r.safe_calls == []
    res = await rec.reconcile_once(direct_call)
    assert len(res.beyond_horizon) == 1 and r.portfolio.qty(ASSET) == D("0")  # never applied unverified
    assert [a.status for a in res.assets if a.asset == ASSET] == ["mismatch"]
    r.advance(4)
    await rec.reconcile_once(direct_call)
    assert r.safe_codes == [ErrorCode.POSITION_MISMATCH]


@pytest.mark.parametrize("policy", ["cancel", "adopt"])
async def test_a_retired_order_open_at_the_venue_is_cancelled_there_whatever_the_policy(policy: str) -> None:
    r = rig(limits(unknown_orders=policy))
    rec = Reconciler(r.oms, full_scan_every=1)
    await rec.take_baseline(direct_call)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    await r.oms.cancel(o.client_order_id, "test")
    r.advance(RETENTION + 1)
    r.oms.check_timers()
    assert o.client_order_id not in r.oms.orders
    r.venue.orders[o.client_order_id].status = S.ACCEPTED  # the venue lists it open again (its cancel never took)
    res = await rec.reconcile_once(direct_call)
    assert res.zombies == [(ASSET, o.client_order_id, o.venue_order_id)] and not res.unknown_orders
    assert r.venue.orders[o.client_order_id].status is S.CANCELED
    assert o.client_order_id not in r.oms.orders  # not adopted as someone else's
