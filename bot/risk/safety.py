"""The trading state machine (not flags): ACTIVE -> REDUCING -> HALTED / SAFE.

- ACTIVE: new orders allowed (still through every risk policy).
- REDUCING: only orders that reduce exposure.
- HALTED: no new orders; resting orders held (hard caps: "refuse new orders, hold existing").
- SAFE: cancels and hedges only, new orders refused; leaving it takes a human (``resume``), and in LIVE a
  fresh arming after that.

Automatic transitions only escalate (ACTIVE < REDUCING < HALTED < SAFE). De-escalation happens only through
``resume(by)``, which runs the recovery checklist first (spec 16.1). Every transition is audited with its code
and reason and announced to listeners (alerts, arming revocation, trade-key drop, incident drafting).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from bot.domain.errors import ErrorCode
from bot.domain.ports import AuditSink, Clock

log = logging.getLogger(__name__)


class TradingState(str, Enum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"
    SAFE = "SAFE"

    def __str__(self) -> str:
        return self.value


SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2, TradingState.SAFE: 3}


@dataclass(frozen=True, slots=True)
class Check:
    """One item of the recovery checklist."""

    name: str
    ok: bool
    detail: str = ""


Listener = Callable[[TradingState, TradingState, ErrorCode | None, str], None]
CheckFn = Callable[[], Check]


class SafetyController:
    def __init__(self, audit: AuditSink, clock: Clock) -> None:
        self._audit = audit
        self._clock = clock
        self.state = TradingState.ACTIVE
        self.code: ErrorCode | None = None
        self.reason = "start"
        self.since_ns = clock.now_ns()
        self._listeners: list[Listener] = []
        self._checks: list[CheckFn] = []

    # ------------------------------------------------------------------ wiring
    def add_listener(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def add_check(self, fn: CheckFn) -> None:
        """A recovery-checklist item (positions reconciled, data fresh, limits confirmed, incident drafted...)."""
        self._checks.append(fn)

    # ------------------------------------------------------------------ queries
    def allows_new_orders(self) -> bool:
        return self.state is TradingState.ACTIVE

    def allows_reducing_orders(self) -> bool:
        return self.state in (TradingState.ACTIVE, TradingState.REDUCING, TradingState.SAFE)

    # ------------------------------------------------------------------ transitions
    def enter(self, state: TradingState, code: ErrorCode | None, reason: str, scope: str = "global") -> bool:
        """Escalate to ``state``. A request to de-escalate is refused (use ``resume``). Returns True if applied."""
        if SEVERITY[state] < SEVERITY[self.state]:
            log.warning("refused automatic de-escalation %s -> %s (%s): only resume() leaves %s", self.state, state, reason, self.state)
            return False
        if state is self.state and code == self.code:
            return False  # repeated trigger: already there for the same cause
        self._transition(state, code, reason, scope)
        return True

    def kill(self, reason: str) -> None:
        """Manual or automatic kill: SAFE immediately. The caller cancels resting orders."""
        self.enter(TradingState.SAFE, ErrorCode.KILL_SWITCH, reason)

    def resume_checks(self) -> list[Check]:
        results: list[Check] = []
        for fn in self._checks:
            try:
                results.append(fn())
            except Exception as exc:  # a check that cannot run is a failed check (fail closed)
                results.append(Check(getattr(fn, "__name__", "check"), False, f"check failed to run: {type(exc).__name__}"))
        return results

    def resume(self, by: str) -> tuple[bool, list[Check]]:
        """Back to ACTIVE if every check passes. LIVE still needs a fresh arming afterwards (arming is separate)."""
        checks = self.resume_checks()
        if self.state is TradingState.ACTIVE:
            return True, checks
        if not all(c.ok for c in checks):
            missing = ", ".join(c.name for c in checks if not c.ok)
            self._audit.record(
                "state_transition",
                {"kind": "resume_refused", "scope": "global", "from_state": self.state.value, "to_state": self.state.value,
                 "code": self.code.value if self.code else None, "reason": f"resume by {by} refused: missing {missing}"},
            )
            return False, checks
        self._transition(TradingState.ACTIVE, None, f"resumed by {by}", "global")
        return True, checks

    def _transition(self, state: TradingState, code: ErrorCode | None, reason: str, scope: str) -> None:
        old = self.state
        self.state, self.code, self.reason, self.since_ns = state, code, reason, self._clock.now_ns()
        self._audit.record(
            "state_transition",
            {"kind": "trading_state", "scope": scope, "from_state": old.value, "to_state": state.value,
             "code": code.value if code else None, "reason": reason},
        )
        log.warning("trading state %s -> %s (%s): %s", old, state, code or "-", reason)
        for fn in self._listeners:
            try:
                fn(old, state, code, reason)
            except Exception:
                log.exception("trading-state listener failed")
