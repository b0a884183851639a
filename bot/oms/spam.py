"""Order spam controls (spec 4.7.5): a per-asset placement rate limit and a place/cancel flip-flop detector.

Both are sliding windows over the monotonic clock (the injected clock in REPLAY and tests). Pure: no I/O;
the OrderManager audits and escalates.
"""

from __future__ import annotations

from collections import deque
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

NS = 1_000_000_000


class RateLimiter:
    """At most ``rate`` placements per second per asset, as N placements in any window of W seconds.

    rate >= 1: W = 1 s, N = floor(rate) (5/s -> 5 in any second). rate < 1: W = ceil(1/rate) s, N = 1
    (0.5/s -> 1 in any 2 seconds). Cancels are never limited: pulling an order is always allowed.
    """

    __slots__ = ("window_ns", "max_count", "_times")

    def __init__(self, rate: Decimal) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        window_s = max(Decimal(1), (Decimal(1) / rate).to_integral_value(rounding=ROUND_CEILING))
        self.window_ns = int(window_s) * NS
        self.max_count = max(1, int((rate * window_s).to_integral_value(rounding=ROUND_FLOOR)))
        self._times: dict[str, deque[int]] = {}

    def _window(self, asset: str, now_ns: int) -> deque[int]:
        times = self._times.get(asset)
        if times is None:
            times = self._times[asset] = deque()
        edge = now_ns - self.window_ns
        while times and times[0] <= edge:
            times.popleft()
        return times

    def allows(self, asset: str, now_ns: int) -> bool:
        return len(self._window(asset, now_ns)) < self.max_count

    def record(self, asset: str, now_ns: int) -> None:
        self._window(asset, now_ns).append(now_ns)

    def count(self, asset: str, now_ns: int) -> int:
        return len(self._window(asset, now_ns))


class FlipFlopDetector:
    """Counts place/cancel cycles per asset in a rolling window.

    A cycle is one of our own orders that we cancel before any of it filled: it was placed, it did nothing,
    and it was pulled. Market making legitimately does this on every requote, so the default threshold
    (150 per minute per asset) sits above the shipped quote strategy's maximum (two sides at one requote per
    second = 120 per minute) and below the placement rate limit's ceiling (5/s = 300 per minute). A runaway
    loop that places and cancels faster than the strategy ever should is stopped here even when it stays
    under the per-second rate limit.
    """

    __slots__ = ("window_ns", "max_cycles", "_times")

    def __init__(self, window_ns: int, max_cycles: int) -> None:
        if window_ns <= 0 or max_cycles < 1:
            raise ValueError("window and max_cycles must be positive")
        self.window_ns = window_ns
        self.max_cycles = max_cycles
        self._times: dict[str, deque[int]] = {}

    def _window(self, asset: str, now_ns: int) -> deque[int]:
        times = self._times.get(asset)
        if times is None:
            times = self._times[asset] = deque()
        edge = now_ns - self.window_ns
        while times and times[0] <= edge:
            times.popleft()
        return times

    def record_cycle(self, asset: str, now_ns: int) -> int:
        """Record one cycle; returns the number of cycles in the window including it."""
        times = self._window(asset, now_ns)
        times.append(now_ns)
        return len(times)

    def count(self, asset: str, now_ns: int) -> int:
        return len(self._window(asset, now_ns))

    def breached(self, asset: str, now_ns: int) -> bool:
        return self.count(asset, now_ns) > self.max_cycles
