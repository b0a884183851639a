"""Binance public market data over ``websockets``: the ``MarketFeed`` port (L1 ticks, optional L2 books).

One combined-stream connection (``/stream?streams=btcusdt@bookTicker/...``) carries every asset's
``bookTicker`` and, when ``depth_levels`` is 5, 10 or 20, its partial-depth stream (``@depth<N>@100ms``).

Normalisation: every update becomes a ``Tick`` (or a ``Book`` for depth) with the venue's update id as
``seq``, our receive time as ``ts_local_ns`` and the venue's time as ``ts_venue_ns`` (Binance spot's
bookTicker carries no event time: the venue time is then our receive time corrected by the measured clock
offset; streams that carry ``E`` use it).

Sequence: per asset and stream, an update id not above the last one is a duplicate or out of order and is
dropped; a jump over ids is reported as a ``SequenceGap`` (also across a reconnect). On Binance spot a
bookTicker's id is the order book's update id, which also moves for changes below the top of the book, so
there a jump is information, not proof of a lost message; the safety signal is staleness.

Health: the connection's state (``WS_STALE`` when down) and each asset's freshness (``MARKET_DATA_STALE``
when no update came within ``stale_after_s``) are announced through ``on_status`` on every change.
``check_staleness()`` is cheap and runs from a watchdog task and from the engine loop's guard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.market import Book, BookLevel, Tick
from bot.domain.ports import Clock
from bot.domain.streams import SequenceGap, StreamStatus
from bot.venues.instruments import edge_decimal
from bot.venues.metrics import VenueMetrics
from bot.venues.retry import Backoff
from bot.venues.ws import ReconnectingWebSocket, Sleep

log = logging.getLogger(__name__)

MS = 1_000_000
StatusFn = Callable[[StreamStatus], None]
GapFn = Callable[[SequenceGap], None]
BookFn = Callable[[Book], None]
_END = object()


class BinanceMarketFeed:
    def __init__(
        self,
        *,
        ws_url: str,
        assets: Sequence[str],
        clock: Clock,
        stale_after_s: float,
        symbols: Callable[[], Mapping[str, str]] | None = None,
        depth_levels: int = 0,
        venue: str = "binance",
        venue_offset_ns: Callable[[], int] = lambda: 0,
        backoff: Backoff | None = None,
        ping_interval_s: float = 20.0,
        ping_timeout_s: float = 10.0,
        on_status: StatusFn | None = None,
        on_gap: GapFn | None = None,
        on_book: BookFn | None = None,
        metrics: VenueMetrics | None = None,
        rng: random.Random | None = None,
        sleep: Sleep | None = None,
        queue_size: int = 10_000,
    ) -> None:
        if depth_levels not in (0, 5, 10, 20):
            raise ValueError("depth_levels must be 0, 5, 10 or 20")
        self.venue = venue
        self.assets = tuple(assets)
        self._ws_url = ws_url.rstrip("/")
        self._clock = clock
        self._stale_ns = int(stale_after_s * 1e9)
        self._check_interval_s = min(1.0, stale_after_s / 4)
        self._symbols = symbols
        self._depth = depth_levels
        self._venue_offset_ns = venue_offset_ns
        self._on_status = on_status
        self._on_gap = on_gap
        self._on_book = on_book
        self.metrics = metrics or VenueMetrics()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._by_symbol: dict[str, str] = {}
        self.last_seq: dict[tuple[str, str], int] = {}
        self.last_tick: dict[str, Tick] = {}
        self.books: dict[str, Book] = {}
        self._last_update_mono: dict[str, int] = {}
        self.stale: set[str] = set()
        self.connection_healthy: bool | None = None
        self.gaps: list[SequenceGap] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.ws = ReconnectingWebSocket(
            f"{venue} market data",
            url=self._url,
            on_message=self._on_message,
            on_state=self._on_state,
            clock=clock,
            backoff=backoff or Backoff(0.25, 30.0),
            ping_interval_s=ping_interval_s,
            ping_timeout_s=ping_timeout_s,
            rng=rng,
            sleep=sleep,
        )

    # ------------------------------------------------------------------ lifecycle
    def _symbol_map(self) -> dict[str, str]:
        mapping = dict(self._symbols()) if self._symbols is not None else {}
        if not mapping:
            mapping = {a.replace("/", ""): a for a in self.assets}
        return {vs: a for vs, a in mapping.items() if a in self.assets}

    async def _url(self) -> str:
        self._by_symbol = self._symbol_map()
        streams = []
        for venue_symbol in self._by_symbol:
            streams.append(f"{venue_symbol.lower()}@bookTicker")
            if self._depth:
                streams.append(f"{venue_symbol.lower()}@depth{self._depth}@100ms")
        return f"{self._ws_url}/stream?streams={'/'.join(streams)}"

    async def start(self) -> None:
        if self._tasks or self._closed:
            return
        now = self._clock.monotonic_ns()
        for asset in self.assets:
            self._last_update_mono.setdefault(asset, now)
        self._tasks = [
            asyncio.create_task(self.ws.run(), name=f"{self.venue}-market-ws"),
            asyncio.create_task(self._watchdog(), name=f"{self.venue}-market-watchdog"),
        ]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            self._queue.put_nowait(_END)
        except asyncio.QueueFull:
            self._queue.get_nowait()
            self._queue.put_nowait(_END)

    async def batches(self) -> AsyncIterator[Sequence[Tick]]:
        await self.start()
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            batch = [item]
            while not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is _END:
                    yield batch
                    return
                batch.append(nxt)
            yield batch

    def mark(self, asset: str) -> Decimal | None:
        """The last mid of a fresh asset (None when unknown or stale)."""
        tick = self.last_tick.get(asset)
        if tick is None or asset in self.stale:
            return None
        return tick.mid

    # ------------------------------------------------------------------ health
    def _status(self, healthy: bool, code: ErrorCode | None, reason: str, asset: str | None = None) -> None:
        status = StreamStatus(self.venue, "market", healthy, code, reason, self._clock.now_ns(), asset)
        self.metrics.events[f"market_{'healthy' if healthy else 'unhealthy'}"] += 1
        if healthy:
            log.info("%s market data%s healthy: %s", self.venue, f" {asset}" if asset else "", reason)
        else:
            log.warning("%s market data%s unhealthy (%s): %s", self.venue, f" {asset}" if asset else "", code, reason)
        if self._on_status is not None:
            self._on_status(status)

    async def _on_state(self, connected: bool, reason: str) -> None:
        if connected:
            self.metrics.events["market_connects"] += 1
            if self.connection_healthy is not True:
                self.connection_healthy = True
                self._status(True, None, reason)
        else:
            self.metrics.events["market_disconnects"] += 1
            if self.connection_healthy is not False:
                self.connection_healthy = False
                self._status(False, ErrorCode.WS_STALE, reason)

    def check_staleness(self) -> list[str]:
        """Mark assets without an update for longer than the threshold; returns the newly stale ones."""
        now = self._clock.monotonic_ns()
        newly = []
        for asset in self.assets:
            last = self._last_update_mono.get(asset)
            if last is None:
                continue
            age = now - last
            if age > self._stale_ns and asset not in self.stale:
                self.stale.add(asset)
                newly.append(asset)
                self._status(False, ErrorCode.MARKET_DATA_STALE, f"no update for {age / 1e9:.1f} s", asset)
        return newly

    async def _watchdog(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._check_interval_s)
            try:
                self.check_staleness()
            except Exception:
                log.exception("market data watchdog failed")

    def _fresh(self, asset: str, now_mono: int) -> None:
        self._last_update_mono[asset] = now_mono
        if asset in self.stale:
            self.stale.discard(asset)
            self._status(True, None, "updates again", asset)

    # ------------------------------------------------------------------ messages
    def _sequence_ok(self, kind: str, asset: str, seq: int) -> bool:
        key = (kind, asset)
        last = self.last_seq.get(key)
        if last is not None:
            if seq <= last:
                self.metrics.events[f"{kind}_duplicates_dropped"] += 1
                return False
            if seq > last + 1:
                gap = SequenceGap(self.venue, "market", asset, kind, str(last + 1), str(seq), self._clock.now_ns(),
                                  f"{seq - last - 1} update id(s) skipped")
                self.gaps.append(gap)
                del self.gaps[:-100]
                self.metrics.events[f"{kind}_gaps"] += 1
                if self._on_gap is not None:
                    self._on_gap(gap)
        self.last_seq[key] = seq
        return True

    def _venue_ts(self, data: Mapping[str, Any], local_ns: int) -> int:
        event_ms = data.get("E") or data.get("T")
        if event_ms:
            venue_ns = int(event_ms) * MS
            self.metrics.market.add(max(0, local_ns + self._venue_offset_ns() - venue_ns))
            return venue_ns
        return local_ns + self._venue_offset_ns()

    async def _on_message(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        if not isinstance(message, dict):
            return
        stream = message.get("stream")
        data = message.get("data") if stream is not None else message
        if not isinstance(data, dict) or "result" in data and "id" in data:
            return  # a subscription answer
        local_ns = self._clock.now_ns()
        mono = self._clock.monotonic_ns()
        if stream is not None and "@depth" in stream:
            self._on_depth(stream, data, local_ns, mono)
            return
        symbol = data.get("s")
        asset = self._by_symbol.get(symbol) if symbol else None
        if asset is None or "u" not in data:
            self.metrics.events["market_unknown_messages"] += 1
            return
        if not self._sequence_ok("book", asset, int(data["u"])):
            return
        self._fresh(asset, mono)
        bid, ask = edge_decimal(data["b"], field="b"), edge_decimal(data["a"], field="a")
        if bid <= 0 or ask <= 0:
            self.metrics.events["one_sided_books"] += 1
            return  # a side is empty: no L1 quote to act on (freshness still counted)
        tick = Tick(
            asset=asset,
            bid=bid,
            bid_size=edge_decimal(data["B"], field="B"),
            ask=ask,
            ask_size=edge_decimal(data["A"], field="A"),
            ts_venue_ns=self._venue_ts(data, local_ns),
            ts_local_ns=local_ns,
            seq=int(data["u"]),
            venue=self.venue,
        )
        self.last_tick[asset] = tick
        try:
            self._queue.put_nowait(tick)
        except asyncio.QueueFull:
            self.metrics.events["ticks_dropped_backpressure"] += 1

    def _on_depth(self, stream: str, data: Mapping[str, Any], local_ns: int, mono: int) -> None:
        asset = self._by_symbol.get(stream.split("@", 1)[0].upper())
        if asset is None or "lastUpdateId" not in data:
            self.metrics.events["market_unknown_messages"] += 1
            return
        seq = int(data["lastUpdateId"])
        if not self._sequence_ok("depth", asset, seq):
            return
        self._fresh(asset, mono)

        def levels(rows: Any) -> tuple[BookLevel, ...]:
            return tuple(BookLevel(edge_decimal(p, field="price"), edge_decimal(q, field="qty")) for p, q in rows or ())

        book = Book(asset, levels(data.get("bids")), levels(data.get("asks")), self._venue_ts(data, local_ns), local_ns, seq, self.venue)
        self.books[asset] = book
        if self._on_book is not None:
            self._on_book(book)
