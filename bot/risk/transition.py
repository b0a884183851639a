"""A change of a risk monitor's state (latency, feed, event, breaker, throttle, flatten, barrier).

Monitors are pure: they return transitions and the caller appends each to the audit store as a
``state_transition`` row (kind, scope, from_state, to_state, code, reason) and alerts where it matters.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from bot.domain.errors import ErrorCode


class Transition(NamedTuple):
    kind: str  # latency | feed | event | breaker | throttle | flatten | barrier | daily_loss | baseline
    scope: str  # global | asset:<a> | venue:<v> | strategy:<id>
    from_state: str | None
    to_state: str
    code: ErrorCode | None
    reason: str
    alert: str = ""  # severity to alert with ("" = no alert): info | warning | critical

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scope": self.scope,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "code": self.code.value if self.code else None,
            "reason": self.reason,
        }
