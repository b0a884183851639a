"""A WebSocket connection that stays up: reconnect with backoff and jitter, ping/pong heartbeat.

The heartbeat is ours (``websockets``' own keepalive is off): a ping every ``ping_interval``; each pong and
each message calls ``on_alive`` (the OMS's stream-health clock); no pong within ``ping_timeout`` and the
connection is dropped at once (a half-open TCP connection is detected that way). The venue's own pings are
answered automatically. Every loss of the connection is reported (``on_state(False, reason)``) *before* the
reconnect delay, so cancel-on-disconnect and feed gating act at once; the delay grows exponentially with
full jitter and resets once a connection has stayed up for ``stable_after_s``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from bot.domain.ports import Clock
from bot.venues.retry import Backoff

log = logging.getLogger(__name__)

MessageFn = Callable[[str | bytes], Awaitable[None]]
StateFn = Callable[[bool, str], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class ReconnectingWebSocket:
    def __init__(
        self,
        name: str,
        *,
        url: Callable[[], Awaitable[str]],
        on_message: MessageFn,
        on_state: StateFn,
        clock: Clock,
        backoff: Backoff,
        ping_interval_s: float,
        ping_timeout_s: float,
        open_timeout_s: float = 10.0,
        stable_after_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Sleep | None = None,
        on_alive: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._on_alive = on_alive or (lambda: None)
        self._heartbeat_failure: str | None = None
        self.pongs = 0
        self._url = url
        self._on_message = on_message
        self._on_state = on_state
        self._clock = clock
        self._backoff = backoff
        self._ping_interval = ping_interval_s
        self._ping_timeout = ping_timeout_s
        self._open_timeout = open_timeout_s
        self._stable_ns = int(stable_after_s * 1e9)
        self._rng = rng or random.Random()
        self._sleep = sleep or self._interruptible_sleep
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.connections = 0
        self.disconnects = 0
        self.delays: list[float] = []
        self.message_errors = 0
        self.last_reason = ""

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    @property
    def ping_latency_s(self) -> float:
        return self._ws.latency if self._ws is not None else 0.0

    async def _interruptible_sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def run(self) -> None:
        """Connect, read, reconnect, until ``close()``."""
        attempt = 0
        while not self._stop.is_set():
            reason = ""
            started = None
            try:
                url = await self._url()
                proxy = None if urlsplit(url).hostname in _LOOPBACK else True
                async with connect(
                    url,
                    ping_interval=None,  # our heartbeat below
                    open_timeout=self._open_timeout,
                    close_timeout=min(2.0, self._ping_timeout),
                    max_size=2**22,
                    proxy=proxy,
                ) as ws:
                    self._ws = ws
                    self._heartbeat_failure = None
                    started = self._clock.monotonic_ns()
                    self.connections += 1
                    self.connected.set()
                    heartbeat = asyncio.create_task(self._heartbeat(ws), name=f"{self.name} heartbeat")
                    try:
                        await self._on_state(True, "connected")
                        if self._stop.is_set():
                            break
                        async for message in ws:
                            self._on_alive()
                            try:
                                await self._on_message(message)
                            except Exception:
                                self.message_errors += 1
                                log.exception("%s: a message could not be handled (dropped)", self.name)
                        reason = f"closed by the venue (code {ws.close_code} {ws.close_reason or ''})".strip()
                    finally:
                        heartbeat.cancel()
                        await asyncio.gather(heartbeat, return_exceptions=True)
            except ConnectionClosed as exc:
                reason = self._heartbeat_failure or f"connection lost ({exc})"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                reason = f"cannot connect ({type(exc).__name__}: {exc})"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # e.g. the listen key could not be obtained
                reason = f"cannot connect ({type(exc).__name__}: {exc})"
            finally:
                self._ws = None
                self.connected.clear()
            if self._stop.is_set():
                break
            self.disconnects += 1
            self.last_reason = reason
            log.warning("%s: %s", self.name, reason)
            await self._on_state(False, reason)
            if started is not None and self._clock.monotonic_ns() - started >= self._stable_ns:
                attempt = 0
            delay = self._backoff.delay(attempt, self._rng)
            attempt += 1
            self.delays.append(delay)
            await self._sleep(delay)

    async def _heartbeat(self, ws: ClientConnection) -> None:
        """Ping every interval; a pong is a sign of life; none within the timeout drops the connection."""
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                pong = await ws.ping()
                async with asyncio.timeout(self._ping_timeout):
                    await pong
            except TimeoutError:
                self._heartbeat_failure = f"heartbeat: no pong within {self._ping_timeout:g} s (keepalive ping timeout)"
                log.warning("%s: %s: dropping the connection", self.name, self._heartbeat_failure)
                ws.transport.abort()  # no closing handshake with a peer that does not answer
                return
            except ConnectionClosed:
                return
            self.pongs += 1
            self._on_alive()

    async def reconnect(self, reason: str) -> None:
        """Drop the current connection (e.g. the listen key expired); ``run`` reconnects."""
        ws = self._ws
        if ws is not None:
            log.info("%s: reconnecting: %s", self.name, reason)
            await ws.close(code=1000, reason=reason[:100])

    async def send(self, data: Any) -> None:
        if self._ws is not None:
            await self._ws.send(data)

    async def close(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is not None:
            await ws.close()
