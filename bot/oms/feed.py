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


class FeedHealth:
    __slots__ = ("_clock", "stale_after_ns", "name", "up", "last_alive_ns", "generation", "down_reason")

    def __init__(self, clock: Clock, stale_after_ns: int, name: str = "user-stream") -> None:
        if stale_after_ns <= 0:
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
        self.up = False
        self.generation += 1
        self.down_reason = reason or "disconnected"

    # --- read by the OMS ----------------------------------------------------------------------
    def status(self, now_ns: int) -> tuple[bool, str]:
        """(healthy, why not)."""
        if not self.up:
            return False, f"{self.name} down: {self.down_reason}"
        if self.last_alive_ns is not None and now_ns - self.last_alive_ns > self.stale_after_ns:
            silent_s = (now_ns - self.last_alive_ns) / 1e9
            return False, f"{self.name} stale: no message or heartbeat for {silent_s:.1f}s"
        return True, ""
