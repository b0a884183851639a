"""The order state machine through the OMS: the table, refused transitions, late fills, duplicates, out of order."""

from __future__ import annotations

import itertools

import pytest

from bot.domain.errors import DomainError, ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.order import LIVE_STATES, TERMINAL, TRANSITIONS, Order, OrderStatus
from bot.domain.venue import VenueError
from tests.oms.support import ASSET, D, S, rig



def _order() -> Order:
    return Order("c1", "i1", "s", "model", ASSET, Side.BUY, D("1"), OrderType.LIMIT, D("100"), TimeInForce.GTC, 0)


def test_table_covers_every_status_and_terminal_states_are_closed() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert TRANSITIONS[S.FILLED] == frozenset() and TRANSITIONS[S.REJECTED] == frozenset()
    # only a late fill leaves CANCELED / EXPIRED, and only to FILLED
    assert TRANSITIONS[S.CANCELED] == TRANSITIONS[S.EXPIRED] == frozenset({S.FILLED})
    assert LIVE_STATES.isdisjoint(TERMINAL) and LIVE_STATES | TERMINAL == set(OrderStatus)
    # UNKNOWN can be resolved to anything the venue may say, and is reachable from every live state after submit
    assert TRANSITIONS[S.UNKNOWN] >= {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED, S.REJECTED}
    for src in (S.PENDING_SUBMIT, S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL):
        assert S.UNKNOWN in TRANSITIONS[src]


@pytest.mark.parametrize(("src", "dst"), [(a, b) for a, b in itertools.product(OrderStatus, OrderStatus) if b not in TRANSITIONS[a] and a is not b])
def test_every_transition_outside_the_table_is_refused_and_changes_nothing(src: OrderStatus, dst: OrderStatus) -> None:
    o = _order()
    o.status = src
    with pytest.raises(DomainError) as err:
        o.transition(dst, 5)
    assert err.value.code is ErrorCode.ILLEGAL_TRANSITION
    assert o.status is src and o.updated_ns == 0


async def test_illegal_transition_from_the_venue_is_refused_and_audited_never_applied() -> None:
    r = rig()
    order = await r.oms.submit(r.intent())
    assert order is not None and order.status is S.ACCEPTED
    await r.oms.cancel(order.client_order_id)
    assert order.status is S.CANCELED
    # a stale acknowledgement after the cancel, then a rejection of a canceled order
    vo = r.venue.orders[order.client_order_id]
    r.venue.outbox.append(r.venue._report(vo, S.ACCEPTED))
    r.venue.outbox.append(r.venue._report(vo, S.REJECTED, code=ErrorCode.ORDER_REJECTED, reason="late"))
    r.venue.deliver(r.oms)
    assert order.status is S.CANCELED
    events = [(e["event"], e["from_status"], e["to_status"]) for e in r.audit.of("order_event", client_order_id=order.client_order_id)]
    assert ("stale", "CANCELED", "ACCEPTED") in events
    assert ("illegal", "CANCELED", "REJECTED") in events
    illegal = r.audit.of("order_event", event="illegal")[0]
    assert illegal["code"] == "ILLEGAL_TRANSITION" and "CANCELED -> REJECTED is not allowed" in illegal["reason"]


async def test_fill_after_cancel_request_and_after_canceled_is_applied_with_the_right_remainder() -> None:
    r = rig()
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None
    coid = order.client_order_id
    r.venue.execute(coid, D("0.2"))
    r.venue.fail["cancel"] = VenueError(ErrorCode.VENUE_UNAVAILABLE, "timeout")
    await r.oms.cancel(coid)  # cancel outcome unknown: stays PENDING_CANCEL
    assert order.status is S.PENDING_CANCEL
    r.venue.deliver(r.oms)  # the fill that raced the cancel
    assert order.status is S.PENDING_CANCEL and order.filled_qty == D("0.2")
    r.venue.exchange_cancel(coid)
    r.venue.execute(coid, D("0.3"))  # a late fill reported after CANCELED (it happened before the cancel took)
    r.venue.deliver(r.oms)
    assert order.status is S.CANCELED
    assert order.filled_qty == D("0.5") and order.unfilled == D("0.5") and order.remaining == 0 and order.open_qty == 0
    assert r.portfolio.qty(ASSET) == D("0.5")
    assert coid not in r.oms.live


async def test_late_fill_completing_a_canceled_order_ends_filled() -> None:
    r = rig()
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None
    r.venue.exchange_cancel(order.client_order_id)
    r.venue.execute(order.client_order_id, D("1"))
    r.venue.deliver(r.oms)
    assert order.status is S.FILLED and order.filled_qty == D("1")
    assert [e["to_status"] for e in r.audit.of("order_event", client_order_id=order.client_order_id)][-2:] == ["CANCELED", "FILLED"]


async def test_duplicate_reports_are_idempotent() -> None:
    r = rig()
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None
    _, report = r.venue.execute(order.client_order_id, D("0.4"))
    r.venue.outbox.append(report)
    r.venue.outbox.append(report)
    r.venue.deliver(r.oms)
    assert order.filled_qty == D("0.4") and r.portfolio.qty(ASSET) == D("0.4")
    assert len(r.audit.of("fill")) == 1 and r.oms.duplicate_fills == 2
    assert len(r.audit.of("order_event", event="fill")) == 1


async def test_out_of_order_fill_before_ack_then_stale_ack() -> None:
    r = rig()
    r.venue.place_mode = "timeout_placed"  # the answer is lost; the lookup resolves it
    r.venue.fail["fetch"] = VenueError(ErrorCode.VENUE_UNAVAILABLE, "down")
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None and order.status is S.UNKNOWN
    coid = order.client_order_id
    r.venue.execute(coid, D("0.25"))
    vo = r.venue.orders[coid]
    r.venue.outbox.append(r.venue._report(vo, S.ACCEPTED))  # the ack overtaken by the fill
    r.venue.deliver(r.oms)
    assert order.status is S.PARTIALLY_FILLED and order.filled_qty == D("0.25")
    assert r.audit.of("order_event", client_order_id=coid, event="stale")


async def test_partial_fills_never_double_count() -> None:
    r = rig()
    order = await r.oms.submit(r.intent(qty="1"))
    assert order is not None
    for q in ("0.1", "0.2", "0.3"):
        r.venue.execute(order.client_order_id, D(q))
    r.venue.deliver(r.oms)
    r.venue.outbox.extend(  # every report again (a reconnect replays the stream)
        r.venue._report(r.venue.orders[order.client_order_id], S.PARTIALLY_FILLED, f) for f in list(r.venue.fills)
    )
    r.venue.deliver(r.oms)
    assert order.filled_qty == D("0.6") and order.status is S.PARTIALLY_FILLED and order.remaining == D("0.4")
    assert r.portfolio.qty(ASSET) == D("0.6")
