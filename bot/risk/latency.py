"""Latency breach per venue (seed 000 §07: "Latency p95 doubled. Reduce order rate by 50%. If it persists, halt.").

Samples are order-ack latencies (``ExecutionReport.latency_ns``), kept in a rolling window per venue. The p95
is nearest-rank over the window. The baseline is ``baseline_ms`` when configured, otherwise the p95 of the first
full window (never below ``min_baseline_ms``), then frozen: a slow creep must not teach the monitor that slow
is normal.

States (each change is a ``Transition``, audited):

- NORMAL    -> THROTTLED when p95 >= degrade_ratio x baseline: the order rate is cut to throttle_factor x rate.
- any       -> BLOCKED   when p95 >= hard_ms; THROTTLED -> BLOCKED when throttled for persist_s.
               New orders are blocked (reducing orders still pass: they lower risk).
- BLOCKED   -> THROTTLED after block_cooldown_s, with an empty window: a probe at the throttled rate.
- THROTTLED -> NORMAL    only once p95 < recover_ratio x baseline has held for recover_s (hysteresis).
"""

from __future__ import annotations

import math
from collections import deque
from enum import Enum

from bot.domain.errors import ErrorCode
from bot.risk.limits import LatencyLimits
from bot.risk.transition import Transition

MS = 1_000_000
NS = 1_000_000_000


class LatencyState(str, Enum):
    NORMAL = "NORMAL"
    THROTTLED = "THROTTLED"
    BLOCKED = "BLOCKED"

    def __str__(self) -> str:
        return self.value


class _Venue:
    __slots__ = ("samples", "baseline_ns", "state", "since_ns", "recover_since_ns", "orders")

    def __init__(self, window: int, baseline_ns: float | None, now_ns: int) -> None:
        self.samples: deque[int] = deque(maxlen=window)
        self.baseline_ns = baseline_ns
        self.state = LatencyState.NORMAL
        self.since_ns = now_ns
        self.recover_since_ns: int | None = None
        self.orders: deque[int] = deque()


def p95(samples: deque[int] | list[int]) -> int:
    """Nearest-rank 95th percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class LatencyMonitor:
    def __init__(self, limits: LatencyLimits) -> None:
        self.limits = limits
        self._venues: dict[str, _Venue] = {}
        self._hard = limits.hard_ms * MS
        self._floor = limits.min_baseline_ms * MS
        self._configured = max(limits.baseline_ms * MS, self._floor) if limits.baseline_ms > 0 else None
        self._throttled_limit = max(1, int(limits.order_rate_per_s * limits.throttle_factor))

    def _venue(self, venue: str, now_ns: int) -> _Venue:
        v = self._venues.get(venue)
        if v is None:
            v = self._venues[venue] = _Venue(self.limits.window, self._configured, now_ns)
        return v

    # ------------------------------------------------------------------ queries (pure)
    def state(self, venue: str) -> LatencyState:
        v = self._venues.get(venue)
        return v.state if v is not None else LatencyState.NORMAL

    def p95_ms(self, venue: str) -> float | None:
        v = self._venues.get(venue)
        if v is None or len(v.samples) < self.limits.min_samples:
            return None
        return p95(v.samples) / MS

    def baseline_ms(self, venue: str) -> float | None:
        v = self._venues.get(venue)
        return None if v is None or v.baseline_ns is None else v.baseline_ns / MS

    def orders_last_second(self, venue: str, now_ns: int) -> int:
        v = self._venues.get(venue)
        if v is None:
            return 0
        cutoff = now_ns - NS
        n = 0
        for ts in reversed(v.orders):
            if ts <= cutoff:
                break
            n += 1
        return n

    def throttled_limit(self) -> int:
        """Orders per rolling second allowed while THROTTLED (floor of rate x factor, at least 1)."""
        return self._throttled_limit

    # ------------------------------------------------------------------ inputs
    def note_order(self, venue: str, now_ns: int) -> None:
        v = self._venue(venue, now_ns)
        v.orders.append(now_ns)
        cutoff = now_ns - NS
        while v.orders and v.orders[0] <= cutoff:
            v.orders.popleft()

    def observe(self, venue: str, latency_ns: int, now_ns: int) -> Transition | None:
        if latency_ns < 0:
            return None
        v = self._venue(venue, now_ns)
        v.samples.append(latency_ns)
        if v.baseline_ns is None and len(v.samples) >= self.limits.window and v.state is LatencyState.NORMAL:
            v.baseline_ns = max(p95(v.samples), self._floor)
        return self._step(venue, v, now_ns)

    def evaluate(self, now_ns: int) -> list[Transition]:
        """Time-based steps (persistence, block cooldown, recovery hold). Once per risk evaluation."""
        out = []
        for name, v in self._venues.items():
            if v.state is not LatencyState.NORMAL:
                t = self._step(name, v, now_ns)
                if t is not None:
                    out.append(t)
        return out

    # ------------------------------------------------------------------ the state machine
    def _step(self, venue: str, v: _Venue, now_ns: int) -> Transition | None:
        lim = self.limits
        p = p95(v.samples) if len(v.samples) >= lim.min_samples else None
        base = v.baseline_ns
        if v.state is LatencyState.BLOCKED:
            if now_ns - v.since_ns >= lim.block_cooldown_s * NS:
                v.samples.clear()
                return self._move(venue, v, LatencyState.THROTTLED, now_ns, f"blocked for {lim.block_cooldown_s:g}s: probing at the throttled rate")
            return None
        if p is not None and p >= self._hard:
            return self._move(venue, v, LatencyState.BLOCKED, now_ns, f"order-ack p95 {p / MS:.1f} ms >= hard threshold {lim.hard_ms:g} ms")
        if v.state is LatencyState.NORMAL:
            if p is not None and base is not None and p >= lim.degrade_ratio * base:
                return self._move(
                    venue, v, LatencyState.THROTTLED, now_ns,
                    f"order-ack p95 {p / MS:.1f} ms >= {lim.degrade_ratio:g} x baseline {base / MS:.1f} ms: order rate x{lim.throttle_factor}",
                )
            return None
        # THROTTLED
        if now_ns - v.since_ns >= lim.persist_s * NS:
            return self._move(venue, v, LatencyState.BLOCKED, now_ns, f"latency breach persisted {lim.persist_s:g}s")
        level = lim.recover_ratio * base if base is not None else self._hard / lim.degrade_ratio
        if p is not None and p < level:
            if v.recover_since_ns is None:
                v.recover_since_ns = now_ns
            elif now_ns - v.recover_since_ns >= lim.recover_s * NS:
                return self._move(venue, v, LatencyState.NORMAL, now_ns, f"order-ack p95 {p / MS:.1f} ms < {level / MS:.1f} ms for {lim.recover_s:g}s")
        else:
            v.recover_since_ns = None
        return None

    def _move(self, venue: str, v: _Venue, to: LatencyState, now_ns: int, reason: str) -> Transition:
        old = v.state
        v.state, v.since_ns, v.recover_since_ns = to, now_ns, None
        severity = {LatencyState.BLOCKED: "critical", LatencyState.THROTTLED: "warning", LatencyState.NORMAL: "info"}[to]
        code = None if to is LatencyState.NORMAL else ErrorCode.RISK_BLOCKED
        return Transition("latency", f"venue:{venue}", old.value, to.value, code, reason, severity)
