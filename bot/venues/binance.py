"""Binance spot for LIVE: everything the composition root needs, built in one call.

    live = build_binance(settings, read_credentials=read_key, trade_credentials=key_holder.trade_credentials,
                         clock=clock, on_alert=notifier.alert, on_status=oms_and_risk_status,
                         on_gap=oms_gap, on_safe=lambda code, why: safety.enter(TradingState.SAFE, code, why))
    live.venue.set_report_sink(engine.on_report)      # the Venue port
    engine.guards.append(live.engine_guard)             # staleness check + dead man's switch refresh
    await live.start()                                  # markets, fees, clock, user-data stream, market feed
    ... engine.run(live.feed) ...                       # the MarketFeed port
    await live.stop("service stop")                     # cancel resting orders, close streams and clients

Nothing here does I/O until ``start()``. See docs/venues.md for what each part does.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.domain.credentials import Credentials
from bot.domain.errors import ErrorCode
from bot.domain.market import Book
from bot.domain.ports import Clock
from bot.domain.streams import SequenceGap, StreamStatus
from bot.domain.venue import Balance, VenueError
from bot.oms.feed import FeedHealth
from bot.venues.binance_dialect import BinanceDialect, endpoints, make_exchange_factory
from bot.venues.binance_feed import BinanceMarketFeed
from bot.venues.binance_user_stream import BinanceUserStream
from bot.venues.cancel_on_disconnect import CancelOnDisconnect, DeadMansSwitch
from bot.engine.clock import WallClock
from bot.venues.ccxt_client import CcxtCall, ExchangeFactory, ReadClient, TradeClient
from bot.venues.ccxt_venue import CcxtVenue, TradeCredentialsProvider
from bot.venues.clock_sync import ClockSync
from bot.venues.metrics import VenueMetrics
from bot.venues.retry import Backoff, RetryPolicy
from bot.venues.ws import Sleep

log = logging.getLogger(__name__)

AlertFn = Callable[[str, str, str], None]
StatusFn = Callable[[StreamStatus], None]
GapFn = Callable[[SequenceGap], None]
SafeFn = Callable[[ErrorCode, str], None]


class BinanceLive:
    """The live Binance parts and their lifecycle."""

    def __init__(
        self,
        *,
        venue: CcxtVenue,
        feed: BinanceMarketFeed,
        user_stream: BinanceUserStream,
        clock_sync: ClockSync,
        cancel_on_disconnect: CancelOnDisconnect,
        dead_mans_switch: DeadMansSwitch,
        clock_check_interval_s: float,
    ) -> None:
        self.venue = venue
        self.feed = feed
        self.user_stream = user_stream
        self.clock_sync = clock_sync
        self.cancel_on_disconnect = cancel_on_disconnect
        self.dead_mans_switch = dead_mans_switch
        self.metrics = venue.metrics
        self._clock_interval_s = clock_check_interval_s
        self._stop = asyncio.Event()
        self._clock_task: asyncio.Task[None] | None = None
        self.started = False

    async def start(self) -> None:
        """The first clock measurement, markets and fees (read key), then the streams. On failure everything
        started so far is closed again and the error is raised (the service refuses to start)."""
        try:
            await self.venue.connect()
            await self.user_stream.start()
            await self.feed.start()
        except BaseException:
            await self.stop("start failed")
            raise
        self._clock_task = asyncio.create_task(self._clock_loop(), name=f"{self.venue.name}-clock")
        self.started = True

    async def _clock_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.wait_for(self._stop.wait(), self._clock_interval_s)
                return
            except TimeoutError:
                pass
            try:
                await self.clock_sync.measure()
            except VenueError as exc:
                log.warning("%s: clock measurement failed: %s", self.venue.name, exc.code)

    async def engine_guard(self) -> None:
        """Add to ``Engine.guards``: runs at the top of every engine iteration; never blocks on I/O."""
        self.feed.check_staleness()
        self.dead_mans_switch.kick()

    async def stop(self, reason: str = "service stop") -> None:
        """Cancel resting orders (when configured), then close streams and clients. Safe to call twice."""
        self._stop.set()
        try:
            await self.dead_mans_switch.disarm()
            if self.cancel_on_disconnect.enabled and self.started:
                await self.cancel_on_disconnect.wait_idle()
                await self.cancel_on_disconnect.sweep(reason)
        finally:
            if self._clock_task is not None:
                self._clock_task.cancel()
                await asyncio.gather(self._clock_task, return_exceptions=True)
            await self.user_stream.close()
            await self.feed.close()
            await self.cancel_on_disconnect.close()
            await self.venue.close()


@dataclass(frozen=True, slots=True)
class KeyPermissions:
    """What the venue says one API key may do (Binance: ``GET /sapi/v1/account/apiRestrictions``)."""

    fingerprint: str
    can_read: bool
    can_trade: bool
    can_withdraw: bool
    ip_restricted: bool


async def fetch_key_permissions(settings: Settings, credentials: Credentials, *, exchange_factory: ExchangeFactory | None = None) -> KeyPermissions:
    """Ask the venue what ``credentials`` may do, with that key itself (for ``bot keys verify``: the read key
    must not trade, no key should withdraw). A one-off client, closed before returning."""
    factory = exchange_factory or make_exchange_factory(settings.venue)
    exchange = factory(credentials)
    metrics = VenueMetrics()
    call = CcxtCall(exchange, role=f"verify-{credentials.scope.value}", metrics=metrics, clock=WallClock(),
                    secrets=(credentials.api_key.get_secret_value(), credentials.secret.get_secret_value()))
    try:
        offset = await call("fetch_time", exchange.fetch_time) - int(WallClock().now_ns() / 1e6)
        exchange.options["timeDifference"] = -offset
        answer = await call("api_restrictions", exchange.sapi_get_account_apirestrictions)
    finally:
        await call.close()
    return KeyPermissions(
        fingerprint=credentials.fingerprint(),
        can_read=bool(answer.get("enableReading")),
        can_trade=bool(answer.get("enableSpotAndMarginTrading")) or bool(answer.get("enableFixApiTrade")),
        can_withdraw=bool(answer.get("enableWithdrawals")) or bool(answer.get("permitsUniversalTransfer")),
        ip_restricted=bool(answer.get("ipRestrict")),
    )


def _fan_out(*targets: Callable[[Any], None] | None) -> Callable[[Any], None]:
    live = [t for t in targets if t is not None]

    def call(event: Any) -> None:
        for target in live:
            try:
                target(event)
            except Exception:
                log.exception("stream event handler %r failed", target)

    return call


def build_binance(
    settings: Settings,
    *,
    read_credentials: Credentials | None,
    trade_credentials: TradeCredentialsProvider,
    clock: Clock,
    on_alert: AlertFn | None = None,
    on_status: StatusFn | None = None,
    on_gap: GapFn | None = None,
    on_safe: SafeFn | None = None,
    on_balances: Callable[[Mapping[str, Balance]], None] | None = None,
    feed_health: FeedHealth | None = None,
    on_book: Callable[[Book], None] | None = None,
    exchange_factory: ExchangeFactory | None = None,
    rng: random.Random | None = None,
    sleep: Sleep | None = None,
) -> BinanceLive:
    """Build the Binance spot adapter: no I/O until ``start()``.

    ``read_credentials``: the read-only key (None: public data only; LIVE needs one for fills and balances).
    ``trade_credentials``: returns the trade key while LIVE is armed, else None (the key holder, issue 8).
    ``on_status``: every stream health change (OMS feed gating, risk staleness). ``on_gap``: sequence gaps
    (market update ids; fills the stream missed). ``on_safe``: called with ``CLOCK_DRIFT`` when the clock
    blocks new orders. ``on_alert``: ``Notifier.alert``.
    """
    v = settings.venue
    if v.exchange != "binance":
        raise ValueError(f"venue.exchange = {v.exchange!r}: build_binance builds only 'binance'")
    rng = rng or random.Random()
    _, ws_url = endpoints(v)
    metrics = VenueMetrics()
    factory = exchange_factory or make_exchange_factory(v)
    retry = RetryPolicy(v.retry_attempts, Backoff(v.retry_base_ms / 1000, v.retry_max_ms / 1000), v.max_retry_after_s)
    read = ReadClient(factory, read_credentials, metrics=metrics, clock=clock, retry=retry, rng=rng, sleep=sleep or asyncio.sleep)

    def trade_factory(credentials: Credentials, markets: Mapping[str, Any]) -> TradeClient:
        return TradeClient(factory, credentials, markets=markets, metrics=metrics, clock=clock, retry=retry, rng=rng, sleep=sleep or asyncio.sleep)

    assets = tuple(settings.market.assets)
    holder: dict[str, Any] = {}
    venue = CcxtVenue(
        name="binance",
        assets=assets,
        dialect=BinanceDialect(),
        read=read,
        trade_factory=trade_factory,
        trade_credentials=trade_credentials,
        clock=clock,
        metrics=metrics,
        on_alert=on_alert,
        on_gap=on_gap,
        mark_price=lambda asset: holder["feed"].mark(asset),
    )
    clock_sync = ClockSync(
        venue="binance",
        fetch_venue_time_ms=read.fetch_time_ms,
        clock=clock,
        max_offset_ms=v.max_clock_offset_ms,
        max_drift_ms=v.max_clock_drift_ms,
        apply_offset=venue.set_time_difference,
        on_alert=on_alert,
        on_block=on_safe,
    )
    venue.clock_sync = clock_sync
    cod = CancelOnDisconnect(venue, enabled=v.cancel_on_disconnect, on_alert=on_alert)
    status = _fan_out(on_status, cod.on_status)
    reconnect = Backoff(v.reconnect_initial_ms / 1000, v.reconnect_max_ms / 1000)
    feed = BinanceMarketFeed(
        ws_url=ws_url,
        assets=assets,
        clock=clock,
        stale_after_s=v.market_data_stale_s,
        symbols=lambda: {inst.venue_symbol: a for a, inst in venue.instruments.items()},
        depth_levels=v.depth_levels,
        venue="binance",
        venue_offset_ns=lambda: clock_sync.offset_ns,
        backoff=reconnect,
        ping_interval_s=v.ws_ping_interval_s,
        ping_timeout_s=v.ws_ping_timeout_s,
        on_status=status,
        on_gap=on_gap,
        on_book=on_book,
        metrics=metrics,
        rng=rng,
        sleep=sleep,
    )
    holder["feed"] = feed
    user_stream = BinanceUserStream(
        venue=venue,
        ws_url=ws_url,
        clock=clock,
        keepalive_s=v.listen_key_keepalive_s,
        poll_interval_s=v.trade_poll_interval_s,
        fallback_interval_s=v.trade_poll_fallback_s,
        backoff=reconnect,
        ping_interval_s=v.ws_ping_interval_s,
        ping_timeout_s=v.ws_ping_timeout_s,
        on_status=status,
        on_gap=on_gap,
        on_balances=on_balances,
        feed_health=feed_health,
        rng=rng,
        sleep=sleep,
    )
    dms = DeadMansSwitch(venue, timeout_s=v.dead_mans_switch_s, clock=clock, on_alert=on_alert)
    return BinanceLive(
        venue=venue,
        feed=feed,
        user_stream=user_stream,
        clock_sync=clock_sync,
        cancel_on_disconnect=cod,
        dead_mans_switch=dms,
        clock_check_interval_s=v.clock_check_interval_s,
    )
