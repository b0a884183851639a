"""Shared pieces of the venue tests: keys, settings pointing at FakeBinance, a report collector, a sleep recorder.

Nothing here sleeps: waits are on events, bounded by ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from bot.config import MarketSettings, Settings, VenueSettings
from bot.domain.credentials import Credentials, KeyScope
from bot.domain.streams import SequenceGap, StreamStatus
from bot.domain.venue import ExecutionReport, PositionUpdate
from bot.engine.clock import WallClock
from bot.oms.feed import FeedHealth
from bot.venues.binance import BinanceLive, build_binance
from tests.fakes.binance_server import FakeBinance

TRADE_KEY, TRADE_SECRET = "trade-key-0123456789", "trade-secret-0123456789"
READ_KEY, READ_SECRET = "read-key-0123456789", "read-secret-0123456789"
BOUND = 5.0  # seconds: safety bound of every wait

READ = Credentials("binance", KeyScope.READ, SecretStr(READ_KEY), SecretStr(READ_SECRET))
TRADE = Credentials("binance", KeyScope.TRADE, SecretStr(TRADE_KEY), SecretStr(TRADE_SECRET))


def venue_settings(fake: FakeBinance, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "rest_url": fake.base_url,
        "ws_url": fake.ws_url,
        "enable_rate_limit": False,
        "request_timeout_ms": 2000,
        "market_data_stale_s": 30.0,
        "trade_poll_interval_s": 600.0,  # periodic polls off unless a test asks (they are called directly)
        "trade_poll_fallback_s": 600.0,
        "listen_key_keepalive_s": 3000.0,
        "clock_check_interval_s": 3600.0,
    }
    values.update(overrides)
    return Settings(market=MarketSettings(assets=("BTC/USDT", "ETH/USDT")), venue=VenueSettings(**values))


class Recorder:
    """Collects events and lets a test wait for one that matches."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def __call__(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Any], bool], timeout: float = BOUND) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for item in self.items:
                    if predicate(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

    async def wait_count(self, predicate: Callable[[Any], bool], n: int, timeout: float = BOUND) -> list[Any]:
        async with asyncio.timeout(timeout):
            while True:
                found = [i for i in self.items if predicate(i)]
                if len(found) >= n:
                    return found
                self._changed.clear()
                await self._changed.wait()


class SleepRecorder:
    """Injected instead of asyncio.sleep: records the delay asked for and only yields to the loop."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        """Sleeps block until ``release()`` (e.g. keep a stream down while the test acts)."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self._open.wait()
        await asyncio.sleep(0)


@dataclass
class Harness:
    fake: FakeBinance
    live: BinanceLive
    reports: Recorder
    statuses: Recorder
    gaps: Recorder
    alerts: Recorder
    safe: Recorder
    positions: Recorder
    sleeps: SleepRecorder
    health: FeedHealth
    trade_key: dict[str, Credentials | None] = field(default_factory=dict)

    @property
    def venue(self) -> Any:
        return self.live.venue

    def arm(self, credentials: Credentials | None = TRADE) -> None:
        self.trade_key["current"] = credentials

    def disarm(self) -> None:
        self.trade_key["current"] = None

    def fills(self) -> list[ExecutionReport]:
        return [r for r in self.reports.items if r.fill is not None]


def make_harness(fake: FakeBinance, *, read: Credentials | None = READ, armed: bool = True, clock: Any = None, **overrides: Any) -> Harness:
    reports, statuses, gaps, alerts, safe, positions = Recorder(), Recorder(), Recorder(), Recorder(), Recorder(), Recorder()
    sleeps = SleepRecorder()
    key: dict[str, Credentials | None] = {"current": TRADE if armed else None}
    health = FeedHealth(WallClock(), 30 * 10**9)
    live = build_binance(
        venue_settings(fake, **overrides),
        read_credentials=read,
        trade_credentials=lambda: key["current"],
        clock=clock or WallClock(),
        on_alert=lambda severity, k, text: alerts((severity, k, text)),
        on_status=statuses,
        on_gap=gaps,
        on_safe=lambda code, reason: safe((code, reason)),
        feed_health=health,
        sleep=sleeps,
    )

    def sink(item: Any) -> None:  # execution reports and position updates share the sink
        if isinstance(item, PositionUpdate):
            positions((item.asset, item.qty, item.ts_ns))
        else:
            reports(item)

    live.venue.set_report_sink(sink)
    return Harness(fake, live, reports, statuses, gaps, alerts, safe, positions, sleeps, health, key)


def is_status(stream: str, healthy: bool, asset: str | None = None) -> Callable[[Any], bool]:
    def match(s: Any) -> bool:
        return isinstance(s, StreamStatus) and s.stream == stream and s.healthy is healthy and s.asset == asset

    return match


def is_gap(kind: str) -> Callable[[Any], bool]:
    return lambda g: isinstance(g, SequenceGap) and g.kind == kind


def all_decimal(*values: Any) -> bool:
    return all(isinstance(v, Decimal) for v in values)
