"""Event discipline (seed 004): a jump detector for unscheduled moves and a calendar of scheduled ones.

Both trigger the same reflex on the asset: WIDEN or PULL quotes for a cooldown, then re-tighten.

Jump detector: per asset, a time-weighted EWMA of squared log returns estimates the variance rate
(per second). A jump is a log move, from the oldest price inside the last ``window_s`` seconds to now, of at
least ``sigma`` standard deviations over that window (``sigma * sqrt(var_rate * window_s)``) and at least
``min_move_bps``. The detector says nothing until it has seen ``min_samples`` returns (a cold detector must
not fire on its first wiggle), and each price is tested before it updates the variance (a jump cannot hide
itself). The statistics are floats: they are estimates, not money.

The EWMA weight of a return observed after ``dt`` seconds is ``1 - exp(-dt / halflife)``, so the estimate
is about ``sum(r^2) / halflife`` over the last half-life whatever the tick rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.risk.advice import SEVERITY, QuoteMode

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """A scheduled release. Quotes are widened or pulled from ``start_ns - before_ns`` to ``start_ns + after_ns``."""

    name: str
    start_ns: int
    before_ns: int
    after_ns: int
    assets: frozenset[str] = frozenset()  # empty: every asset
    action: QuoteMode = QuoteMode.PULL

    @property
    def window_start_ns(self) -> int:
        return self.start_ns - self.before_ns

    @property
    def window_end_ns(self) -> int:
        return self.start_ns + self.after_ns

    def covers(self, asset: str) -> bool:
        return not self.assets or asset in self.assets


class _Series:
    __slots__ = ("window", "last_ts", "last_lp", "var_rate", "n")

    def __init__(self) -> None:
        self.window: deque[tuple[int, float]] = deque()
        self.last_ts = 0
        self.last_lp = 0.0
        self.var_rate = 0.0
        self.n = 0  # returns seen


@dataclass(frozen=True, slots=True)
class Jump:
    asset: str
    ts_ns: int
    move_bps: float
    sigmas: float


class JumpDetector:
    def __init__(self, *, sigma: float, window_s: float, min_move_bps: float, min_samples: int, halflife_s: float) -> None:
        self.sigma = sigma
        self.window_ns = int(window_s * NS)
        self.window_s = window_s
        self.min_move = min_move_bps / 10_000
        self.min_samples = min_samples
        self.halflife_s = halflife_s
        self._series: dict[str, _Series] = {}

    def observe(self, asset: str, ts_ns: int, price: float) -> Jump | None:
        """Feed one mid price. Returns the jump it completes, if any. O(1) amortised."""
        if price <= 0:
            return None
        s = self._series.get(asset)
        if s is None:
            s = self._series[asset] = _Series()
        lp = math.log(price)
        jump = None
        if s.n or s.window:
            window = s.window
            cutoff = ts_ns - self.window_ns
            while window and window[0][0] < cutoff:
                window.popleft()
            ref = window[0][1] if window else s.last_lp
            move = lp - ref
            if s.n >= self.min_samples:
                sd = math.sqrt(s.var_rate * self.window_s)
                if abs(move) >= self.min_move and abs(move) >= self.sigma * sd:
                    jump = Jump(asset, ts_ns, move * 10_000, abs(move) / sd if sd > 0 else math.inf)
            dt = max((ts_ns - s.last_ts) / NS, 1e-6)
            r = lp - s.last_lp
            alpha = -math.expm1(-dt / self.halflife_s)
            s.var_rate += alpha * (r * r / dt - s.var_rate)
            s.n += 1
        s.window.append((ts_ns, lp))
        s.last_ts, s.last_lp = ts_ns, lp
        return jump

    def warmed_up(self, asset: str) -> bool:
        s = self._series.get(asset)
        return s is not None and s.n >= self.min_samples


class EventCalendar:
    """Scheduled events, sorted by window start; ``advance(now)`` is O(1) amortised."""

    def __init__(self, events: tuple[ScheduledEvent, ...] | list[ScheduledEvent]) -> None:
        self.events = sorted(events, key=lambda e: e.window_start_ns)
        self._next = 0
        self.active: list[ScheduledEvent] = []

    def advance(self, now_ns: int) -> tuple[list[ScheduledEvent], list[ScheduledEvent]]:
        """Move to ``now``. Returns (events that started, events that ended)."""
        started: list[ScheduledEvent] = []
        ended: list[ScheduledEvent] = []
        events = self.events
        while self._next < len(events) and events[self._next].window_start_ns <= now_ns:
            ev = events[self._next]
            self._next += 1
            if ev.window_end_ns > now_ns:
                self.active.append(ev)
                started.append(ev)
        if self.active:
            keep = []
            for ev in self.active:
                (keep if ev.window_end_ns > now_ns else ended).append(ev)
            self.active = keep
        return started, ended

    def mode(self, asset: str) -> tuple[QuoteMode, ScheduledEvent | None]:
        best, which = QuoteMode.NORMAL, None
        for ev in self.active:
            if ev.covers(asset) and SEVERITY[ev.action] > SEVERITY[best]:
                best, which = ev.action, ev
        return best, which


@dataclass(slots=True)
class EventDiscipline:
    """The asset's quote mode now: the strongest of a jump cooldown and the active scheduled events."""

    detector: JumpDetector
    calendar: EventCalendar
    jump_action: QuoteMode
    cooldown_ns: int
    jumps: dict[str, tuple[int, Jump]] = field(default_factory=dict)  # asset -> (cooldown end, jump)

    def on_price(self, asset: str, ts_ns: int, price: float) -> Jump | None:
        jump = self.detector.observe(asset, ts_ns, price)
        if jump is not None:
            self.jumps[asset] = (ts_ns + self.cooldown_ns, jump)
        return jump

    def mode(self, asset: str, now_ns: int) -> tuple[QuoteMode, str, int | None]:
        mode, reason, until = QuoteMode.NORMAL, "", None
        j = self.jumps.get(asset)
        if j is not None and now_ns < j[0]:
            mode = self.jump_action
            reason = f"jump {j[1].move_bps:+.1f} bps ({j[1].sigmas:.1f} sigma) on {asset}"
            until = j[0]
        if self.calendar.active:
            cmode, ev = self.calendar.mode(asset)
            if ev is not None and SEVERITY[cmode] >= SEVERITY[mode]:
                mode, reason, until = cmode, f"scheduled event {ev.name}", max(until or 0, ev.window_end_ns)
        return mode, reason, until

    def expire(self, now_of: Callable[[str], int | None]) -> list[tuple[str, Jump]]:
        """Jump cooldowns that ended (re-tighten), each asset on its own event time (its last tick).
        Called once per evaluation; O(assets in cooldown)."""
        if not self.jumps:
            return []
        done = [(a, j) for a, (until, j) in self.jumps.items() if (now_of(a) or 0) >= until]
        for a, _ in done:
            del self.jumps[a]
        return done
