"""The trading state machine (not flags): ACTIVE -> REDUCING -> HALTED / SAFE, globally and per strategy.

- ACTIVE: new orders allowed (still through every risk policy).
- REDUCING: only orders that reduce exposure; resting orders are cancelled and the engine flattens gradually
  (the drawdown kill).
- HALTED: no new orders at all, not even reducing ones; resting orders are cancelled, positions are held
  (portfolio loss limit, per-strategy loss kill, repeated circuit-breaker trips).
- SAFE: cancels and hedges (reducing orders) only; resting orders are cancelled (kill file, operator kill,
  stale feeds, connectivity loss, daily loss cap, reconciliation failure). Leaving it takes a human
  (``resume``), and in LIVE a fresh arming after that.

A scope is ``global`` or ``strategy:<id>``; a strategy is bound by the stricter of the two. Automatic
transitions only escalate (ACTIVE < REDUCING < HALTED < SAFE). De-escalation happens only through
``resume(by, scope)``, which runs the recovery checklist first (spec 16.1). Every transition is audited with
its scope, code and reason, and announced to listeners.

The checklist has named slots that other parts fill with ``provide_check(name, fn)`` (positions reconciled:
the OMS; incident recorded: ops); a required slot nobody filled fails, so resume is refused (fail closed).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
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
GLOBAL = "global"

# The recovery checklist of spec 16.1 (names of the slots the composition root requires).
POSITIONS_RECONCILED = "positions_reconciled"
MARKET_DATA_FRESH = "market_data_fresh"
LIMITS_CONFIRMED = "limits_confirmed"
INCIDENT_RECORDED = "incident_recorded"
RECOVERY_CHECKLIST = (POSITIONS_RECONCILED, MARKET_DATA_FRESH, LIMITS_CONFIRMED, INCIDENT_RECORDED)


@dataclass(frozen=True, slots=True)
class Check:
    """One item of the recovery checklist."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class ScopeState:
    state: TradingState
    code: ErrorCode | None
    reason: str
    since_ns: int


Listener = Callable[[TradingState, TradingState, ErrorCode | None, str], None]
ScopeListener = Callable[[str, TradingState, TradingState, ErrorCode | None, str], None]
CheckFn = Callable[[], Check | Awaitable[Check]]  # asynchronous checks (a database lookup) need resume_async


