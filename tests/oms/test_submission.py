"""Idempotent submission: deterministic client ids, lookup before anything else, never a second order."""

from __future__ import annotations

import dataclasses

from bot.domain.errors import ErrorCode
from bot.domain.venue import VenueError
from bot.oms.orders import client_order_id
from bot.oms.reconcile import Reconciler
from tests.oms.support import ASSET, D, S, direct_call, rig


async def test_client_order_id_is_intent_id_and_attempt_and_a_second_submit_is_refused() -> None:
    r = rig()
    intent = r.intent()
    order = await r.oms.submit(intent)
    assert order is not None and order.client_order_id == client_order_id(intent.id, 0) == f"{intent.id}-0"
    assert await r.oms.submit(intent) is None  # the engine or an operator confirming twice
    assert [c for c in r.venue.calls if c[0] == "place"] == [("place", order.client_order_id)]
    refused = r.audit.of("order_event", event="refused")[-1]
    assert refused["code"] == "INVALID_ORDER" and "never a second order for the same intent" in refused["reason"]


async def test_intent_ids_without_the_run_prefix_are_refused() -> None:
    r = rig()
    intent = r.intent()
    foreign = dataclasses.replace(intent, id="otherrun-1")
    assert await r.oms.submit(foreign) is None
    assert not r.venue.calls
    assert "would not be unique across restarts" in r.audit.of("order_event", event="refused")[0]["reason"]


async def test_submit_timeout_with_the_order_placed_is_resolved_by_lookup_exactly_one_order() -> None:
    r = rig()
    r.venue.place_mode = "timeout_placed"
    order = await r.oms.submit(r.intent())
    assert order is not None and order.status is S.ACCEPTED and order.venue_order_id == "1"
    assert [c[0] for c in r.venue.calls] == ["place", "fetch"]  # looked up by client id, not resubmitted
    assert len(r.venue.orders) == 1
    events = [e["event"] for e in r.audit.of("order_event", client_order_id=order.client_order_id)]
    assert events == ["submit", "lookup", "resolved"]


async def test_unknown_status_answer_is_resolved_by_lookup() -> None:
    r = rig()
    r.venue.place_mode = "unknown_placed"
    order = await r.oms.submit(r.intent())
    assert order is not None and order.status is S.ACCEPTED
    assert [c[0] for c in r.venue.calls] == ["place", "fetch"]


async def test_adapter_failure_of_an_unknown_kind_is_treated_as_unknown_outcome() -> None:
    r = rig()

    async def boom(request: object) -> object:
        r.venue.calls.append(("place", "boom"))
        raise TimeoutError("read timed out")

    r.venue.place_order = boom  # type: ignore[method-assign]
    order = await r.oms.submit(r.intent())
    assert order is not None and order.status is S.UNKNOWN  # lookup: not found (the request never arrived)
    assert ("fetch", order.client_order_id) in r.venue.calls


async def test_timeout_before_the_venue_then_grace_window_then_rejected_and_never_resent() -> None:
    r = rig()
    r.venue.place_mode = "timeout_lost"
    order = await r.oms.submit(r.intent())
    assert order is not None and order.status is S.UNKNOWN
    # the asset is blocked while we do not know
    refusal = r.oms.check_new_order(ASSET)
    assert refusal is not None and refusal.code is ErrorCode.UNKNOWN_ORDER_STATUS
    assert r.oms.check_new_order("ETH/USDT") is None
    rec = Reconciler(r.oms)
    res = await rec.reconcile_once(direct_call)
    assert order.status is S.UNKNOWN and not res.resolved  # within the grace window: look again later
    r.advance(r.oms.limits.grace_window_s + 1)
    res = await rec.reconcile_once(direct_call)
    assert order.status is S.REJECTED and res.resolved == [(order.client_order_id, "UNKNOWN", "REJECTED")]
    assert r.oms.check_new_order(ASSET) is None
    assert [c for c in r.venue.calls if c[0] == "place"] == [("place", order.client_order_id)]


