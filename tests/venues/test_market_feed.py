"""The websockets market feed against FakeBinance: normalisation, reconnect, staleness, sequence gaps.

The feed's clock is a ManualClock: staleness is decided by the injected clock, never by waiting.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from bot.domain.errors import ErrorCode
from bot.domain.market import Book, Tick
from bot.engine.clock import ManualClock
from bot.venues.binance_feed import BinanceMarketFeed
from bot.venues.retry import Backoff
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import BOUND, Recorder, SleepRecorder, is_gap, is_status

D = Decimal
T0 = 1_800_000_000 * 10**9
OFFSET_NS = 250 * 10**6


class FeedRig:
    def __init__(self, fake: FakeBinance, depth: int = 0) -> None:
        self.clock = ManualClock(T0)
        self.statuses, self.gaps, self.ticks, self.books = Recorder(), Recorder(), Recorder(), Recorder()
        self.sleeps = SleepRecorder()
        self.feed = BinanceMarketFeed(
            ws_url=fake.ws_url,
            assets=("BTC/USDT", "ETH/USDT"),
            clock=self.clock,
            stale_after_s=5.0,
            depth_levels=depth,
            venue_offset_ns=lambda: OFFSET_NS,
            backoff=Backoff(0.25, 30.0),
            on_status=self.statuses,
            on_gap=self.gaps,
            on_book=self.books,
            sleep=self.sleeps,
        )
        self.batches: list[list[Tick]] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async def consume() -> None:
            async for batch in self.feed.batches():
                self.batches.append(list(batch))
                for tick in batch:
                    self.ticks(tick)

        self._task = asyncio.create_task(consume())

    async def stop(self) -> None:
        await self.feed.close()
        if self._task is not None:
            async with asyncio.timeout(BOUND):
                await self._task  # the iterator ends when the feed closes


@pytest.fixture
async def rig(fake: FakeBinance) -> AsyncIterator[FeedRig]:
    r = FeedRig(fake)
    await r.start()
    await fake.wait_for_ws_clients(1, kind="market")
    await r.statuses.wait_for(is_status("market", True))
    try:
        yield r
    finally:
        await r.stop()


async def test_book_ticker_normalised_to_ticks(fake: FakeBinance, rig: FeedRig) -> None:
    [client] = fake.ws_clients
    assert client.path.startswith("/stream?streams=btcusdt@bookTicker/ethusdt@bookTicker")
    fake.set_book("BTC/USDT", "100.10", "1.5", "100.20", "2")
    tick = await rig.ticks.wait_for(lambda t: t.asset == "BTC/USDT")
    assert (tick.bid, tick.bid_size, tick.ask, tick.ask_size) == (D("100.1"), D("1.5"), D("100.2"), D("2"))
    assert all(isinstance(v, Decimal) for v in (tick.bid, tick.bid_size, tick.ask, tick.ask_size))
    assert tick.seq == fake.engine.books["BTCUSDT"].update_id and tick.venue == "binance"
    assert tick.ts_local_ns == T0 and tick.ts_venue_ns == T0 + OFFSET_NS  # no event time in spot bookTicker
    assert rig.feed.mark("BTC/USDT") == D("100.15")
    fake.set_book("ETH/USDT", "2000.00", "1", "2000.02", "1")
    assert (await rig.ticks.wait_for(lambda t: t.asset == "ETH/USDT")).ask == D("2000.02")


async def test_reconnect_after_a_drop(fake: FakeBinance, rig: FeedRig) -> None:
    fake.set_book("BTC/USDT", "100.10", "1", "100.20", "1")
    first = await rig.ticks.wait_for(lambda t: t.asset == "BTC/USDT")
    await fake.drop_streams()
    down = await rig.statuses.wait_for(is_status("market", False))
    assert down.code is ErrorCode.WS_STALE and "1001" in down.reason
    await fake.wait_for_ws_clients(1, kind="market")  # it came back by itself
    await rig.statuses.wait_count(is_status("market", True), 2)
    assert len(rig.sleeps.delays) == 1 and 0 <= rig.sleeps.delays[0] <= 0.25  # backoff with jitter
    assert rig.feed.ws.connections == 2 and rig.feed.ws.disconnects == 1
    fake.set_book("BTC/USDT", "100.30", "1", "100.40", "1")
    after = await rig.ticks.wait_for(lambda t: t.asset == "BTC/USDT" and t.seq > first.seq)
    assert after.bid == D("100.3") and after.seq == first.seq + 1
    assert rig.gaps.items == []  # nothing was missed


async def test_reconnect_after_an_abrupt_drop_flags_what_was_missed(fake: FakeBinance, rig: FeedRig) -> None:
    fake.set_book("BTC/USDT", "100.10", "1", "100.20", "1")
    first = await rig.ticks.wait_for(lambda t: t.asset == "BTC/USDT")
    await fake.drop_streams(abrupt=True)  # no close frame
    await rig.statuses.wait_for(is_status("market", False))
    fake.run_path([("100.30", "100.40"), ("100.50", "100.60")], symbol="BTC/USDT")  # while we are away
    await fake.wait_for_ws_clients(1, kind="market")
    await rig.statuses.wait_count(is_status("market", True), 2)
    fake.set_book("BTC/USDT", "100.70", "1", "100.80", "1")
    await rig.ticks.wait_for(lambda t: t.bid == D("100.7"))
    gap = await rig.gaps.wait_for(is_gap("book"))
    assert (gap.asset, gap.expected, gap.received) == ("BTC/USDT", str(first.seq + 1), str(first.seq + 3))


async def test_staleness_detected_during_a_pause(fake: FakeBinance, rig: FeedRig) -> None:
    fake.set_book("BTC/USDT", "100.10", "1", "100.20", "1")
    await rig.ticks.wait_for(lambda t: t.asset == "BTC/USDT")
    fake.pause_streams()
    fake.run_path([("100.30", "100.40")], symbol="BTC/USDT")  # dropped by the paused venue
    rig.clock.advance(4 * 10**9)
    assert rig.feed.check_staleness() == []  # 4 s < 5 s
    rig.clock.advance(2 * 10**9)
    assert sorted(rig.feed.check_staleness()) == ["BTC/USDT", "ETH/USDT"]
    stale = await rig.statuses.wait_for(is_status("market", False, "BTC/USDT"))
    assert stale.code is ErrorCode.MARKET_DATA_STALE and "6.0 s" in stale.reason
    assert rig.feed.check_staleness() == []  # announced once
    assert rig.feed.mark("BTC/USDT") is None  # no price from stale data
    assert rig.feed.ws.connections == 1  # the connection itself stayed up
    fake.resume_streams()
    fake.set_book("BTC/USDT", "100.50", "1", "100.60", "1")
    await rig.statuses.wait_for(is_status("market", True, "BTC/USDT"))
    assert rig.feed.stale == {"ETH/USDT"}
    gap = await rig.gaps.wait_for(is_gap("book"))  # the paused update was lost: a gap of one
    assert int(gap.received) - int(gap.expected) == 1


async def test_sequence_gaps_are_flagged(fake: FakeBinance, rig: FeedRig) -> None:
    fake.set_book("BTC/USDT", "100.10", "1", "100.20", "1")
    first = await rig.ticks.wait_for(lambda t: t.asset == "BTC/USDT")
    fake.gap_next_stream_update("BTC/USDT", size=3)
    fake.set_book("BTC/USDT", "100.30", "1", "100.40", "1")
    second = await rig.ticks.wait_for(lambda t: t.bid == D("100.3"))
    assert second.seq == first.seq + 4  # delivered, and flagged
    gap = await rig.gaps.wait_for(is_gap("book"))
    assert (gap.venue, gap.stream, gap.asset, gap.expected, gap.received) == ("binance", "market", "BTC/USDT", str(first.seq + 1), str(first.seq + 4))
    assert rig.feed.metrics.events["book_gaps"] == 1


async def test_duplicates_and_out_of_order_updates_are_dropped(fake: FakeBinance, rig: FeedRig) -> None:
    payload = {"stream": "btcusdt@bookTicker", "data": {"u": 5000, "s": "BTCUSDT", "b": "1.00", "B": "1", "a": "1.01", "A": "1"}}
    older = {"stream": "btcusdt@bookTicker", "data": {**payload["data"], "u": 4999}}
    for message in (payload, payload, older):
        await rig.feed._on_message(json.dumps(message))
    await rig.ticks.wait_for(lambda t: t.seq == 5000)
    assert [t.seq for t in rig.ticks.items] == [5000]
    assert rig.feed.metrics.events["book_duplicates_dropped"] == 2


async def test_one_sided_book_gives_no_tick(fake: FakeBinance, rig: FeedRig) -> None:
    fake.set_book("BTC/USDT", None, None, "100.20", "1")
    fake.set_book("BTC/USDT", "100.10", "1", "100.20", "1")
    tick = await rig.ticks.wait_for(lambda t: t.asset == "BTC/USDT")
    assert tick.bid == D("100.1") and len([t for t in rig.ticks.items if t.asset == "BTC/USDT"]) == 1
    assert rig.feed.metrics.events["one_sided_books"] == 1


async def test_depth_stream_gives_books(fake: FakeBinance) -> None:
    rig = FeedRig(fake, depth=5)
    await rig.start()
    try:
        await fake.wait_for_ws_clients(1, kind="market")
        assert "btcusdt@depth5@100ms" in fake.ws_clients[0].path
        fake.set_depth("BTC/USDT", [("100.00", "1"), ("99.99", "2")], [("100.01", "3")])
        book = await rig.books.wait_for(lambda b: isinstance(b, Book) and b.asset == "BTC/USDT")
        assert [(lv.price, lv.size) for lv in book.bids] == [(D("100"), D("1")), (D("99.99"), D("2"))]
        assert [(lv.price, lv.size) for lv in book.asks] == [(D("100.01"), D("3"))]
        assert book.seq == fake.engine.books["BTCUSDT"].update_id
    finally:
        await rig.stop()


def test_depth_levels_are_validated() -> None:
    with pytest.raises(ValueError, match="depth_levels"):
        BinanceMarketFeed(ws_url="ws://127.0.0.1:1", assets=("BTC/USDT",), clock=ManualClock(), stale_after_s=1, depth_levels=7)


async def test_heartbeat_detects_a_half_open_connection(fake: FakeBinance) -> None:
    """The venue stops answering pings (and sending) without closing: the ping timeout declares it dead."""
    statuses = Recorder()
    feed = BinanceMarketFeed(
        ws_url=fake.ws_url,
        assets=("BTC/USDT",),
        clock=ManualClock(T0),
        stale_after_s=60.0,
        ping_interval_s=0.05,
        ping_timeout_s=0.1,
        on_status=statuses,
        sleep=SleepRecorder(),
    )
    await feed.start()
    try:
        await statuses.wait_for(is_status("market", True))
        fake.stall_streams()
        down = await statuses.wait_for(is_status("market", False))
        assert down.code is ErrorCode.WS_STALE and "ping timeout" in down.reason
        fake.resume_streams()
        await statuses.wait_count(is_status("market", True), 2)  # reconnected
        assert feed.ws.connections == 2
    finally:
        await feed.close()


async def test_heartbeat_pongs_are_signs_of_life(fake: FakeBinance) -> None:
    from bot.venues.ws import ReconnectingWebSocket

    alive = asyncio.Event()
    states = Recorder()

    async def url() -> str:
        return f"{fake.ws_url}/ws/btcusdt@bookTicker"

    async def on_message(raw: str | bytes) -> None:
        return None

    async def on_state(up: bool, reason: str) -> None:
        states((up, reason))

    ws = ReconnectingWebSocket("test", url=url, on_message=on_message, on_state=on_state, clock=ManualClock(),
                               backoff=Backoff(0.1, 1.0), ping_interval_s=0.02, ping_timeout_s=5.0, on_alive=alive.set)
    task = asyncio.create_task(ws.run())
    try:
        async with asyncio.timeout(BOUND):
            await alive.wait()  # no market message was sent: this was a pong
        assert ws.pongs >= 1 and ws.ping_latency_s >= 0
    finally:
        await ws.close()
        await task
    assert states.items[0] == (True, "connected")