class SafetyController:
    def __init__(self, audit: AuditSink, clock: Clock, required_checks: Iterable[str] = ()) -> None:
        self._audit = audit
        self._clock = clock
        self.state = TradingState.ACTIVE
        self.code: ErrorCode | None = None
        self.reason = "start"
        self.since_ns = clock.now_ns()
        self.last_escalation_ns: int | None = None
        self.scoped: dict[str, ScopeState] = {}  # "strategy:<id>" -> its own state (absent = ACTIVE)
        self._listeners: list[Listener] = []
        self._scope_listeners: list[ScopeListener] = []
        self._checks: list[CheckFn] = []
        self._slots: dict[str, CheckFn | None] = {name: None for name in required_checks}

    # ------------------------------------------------------------------ wiring
    def add_listener(self, fn: Listener) -> None:
        """Hears global transitions only (alerts, arming revocation, trade-key drop, incident drafting)."""
        self._listeners.append(fn)

    def add_scope_listener(self, fn: ScopeListener) -> None:
        """Hears every transition, global and per strategy, with its scope."""
        self._scope_listeners.append(fn)

    def add_check(self, fn: CheckFn) -> None:
        """An extra recovery-checklist item."""
        self._checks.append(fn)

    def provide_check(self, name: str, fn: CheckFn) -> None:
        """Fill a named slot of the checklist (replaces a previous provider of the same name)."""
        self._slots[name] = fn

    # ------------------------------------------------------------------ queries
    def state_of(self, scope: str) -> TradingState:
        if scope == GLOBAL:
            return self.state
        s = self.scoped.get(scope)
        return s.state if s is not None else TradingState.ACTIVE

    def strategy_state(self, strategy_id: str) -> TradingState:
        """The stricter of the global state and the strategy's own."""
        s = self.scoped.get("strategy:" + strategy_id)
        if s is None or SEVERITY[s.state] <= SEVERITY[self.state]:
            return self.state
        return s.state

    def allows_new_orders(self) -> bool:
        return self.state is TradingState.ACTIVE

    def allows_reducing_orders(self) -> bool:
        return self.state in (TradingState.ACTIVE, TradingState.REDUCING, TradingState.SAFE)

    def describe(self, scope: str = GLOBAL) -> tuple[TradingState, ErrorCode | None, str, int]:
        if scope == GLOBAL:
            return self.state, self.code, self.reason, self.since_ns
        s = self.scoped.get(scope)
        if s is None:
            return TradingState.ACTIVE, None, "", self.since_ns
        return s.state, s.code, s.reason, s.since_ns

    # ------------------------------------------------------------------ transitions
    def enter(self, state: TradingState, code: ErrorCode | None, reason: str, scope: str = GLOBAL) -> bool:
        """Escalate ``scope`` to ``state``. A request to de-escalate is refused (use ``resume``). True if applied."""
        current, current_code, _, _ = self.describe(scope)
        if SEVERITY[state] < SEVERITY[current]:
            log.warning("refused automatic de-escalation of %s %s -> %s (%s): only resume() leaves %s", scope, current, state, reason, current)
            return False
        if state is current and code == current_code:
            return False  # repeated trigger: already there for the same cause
        if state is TradingState.ACTIVE:
            return False  # ACTIVE is reached through resume only
        self._transition(scope, state, code, reason, "trading_state")
        return True

    def kill(self, reason: str, scope: str = GLOBAL) -> bool:
        """Manual or automatic kill: SAFE immediately. The caller cancels resting orders."""
        return self.enter(TradingState.SAFE, ErrorCode.KILL_SWITCH, reason, scope)

    def _all_checks(self) -> list[tuple[str, CheckFn | None]]:
        provided = [fn for fn in self._slots.values() if fn is not None]
        extra = [(getattr(fn, "__name__", "check"), fn) for fn in self._checks if fn not in provided]  # no check twice
        return list(self._slots.items()) + extra

    @staticmethod
    def _not_wired(name: str) -> Check:
        return Check(name, False, "not wired: no part of this build provides this check (fail closed)")

    def resume_checks(self) -> list[Check]:
        """Run the checklist synchronously; an asynchronous check fails here (use ``resume_checks_async``)."""
        results: list[Check] = []
        for name, fn in self._all_checks():
            if fn is None:
                results.append(self._not_wired(name))
                continue
            try:
                r = fn()
            except Exception as exc:  # a check that cannot run is a failed check (fail closed)
                results.append(Check(name, False, f"check failed to run: {type(exc).__name__}"))
                continue
            if inspect.isawaitable(r):
                if inspect.iscoroutine(r):
                    r.close()
                results.append(Check(name, False, "asynchronous check: resume through resume_async"))
            else:
                results.append(r)
        return results

    async def resume_checks_async(self) -> list[Check]:
        results: list[Check] = []
        for name, fn in self._all_checks():
            if fn is None:
                results.append(self._not_wired(name))
                continue
            try:
                r = fn()
                if inspect.isawaitable(r):
                    r = await r
                results.append(r)
            except Exception as exc:  # fail closed
                results.append(Check(name, False, f"check failed to run: {type(exc).__name__}"))
        return results

    def resume(self, by: str, scope: str = GLOBAL) -> tuple[bool, list[Check]]:
        """Back to ACTIVE if every check passes. LIVE still needs a fresh arming afterwards (arming is separate)."""
        if self.state_of(scope) is TradingState.ACTIVE:
            return True, []
        return self._decide(by, scope, self.resume_checks())

    async def resume_async(self, by: str, scope: str = GLOBAL) -> tuple[bool, list[Check]]:
        """``resume`` with asynchronous checks awaited (run it inside the engine loop: ``engine.call``)."""
        if self.state_of(scope) is TradingState.ACTIVE:
            return True, []
        return self._decide(by, scope, await self.resume_checks_async())

    def _decide(self, by: str, scope: str, checks: list[Check]) -> tuple[bool, list[Check]]:
        current, code, _, _ = self.describe(scope)
        if current is TradingState.ACTIVE:
            return True, checks
        if not all(c.ok for c in checks):
            missing = ", ".join(f"{c.name} ({c.detail})" if c.detail else c.name for c in checks if not c.ok)
            self._audit.record(
                "state_transition",
                {"kind": "resume_refused", "scope": scope, "from_state": current.value, "to_state": current.value,
                 "code": code.value if code else None, "reason": f"resume by {by} refused: {missing}"[:4000]},
            )
            return False, checks
        self._transition(scope, TradingState.ACTIVE, None, f"resumed by {by}", "trading_state")
        return True, checks

    def _transition(self, scope: str, state: TradingState, code: ErrorCode | None, reason: str, kind: str) -> None:
        now = self._clock.now_ns()
        old, _, _, _ = self.describe(scope)
        if scope == GLOBAL:
            self.state, self.code, self.reason, self.since_ns = state, code, reason, now
        elif state is TradingState.ACTIVE:
            self.scoped.pop(scope, None)
        else:
            self.scoped[scope] = ScopeState(state, code, reason, now)
        if state is not TradingState.ACTIVE:
            self.last_escalation_ns = now
        self._audit.record(
            "state_transition",
            {"kind": kind, "scope": scope, "from_state": old.value, "to_state": state.value,
             "code": code.value if code else None, "reason": reason},
        )
        log.warning("trading state [%s] %s -> %s (%s): %s", scope, old, state, code or "-", reason)
        if scope == GLOBAL:
            for fn in self._listeners:
                try:
                    fn(old, state, code, reason)
                except Exception:
                    log.exception("trading-state listener failed")
        for sfn in self._scope_listeners:
            try:
                sfn(scope, old, state, code, reason)
            except Exception:
                log.exception("trading-state scope listener failed")
