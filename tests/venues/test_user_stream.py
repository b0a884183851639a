"""The user-data stream: reports to the sink, duplicates dropped, missed fills recovered over REST."""

from __future__ import annotations

from decimal import Decimal

from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.order import OrderStatus
from bot.domain.venue import OrderRequest
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import Harness, is_gap, is_status

D = Decimal


def buy(coid: str, qty: str = "0.1", price: str = "99") -> OrderRequest:
    return OrderRequest(coid, "BTC/USDT", Side.BUY, D(qty), OrderType.LIMIT, D(price), TimeInForce.GTC)


async def test_cancels_and_expiries_carry_our_client_order_id(fake: FakeBinance, harness: Harness) -> None:
    for coid in ("mine-1", "venue-1", "exp-1"):
        await harness.venue.place_order(buy(coid))
    await harness.venue.cancel_order("BTC/USDT", "mine-1")
    fake.exchange_cancel("venue-1")
    fake.exchange_expire("exp-1")
    canceled = await harness.reports.wait_for(lambda r: r.client_order_id == "venue-1" and r.status is OrderStatus.CANCELED)
    assert canceled.venue_order_id == str(fake.order("venue-1").order_id) and "canceled at the venue" in canceled.reason
    expired = await harness.reports.wait_for(lambda r: r.client_order_id == "exp-1" and r.status is OrderStatus.EXPIRED)
    assert expired.ts_ns > 0 and expired.local_ts_ns > 0
    await harness.reports.wait_for(lambda r: r.client_order_id == "mine-1" and r.status is OrderStatus.CANCELED and r.latency_ns is None)
    assert not any(r.client_order_id.startswith("fake-cancel") for r in harness.reports.items)


async def test_duplicate_execution_reports_are_dropped(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(buy("d-1"))
    fake.duplicate_next_execution_report()
    fake.fill("d-1", qty="0.04")
    fake.exchange_cancel("d-1")  # a marker after the duplicated event
    await harness.reports.wait_for(lambda r: r.status is OrderStatus.CANCELED and r.client_order_id == "d-1")
    assert len(harness.fills()) == 1 and harness.fills()[0].fill.qty == D("0.04")
    assert harness.venue.metrics.events["duplicate_events_dropped"] == 1


async def test_a_silent_fill_is_found_by_the_poll_and_flagged(fake: FakeBinance, harness: Harness) -> None:
    report = await harness.venue.place_order(buy("s-1"))
    trade = fake.silent_fill("s-1")  # no user-data event at all
    assert await harness.live.user_stream.poll_all("poll") == 1
    [fill] = harness.fills()
    assert (fill.fill.fill_id, fill.client_order_id, fill.venue_order_id, fill.status) == (
        str(trade.trade_id), "s-1", report.venue_order_id, OrderStatus.FILLED)
    assert "REST poll" in fill.reason and fill.fill.is_maker is True and fill.fill.fee_quote == D("0.0099")
    gap = await harness.gaps.wait_for(is_gap("fill"))
    assert gap.stream == "user" and gap.asset == "BTC/USDT" and str(trade.trade_id) in gap.received
    assert await harness.live.user_stream.poll_all("poll") == 0  # once only


async def test_a_fill_the_stream_skipped_is_detected_by_the_cumulative_quantity(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(buy("cum-1", qty="0.3"))
    skipped = fake.silent_fill("cum-1", qty="0.1")
    fake.fill("cum-1", qty="0.1")  # z = 0.2 but l = 0.1: one fill is missing
    fills = await harness.reports.wait_count(lambda r: r.fill is not None, 2)
    assert sorted(f.fill.fill_id for f in fills) == sorted([str(skipped.trade_id), str(skipped.trade_id + 1)])
    await harness.gaps.wait_for(is_gap("fill"))
    assert harness.venue.metrics.events["fill_gaps"] == 1


async def test_fills_during_an_outage_are_recovered_after_the_reconnect(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(buy("o-1"))
    harness.sleeps.hold()  # the reconnect waits until we say so
    await fake.drop_streams()
    down = await harness.statuses.wait_for(is_status("user", False))
    assert down.code is ErrorCode.WS_STALE
    await harness.live.cancel_on_disconnect.wait_idle()
    assert fake.open_orders() == []  # cancel-on-disconnect ran
    await harness.venue.place_order(buy("o-2"))  # (an order placed while the stream is down)
    trade = fake.fill("o-2")  # nobody hears it
    assert fake.ws_clients == [] and harness.fills() == []
    harness.sleeps.release()
    await harness.statuses.wait_count(is_status("user", True), 2)
    fill = await harness.reports.wait_for(lambda r: r.fill is not None)
    assert fill.fill.fill_id == str(trade.trade_id) and fill.client_order_id == "o-2" and "REST poll" in fill.reason
    assert harness.gaps.items == []  # an outage's fills are expected, not an anomaly
    assert len(harness.fills()) == 1


async def test_listen_key_expiry_reconnects_with_a_new_key(fake: FakeBinance, harness: Harness) -> None:
    old = harness.live.user_stream.listen_key
    fake.expire_listen_key(old)
    await harness.statuses.wait_for(is_status("user", False))
    await harness.statuses.wait_count(is_status("user", True), 2)
    assert harness.live.user_stream.listen_key not in (None, old)
    await harness.venue.place_order(buy("lk-1"))
    fake.fill("lk-1")
    await harness.reports.wait_for(lambda r: r.fill is not None and r.client_order_id == "lk-1")


async def test_keepalive_failure_gets_a_new_listen_key(fake: FakeBinance, harness: Harness) -> None:
    stream = harness.live.user_stream
    old = stream.listen_key
    fake.fail_next("userDataStream", status=400, code=-1125, msg="This listenKey does not exist.", method="PUT")
    await stream.keepalive()
    await harness.statuses.wait_count(is_status("user", True), 2)
    assert stream.listen_key is not None and len(fake.requests_for("POST", "userDataStream")) == 2
    await stream.keepalive()
    assert fake.requests_for("PUT", "userDataStream")[-1].status == 200
    assert old is not None


async def test_feed_health_for_the_oms_follows_the_user_stream(fake: FakeBinance, harness: Harness) -> None:
    health = harness.health
    await harness.statuses.wait_for(is_status("user", True))
    assert health.up and health.generation == 0
    seen = health.last_alive_ns
    await harness.venue.place_order(buy("h-1"))  # its executionReport is a sign of life
    await harness.reports.wait_for(lambda r: r.client_order_id == "h-1" and r.fill is None and r.latency_ns is None)
    assert health.last_alive_ns is not None and seen is not None and health.last_alive_ns > seen
    harness.sleeps.hold()
    await fake.drop_streams()
    await harness.statuses.wait_for(is_status("user", False))
    assert not health.up and health.generation == 1 and "1001" in health.down_reason
    ok, why = health.status(health.last_alive_ns)
    assert not ok and "down" in why
    harness.sleeps.release()
    await harness.statuses.wait_count(is_status("user", True), 2)
    assert health.up and health.status(health.last_alive_ns) == (True, "")


async def test_positions_come_through_the_report_sink(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(buy("p-1"))
    fake.run_path([("98.90", "99.00")])
    asset, qty, ts = await harness.positions.wait_for(lambda p: p[0] == "BTC/USDT" and p[1] == D("1.0999"))
    assert isinstance(qty, Decimal) and ts > 0