async def test_late_ack_resolves_an_unknown_order() -> None:
    r = rig()
    r.venue.place_mode = "timeout_placed"
    r.venue.fail["fetch"] = VenueError(ErrorCode.VENUE_UNAVAILABLE, "lookup timed out")
    order = await r.oms.submit(r.intent())
    assert order is not None and order.status is S.UNKNOWN
    r.venue.outbox.append(r.venue._report(r.venue.orders[order.client_order_id], S.ACCEPTED))
    r.venue.deliver(r.oms)
    assert order.status is S.ACCEPTED and not r.oms.gates.unknown_orders


async def test_venue_rejection_allows_an_explicit_retry_attempt_only_then() -> None:
    r = rig()
    r.venue.place_mode = "reject"
    intent = r.intent()
    order = await r.oms.submit(intent)
    assert order is not None and order.status is S.REJECTED
    assert r.audit.of("order_event", event="reject")[0]["code"] == "INSUFFICIENT_BALANCE"
    r.venue.place_mode = "ack"
    assert await r.oms.submit(intent) is None  # attempt 0 again: refused
    retry = await r.oms.submit(intent, attempt=1)
    assert retry is not None and retry.client_order_id == f"{intent.id}-1" and retry.status is S.ACCEPTED
    assert await r.oms.submit(intent, attempt=2) is None  # attempt 1 is live: never a second order


async def test_no_retry_when_an_earlier_attempt_may_exist() -> None:
    r = rig()
    r.venue.place_mode = "timeout_lost"
    intent = r.intent()
    await r.oms.submit(intent)
    r.venue.place_mode = "ack"
    assert await r.oms.submit(intent, attempt=1) is None
    assert len([c for c in r.venue.calls if c[0] == "place"]) == 1


async def test_invalid_orders_are_refused_before_the_venue() -> None:
    r = rig()
    assert await r.oms.submit(r.intent(qty="0.0001")) is None  # below the lot after rounding
    assert await r.oms.submit(r.intent(asset="XRP/USDT")) is None
    assert not r.venue.calls
    assert {e["code"] for e in r.audit.of("order_event", event="refused")} == {"INVALID_ORDER"}


async def test_cancel_refused_because_the_order_filled_looks_it_up_and_waits_for_the_fills() -> None:
    r = rig()
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None
    coid = order.client_order_id
    r.venue.execute(coid, D("1"))  # filled at the venue, the report not yet delivered
    assert not await r.oms.cancel(coid)
    assert order.status is S.PENDING_CANCEL  # FILLED needs the fill, not a status
    assert r.oms.gates.dirty.is_dirty(ASSET) and r.oms.awaiting_fills() == {coid: D("1")}
    r.venue.deliver(r.oms)
    assert order.status is S.FILLED and not r.oms.awaiting_fills()


async def test_cancel_refused_while_the_order_is_still_open_reverts_the_status() -> None:
    r = rig()
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None
    r.venue.fail["cancel"] = VenueError(ErrorCode.ORDER_REJECTED, "Order was not canceled due to cancel restrictions.", venue_code="-2011")
    assert not await r.oms.cancel(order.client_order_id)
    assert order.status is S.ACCEPTED
    assert [e["event"] for e in r.audit.of("order_event", client_order_id=order.client_order_id)][-2:] == ["cancel_failed", "cancel_rejected"]
    assert await r.oms.cancel(order.client_order_id)  # and it can be cancelled again
    assert order.status is S.CANCELED


async def test_cancel_timeout_is_resent_by_reconciliation() -> None:
    r = rig()
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None
    r.venue.fail["cancel"] = VenueError(ErrorCode.VENUE_UNAVAILABLE, "timeout")
    assert not await r.oms.cancel(order.client_order_id)
    assert order.status is S.PENDING_CANCEL
    rec = Reconciler(r.oms)
    r.advance(r.oms.limits.grace_window_s + 1)
    res = await rec.reconcile_once(direct_call)
    assert res.cancels == [order.client_order_id]
    assert order.status is S.CANCELED
    assert r.audit.of("order_event", event="cancel_retry")
