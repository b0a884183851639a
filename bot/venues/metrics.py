"""Latency and health numbers of one venue (spec 10: request / ack / fill latency; spec 4.5 observability).

- ``request``: round trip of every REST call, per endpoint (monotonic clock).
- ``ack``: submit sent -> the venue's answer to it (monotonic clock).
- ``fill``: the venue's event time of a fill -> we received it (wall clocks, corrected by the measured offset).
- ``market``: the venue's event time of a market data update -> we received it (when the stream carries one).
Counters: errors by code, reconnects, sequence gaps, duplicates dropped, staleness events.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


class LatencyStats:
    """A bounded window of samples in nanoseconds; percentiles over the window."""

    __slots__ = ("_samples", "count", "last_ns", "max_ns")

    def __init__(self, window: int = 2048) -> None:
        self._samples: deque[int] = deque(maxlen=window)
        self.count = 0
        self.last_ns: int | None = None
        self.max_ns = 0

    def add(self, ns: int) -> None:
        self._samples.append(ns)
        self.count += 1
        self.last_ns = ns
        if ns > self.max_ns:
            self.max_ns = ns

    def percentile(self, q: float) -> int | None:
        if not self._samples:
            return None
        ordered = sorted(self._samples)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index]

    def snapshot(self) -> dict[str, Any]:
        def ms(v: int | None) -> float | None:
            return None if v is None else round(v / 1e6, 3)

        return {
            "count": self.count,
            "last_ms": ms(self.last_ns),
            "p50_ms": ms(self.percentile(0.5)),
            "p99_ms": ms(self.percentile(0.99)),
            "max_ms": ms(self.max_ns if self.count else None),
        }


@dataclass
class VenueMetrics:
    requests: dict[str, LatencyStats] = field(default_factory=dict)
    ack: LatencyStats = field(default_factory=LatencyStats)
    fill: LatencyStats = field(default_factory=LatencyStats)
    market: LatencyStats = field(default_factory=LatencyStats)
    errors: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)

    def request(self, endpoint: str, ns: int) -> None:
        stats = self.requests.get(endpoint)
        if stats is None:
            stats = self.requests[endpoint] = LatencyStats()
        stats.add(ns)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": {k: v.snapshot() for k, v in sorted(self.requests.items())},
            "ack": self.ack.snapshot(),
            "fill": self.fill.snapshot(),
            "market": self.market.snapshot(),
            "errors": dict(sorted(self.errors.items())),
            "events": dict(sorted(self.events.items())),
        }
