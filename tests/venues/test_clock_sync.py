"""Clock offset to the venue: measured at start and periodically, signing corrected, orders blocked past limits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.venue import OrderRequest, VenueError
from bot.engine.clock import ManualClock
from bot.venues.clock_sync import ClockSync
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import Harness, make_harness

D = Decimal
ORDER = OrderRequest("c-1", "BTC/USDT", Side.BUY, D("0.1"), OrderType.LIMIT, D("99"), TimeInForce.GTC)


async def test_offset_measured_at_start_and_orders_allowed(fake: FakeBinance, harness: Harness) -> None:
    sync = harness.live.clock_sync
    assert sync.measurements == 1 and sync.last is not None and abs(sync.last.offset_ms) < 500
    assert sync.blocked_reason is None
    assert (await harness.venue.place_order(ORDER)).venue_order_id is not None


async def test_a_venue_clock_far_off_is_corrected_for_signing_but_blocks_orders(fake: FakeBinance) -> None:
    fake.clock_offset_ms = -30_000  # the venue is 30 s behind us: uncorrected signed calls get -1021
    h = make_harness(fake)
    await h.live.start()
    try:
        sync = h.live.clock_sync
        assert -30_500 < sync.offset_ms < -29_500
        assert h.venue.read.exchange.options["timeDifference"] == -sync.offset_ms
        assert (await h.venue.get_balances())["USDT"].free == D("1000")  # signed with venue time: accepted
        assert not [r for r in fake.requests if r.code == -1021]
        with pytest.raises(VenueError) as raised:
            await h.venue.place_order(ORDER)
        assert raised.value.code is ErrorCode.CLOCK_DRIFT and "offset" in raised.value.message
        assert fake.requests_for("POST", "order") == []
        assert h.safe.items and h.safe.items[0][0] is ErrorCode.CLOCK_DRIFT
        assert any(a[0] == "critical" and a[1] == "clock:binance" for a in h.alerts.items)

        fake.clock_offset_ms = 0  # the host was fixed: the first good sample is a 30 s jump (drift)...
        await sync.measure()
        assert sync.blocked_reason is not None and "moved" in sync.blocked_reason
        await sync.measure()  # ...the next one is steady: orders allowed again
        assert sync.blocked_reason is None
        report = await h.venue.place_order(ORDER)
        assert report.venue_order_id is not None
        assert h.venue._trade is not None and h.venue._trade.exchange.options["timeDifference"] == -sync.offset_ms
    finally:
        await h.live.stop()


async def test_drift_between_measurements_blocks(fake: FakeBinance, harness: Harness) -> None:
    sync = harness.live.clock_sync
    fake.clock_offset_ms = 700  # within the 1000 ms offset limit, but a 700 ms move (limit 500)
    await sync.measure()
    assert sync.blocked_reason is not None and "moved" in sync.blocked_reason
    with pytest.raises(VenueError) as raised:
        await harness.venue.place_order(ORDER)
    assert raised.value.code is ErrorCode.CLOCK_DRIFT
    await sync.measure()
    assert sync.blocked_reason is None


async def test_clock_skew_answer_on_submit_triggers_a_new_measurement(fake: FakeBinance, harness: Harness) -> None:
    before = harness.live.clock_sync.measurements
    fake.fail_next("order", status=400, code=-1021, msg="Timestamp for this request was 1000ms ahead of the server's time.", method="POST")
    with pytest.raises(VenueError) as raised:
        await harness.venue.place_order(ORDER)
    assert raised.value.code is ErrorCode.CLOCK_DRIFT
    await fake.wait_for_request("GET", "time", count=2)
    await harness.venue.close_pending()
    assert harness.live.clock_sync.measurements == before + 1


async def test_offset_from_the_midpoint_of_the_request() -> None:
    clock = ManualClock(1_000_000_000_000)  # 1000 s
    applied: list[int] = []

    async def venue_time() -> int:
        clock.advance(40_000_000)  # the request takes 40 ms
        return 1_000_000 + 520  # venue ms: local midpoint is 1_000_020 ms -> offset +500 ms

    sync = ClockSync(venue="v", fetch_venue_time_ms=venue_time, clock=clock, max_offset_ms=1000, max_drift_ms=500, apply_offset=applied.append)
    with pytest.raises(VenueError, match="not measured yet"):
        sync.check()
    sample = await sync.measure()
    assert sample.offset_ms == 500 and sample.rtt_ms == 40 and applied == [500]
    assert sync.venue_now_ns() == clock.now_ns() + 500_000_000
    sync.check()
