"""Clocks. LIVE and DRY_RUN use the wall clock; REPLAY an injected clock that follows the recorded events."""

from __future__ import annotations

import time


class WallClock:
    """UTC wall time for timestamps, the monotonic clock for durations."""

    def now_ns(self) -> int:
        return time.time_ns()

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def observe(self, event_ns: int) -> None:
        """Wall time does not follow events."""


class ManualClock:
    """An injected clock: set by the test or by the replayed events, never by wall time."""

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    def now_ns(self) -> int:
        return self._now

    def monotonic_ns(self) -> int:
        return self._now

    def set(self, ns: int) -> None:
        self._now = ns

    def advance(self, ns: int) -> None:
        if ns < 0:
            raise ValueError("a clock does not go backwards")
        self._now += ns

    def observe(self, event_ns: int) -> None:
        """Follow the event stream forward (never backwards: out-of-order events keep the clock where it is)."""
        if event_ns > self._now:
            self._now = event_ns
