"""Cancel-on-disconnect and the venue's dead man's switch.

``CancelOnDisconnect``: when a stream we trade on dies (the user-data stream or the market-data connection:
``WS_STALE``), every resting order on our assets is cancelled at the venue; when one asset's market data goes
stale (``MARKET_DATA_STALE``), that asset's orders are. A quote must not rest on the book while we are blind
to it or to its fills. The same sweep runs when the service stops. Cancels need the trade key: when LIVE is
not armed there is none, and the operator gets a critical alert naming what could not be cancelled.

``DeadMansSwitch``: where the venue has a server-side cancel-all-after (ccxt ``cancelAllOrdersAfter``), it is
armed with a countdown and refreshed from the engine loop's guard, so if the process or its loop hangs the
venue cancels on its own. Binance spot has no such endpoint (only its futures API has
``countdownCancelAll``): there ``supported`` is False and client-side cancel-on-disconnect is the protection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.ports import Clock
from bot.domain.streams import StreamStatus
from bot.domain.venue import ExecutionReport, VenueError
from bot.venues.ccxt_venue import CcxtVenue

log = logging.getLogger(__name__)
AlertFn = Callable[[str, str, str], None]


class CancelOnDisconnect:
    def __init__(self, venue: CcxtVenue, *, enabled: bool, on_alert: AlertFn | None = None) -> None:
        self.venue = venue
        self.enabled = enabled
        self._on_alert = on_alert
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sweeps = 0
        self.cancelled: list[ExecutionReport] = []
        self.done = asyncio.Event()  # set after each sweep (tests and the stop path wait on it)

    def on_status(self, status: StreamStatus) -> None:
        """A stream status callback: schedule a sweep when a stream we depend on goes down."""
        if not self.enabled or status.healthy:
            return
        if status.code is ErrorCode.WS_STALE:
            self._spawn(self.sweep(f"{status.stream} stream down: {status.reason}"))
        elif status.code is ErrorCode.MARKET_DATA_STALE and status.asset is not None:
            self._spawn(self.sweep(f"{status.asset} market data stale: {status.reason}", [status.asset]))

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def sweep(self, reason: str, assets: list[str] | None = None) -> list[ExecutionReport]:
        """Cancel resting orders now (serialised: concurrent triggers do not double the requests' effect)."""
        async with self._lock:
            self.done.clear()
            self.sweeps += 1
            try:
                reports = await self.venue.cancel_all_resting(reason, assets)
            except VenueError as exc:
                what = "all assets" if assets is None else ", ".join(assets)
                if exc.code is ErrorCode.NOT_ARMED:
                    resting = await self._resting_count(assets)
                    if resting == 0:
                        log.info("%s: %s; not armed and nothing resting: nothing to cancel", self.venue.name, reason)
                        return []
                    shown = "an unknown number of" if resting is None else str(resting)
                    text = (f"{self.venue.name}: {reason}. {shown} resting order(s) on {what} could NOT be cancelled: "
                            "no trade key (not armed). Arm and cancel, or cancel at the venue.")
                else:
                    text = f"{self.venue.name}: {reason}. Cancelling resting orders on {what} failed ({exc.code}): {exc.message}. Check the venue."
                log.critical(text)
                if self._on_alert is not None:
                    self._on_alert("critical", f"cod:{self.venue.name}", text)
                return []
            finally:
                self.done.set()
            self.cancelled.extend(reports)
            if reports:
                text = f"{self.venue.name}: {reason}. Cancelled {len(reports)} resting order(s)."
                log.warning(text)
                if self._on_alert is not None:
                    self._on_alert("warning", f"cod:{self.venue.name}", text)
            return reports

    async def _resting_count(self, assets: list[str] | None) -> int | None:
        try:
            orders = []
            for asset in self.venue.assets if assets is None else assets:
                orders.extend(await self.venue.get_open_orders(asset))
            return len(orders)
        except VenueError:
            return None

    async def close(self) -> None:
        await self.wait_idle()


class DeadMansSwitch:
    def __init__(self, venue: CcxtVenue, *, timeout_s: int, clock: Clock, on_alert: AlertFn | None = None) -> None:
        self.venue = venue
        self.timeout_s = timeout_s
        self._clock = clock
        self._on_alert = on_alert
        self._refresh_ns = max(1, timeout_s // 3) * 1_000_000_000
        self._last_ns: int | None = None
        self._task: asyncio.Task[None] | None = None
        self.refreshes = 0
        self.supported: bool | None = None  # known once a trade client exists

    def due(self) -> bool:
        if self.timeout_s <= 0 or self.supported is False:
            return False
        return self._last_ns is None or self._clock.monotonic_ns() - self._last_ns >= self._refresh_ns

    def kick(self) -> None:
        """From the engine loop: refresh in the background when due (never blocks the loop)."""
        if self.due() and self.venue.has_trade_client and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self.refresh())

    async def refresh(self) -> bool:
        trade = await self.venue.trade_client_if_armed()
        if trade is None:
            return False
        self.supported = trade.supports_cancel_all_after
        if not self.supported or self.timeout_s <= 0:
            return False
        try:
            await trade.cancel_all_orders_after(self.timeout_s * 1000)
        except VenueError as exc:
            log.error("%s: dead man's switch refresh failed: %s", self.venue.name, exc.code)
            if self._on_alert is not None:
                self._on_alert("warning", f"dms:{self.venue.name}", f"{self.venue.name}: dead man's switch refresh failed ({exc.code})")
            return False
        self._last_ns = self._clock.monotonic_ns()
        self.refreshes += 1
        return True

    async def disarm(self) -> None:
        """Cancel the countdown (timeout 0) before a planned stop, where supported."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if not self.supported or not self.venue.has_trade_client:
            return
        trade = await self.venue.trade_client_if_armed()
        if trade is not None:
            try:
                await trade.cancel_all_orders_after(0)
            except VenueError as exc:
                log.warning("%s: disarming the dead man's switch failed: %s", self.venue.name, exc.code)
