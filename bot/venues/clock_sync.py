"""The offset between our clock and the venue's (spec 4.5 time sync, 8.4 NTP requirement).

``measure()`` asks the venue for its time (one read call), takes the midpoint of the request as our time of
the answer, and computes ``offset = venue - local`` (positive: the venue is ahead). Signed requests then use
``local + offset`` (ccxt's ``options["timeDifference"] = -offset``), so a drifting host clock does not make
every private call fail with -1021.

A large offset means the host clock is wrong (and with it every timestamp we record): past
``max_offset_ms``, or when the offset moves by more than ``max_drift_ms`` between two measurements, new
orders are blocked (``CLOCK_DRIFT``) and an alert goes out; a later measurement within both bounds lifts the
block (what the operator must do to resume trading after a SAFE transition is decided elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.domain.errors import ErrorCode
from bot.domain.ports import Clock
from bot.domain.venue import VenueError

log = logging.getLogger(__name__)

AlertFn = Callable[[str, str, str], None]  # (severity, key, text): Notifier.alert
BlockFn = Callable[[ErrorCode, str], None]


@dataclass(frozen=True, slots=True)
class ClockSample:
    offset_ms: float  # venue - local
    rtt_ms: float
    local_ns: int


class ClockSync:
    def __init__(
        self,
        *,
        venue: str,
        fetch_venue_time_ms: Callable[[], Awaitable[int]],
        clock: Clock,
        max_offset_ms: int,
        max_drift_ms: int,
        apply_offset: Callable[[int], None],
        on_alert: AlertFn | None = None,
        on_block: BlockFn | None = None,
    ) -> None:
        self.venue = venue
        self._fetch = fetch_venue_time_ms
        self._clock = clock
        self.max_offset_ms = max_offset_ms
        self.max_drift_ms = max_drift_ms
        self._apply = apply_offset
        self._on_alert = on_alert
        self._on_block = on_block
        self.last: ClockSample | None = None
        self.previous: ClockSample | None = None
        self.blocked_reason: str | None = "clock offset not measured yet"
        self.measurements = 0

    @property
    def offset_ms(self) -> int:
        return 0 if self.last is None else round(self.last.offset_ms)

    @property
    def offset_ns(self) -> int:
        return 0 if self.last is None else round(self.last.offset_ms * 1_000_000)

    def venue_now_ns(self) -> int:
        """Our best estimate of the venue's clock now."""
        return self._clock.now_ns() + self.offset_ns

    def check(self) -> None:
        """Raise CLOCK_DRIFT while orders are blocked by the clock."""
        if self.blocked_reason is not None:
            raise VenueError(ErrorCode.CLOCK_DRIFT, f"new orders blocked: {self.blocked_reason}")

    async def measure(self) -> ClockSample:
        """One measurement; raises VenueError if the venue's time cannot be read (the block then stays as it was)."""
        t0_mono = self._clock.monotonic_ns()
        t0 = self._clock.now_ns()
        venue_ms = await self._fetch()
        t1 = self._clock.now_ns()
        rtt_ms = (self._clock.monotonic_ns() - t0_mono) / 1e6
        local_mid_ms = (t0 + t1) / 2 / 1e6
        sample = ClockSample(offset_ms=venue_ms - local_mid_ms, rtt_ms=rtt_ms, local_ns=t1)
        self.previous, self.last = self.last, sample
        self.measurements += 1
        self._apply(round(sample.offset_ms))
        self._evaluate(sample)
        return sample

    def _evaluate(self, sample: ClockSample) -> None:
        problems = []
        if abs(sample.offset_ms) > self.max_offset_ms:
            problems.append(f"offset to {self.venue} is {sample.offset_ms:+.0f} ms (limit {self.max_offset_ms} ms)")
        if self.previous is not None:
            drift = sample.offset_ms - self.previous.offset_ms
            if abs(drift) > self.max_drift_ms:
                problems.append(f"offset moved {drift:+.0f} ms since the last measurement (limit {self.max_drift_ms} ms)")
        was_blocked = self.blocked_reason is not None
        if problems:
            reason = "; ".join(problems) + ": check the host's time synchronisation (NTP)"
            self.blocked_reason = reason
            log.error("clock: %s; new orders blocked", reason)
            if self._on_alert is not None:
                self._on_alert("critical", f"clock:{self.venue}", f"Clock problem, new orders blocked: {reason}")
            if self._on_block is not None:
                self._on_block(ErrorCode.CLOCK_DRIFT, reason)
            return
        self.blocked_reason = None
        if was_blocked and self.measurements > 1:
            log.warning("clock: offset to %s back within limits (%+.0f ms)", self.venue, sample.offset_ms)
            if self._on_alert is not None:
                self._on_alert("info", f"clock:{self.venue}", f"Clock offset to {self.venue} back within limits ({sample.offset_ms:+.0f} ms)")
        else:
            log.info("clock: offset to %s %+.1f ms (rtt %.1f ms)", self.venue, sample.offset_ms, sample.rtt_ms)
