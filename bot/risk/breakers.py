"""Circuit breakers, global and per strategy, with cooldowns (spec 4.5, 12 "Cooldown ... delay").

A breaker trips on a trigger and blocks new risk in its scope until its cooldown has passed, then closes by
itself (audited). A strategy's breaker is its cooldown after a drawdown or loss trigger. The global breaker
also trips on a burst of venue errors; tripping it ``max_trips`` times within ``escalation_s`` asks for a
human (the caller escalates to HALTED): an automated loop must not keep re-opening trading on its own.
"""

from __future__ import annotations

from collections import deque

from bot.domain.errors import ErrorCode
from bot.risk.limits import CooldownLimits
from bot.risk.transition import Transition

NS = 1_000_000_000


class CircuitBreaker:
    __slots__ = ("scope", "cooldown_ns", "open_until", "reason", "trips")

    def __init__(self, scope: str, cooldown_s: float) -> None:
        self.scope = scope
        self.cooldown_ns = int(cooldown_s * NS)
        self.open_until: int | None = None
        self.reason = ""
        self.trips: deque[int] = deque()

    def is_open(self, now_ns: int) -> bool:
        return self.open_until is not None and now_ns < self.open_until

    def trip(self, now_ns: int, reason: str) -> Transition:
        was = "OPEN" if self.is_open(now_ns) else "CLOSED"
        self.open_until = now_ns + self.cooldown_ns
        self.reason = reason
        self.trips.append(now_ns)
        return Transition("breaker", self.scope, was, "OPEN", ErrorCode.RISK_BLOCKED, f"{reason}; cooldown {self.cooldown_ns / NS:g}s", "warning")

    def step(self, now_ns: int) -> Transition | None:
        if self.open_until is not None and now_ns >= self.open_until:
            self.open_until = None
            return Transition("breaker", self.scope, "OPEN", "CLOSED", None, f"cooldown over (was: {self.reason})", "info")
        return None


class Breakers:
    def __init__(self, limits: CooldownLimits) -> None:
        self.limits = limits
        self.global_ = CircuitBreaker("global", limits.global_cooldown_s)
        self.strategies: dict[str, CircuitBreaker] = {}
        self._errors: deque[int] = deque()

    def strategy(self, strategy_id: str) -> CircuitBreaker:
        b = self.strategies.get(strategy_id)
        if b is None:
            b = self.strategies[strategy_id] = CircuitBreaker(f"strategy:{strategy_id}", self.limits.strategy_cooldown_s)
        return b

    def strategy_open(self, strategy_id: str, now_ns: int) -> CircuitBreaker | None:
        b = self.strategies.get(strategy_id)
        return b if b is not None and b.is_open(now_ns) else None

    def trip_global(self, now_ns: int, reason: str) -> tuple[Transition, bool]:
        """Returns the transition and whether the trips within the escalation window call for a human."""
        t = self.global_.trip(now_ns, reason)
        trips = self.global_.trips
        cutoff = now_ns - int(self.limits.breaker_escalation_s * NS)
        while trips and trips[0] < cutoff:
            trips.popleft()
        return t, len(trips) >= self.limits.breaker_max_trips

    def note_error(self, now_ns: int) -> bool:
        """A venue error. True when the burst reaches the threshold (the caller trips the global breaker)."""
        errors = self._errors
        errors.append(now_ns)
        cutoff = now_ns - int(self.limits.breaker_window_s * NS)
        while errors and errors[0] < cutoff:
            errors.popleft()
        if len(errors) >= self.limits.breaker_errors:
            errors.clear()
            return True
        return False

    def step(self, now_ns: int) -> list[Transition]:
        out = []
        t = self.global_.step(now_ns)
        if t is not None:
            out.append(t)
        for b in self.strategies.values():
            t = b.step(now_ns)
            if t is not None:
                out.append(t)
        return out
