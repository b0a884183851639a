"""Health of the venue's fills/orders stream (spec 4.7.4), as the adapter reports it.

The venue adapter calls ``connected()`` when its user-data stream is up, ``alive()`` on every message and
heartbeat (pong), and ``disconnected(reason)`` when it drops. These only record facts (they are safe to call
from the adapter's own task); the OrderManager observes them inside the engine loop, audits the transitions,
blocks new orders while the stream is down or stale, and after a recovery marks positions dirty until a
reconciliation confirms them (fills may have been missed while it was down).

A venue whose reports are delivered in-process (the simulated venue) has no stream to watch: the
composition root passes no FeedHealth for it.
"""

from __future__ import annotations

from bot.domain.ports import Clock
from bot.domain.streams import StreamStatus


class FeedHealth:
    __slots__ = ("_clock", "stale_after_ns", "name", "up", "last_alive_ns", "generation", "down_reason")

    def __init__(self, clock: Clock, stale_after_ns: int | None, name: str = "user-stream") -> None:
        """``stale_after_ns``: silence that makes the stream stale; None when the adapter detects a dead
        connection itself (heartbeats) and reports it as a disconnect (the Binance adapter does)."""
        if stale_after_ns is not None and stale_after_ns <= 0:
            raise ValueError("stale_after_ns must be positive")
        self._clock = clock
        self.stale_after_ns = stale_after_ns
        self.name = name
        self.up = False  # fail closed: not healthy until the adapter says it is connected
        self.last_alive_ns: int | None = None
        self.generation = 0  # incremented on every disconnect, so a drop between two observations is not missed
        self.down_reason = "not connected yet"

    # --- called by the venue adapter --------------------------------------------------------
    def connected(self) -> None:
        self.up = True
        self.last_alive_ns = self._clock.monotonic_ns()
        self.down_reason = ""

    def alive(self) -> None:
        """A message or a heartbeat arrived."""
        self.last_alive_ns = self._clock.monotonic_ns()

    def disconnected(self, reason: str) -> None:
        if self.up:
            self.generation += 1
        self.up = False
        self.down_reason = reason or "disconnected"

    def on_status(self, status: StreamStatus) -> None:
        """The venue adapter's ``on_status`` callback: only the user-data stream's connection matters here
        (market data staleness is the risk part's)."""
        if status.stream != "user" or status.asset is not None:
            return
        if status.healthy:
            self.connected()
        else:
            self.disconnected(f"{status.code.value + ': ' if status.code else ''}{status.reason}")

    # --- read by the OMS ----------------------------------------------------------------------
    def status(self, now_ns: int) -> tuple[bool, str]:
        """(healthy, why not)."""
        if not self.up:
            return False, f"{self.name} down: {self.down_reason}"
        if self.stale_after_ns is not None and self.last_alive_ns is not None and now_ns - self.last_alive_ns > self.stale_after_ns:
            silent_s = (now_ns - self.last_alive_ns) / 1e9
            return False, f"{self.name} stale: no message or heartbeat for {silent_s:.1f}s"
        return True, ""
