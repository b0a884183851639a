"""Lockout after repeated failures, with escalating duration, persisted across restarts.

A failure is a bad or unknown hash, a malformed or unknown command, a wrong second factor, or an unauthorized
attempt (a user id not on the allowlist, or an allowlisted user writing from a chat that is not). After
``threshold`` failures within ``window_s`` the user is locked out for ``base_s``; every further lockout lasts
four times longer (up to ``max_s``). The escalation level is forgotten after a day without a lockout.
Lockouts are written to ``state_kv`` on every change, so a restart does not lift them.

Time comes from the injected clock (UTC epoch ns), so lockouts end at a wall time that /status can show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.domain.ports import AuditSink, Clock

NS = 1_000_000_000
NAMESPACE = "lockout"
ESCALATION = 4
DECAY_S = 86_400


class KV(Protocol):
    async def get(self, namespace: str, key: str) -> dict[str, Any] | None: ...

    async def all(self, namespace: str) -> dict[str, dict[str, Any]]: ...

    async def put(self, namespace: str, key: str, value: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class LockState:
    failures: list[int] = field(default_factory=list)  # ns of recent failures
    level: int = 0  # lockouts so far (escalation)
    until_ns: int = 0
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"failures": list(self.failures), "level": self.level, "until_ns": self.until_ns, "reason": self.reason}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LockState":
        return cls([int(x) for x in data.get("failures", [])], int(data.get("level", 0)), int(data.get("until_ns", 0)), str(data.get("reason", "")))


class Lockouts:
    def __init__(
        self, kv: KV, clock: Clock, audit: AuditSink, *, threshold: int, window_s: int, base_s: int, max_s: int
    ) -> None:
        self._kv = kv
        self._clock = clock
        self._audit = audit
        self.threshold = threshold
        self.window_ns = window_s * NS
        self.base_s = base_s
        self.max_s = max_s
        self._states: dict[int, LockState] = {}

    async def load(self) -> None:
        for key, value in (await self._kv.all(NAMESPACE)).items():
            try:
                self._states[int(key)] = LockState.from_json(value)
            except (TypeError, ValueError):
                continue  # a damaged row is ignored, not fatal

    def locked_until(self, user_id: int) -> int | None:
        """The end of the user's lockout (UTC ns), or None when not locked out now."""
        st = self._states.get(user_id)
        if st is None or st.until_ns <= self._clock.now_ns():
            return None
        return st.until_ns

    def active(self) -> dict[int, int]:
        now = self._clock.now_ns()
        return {u: st.until_ns for u, st in self._states.items() if st.until_ns > now}

    def duration_s(self, level: int) -> int:
        return min(self.max_s, self.base_s * ESCALATION ** max(0, level - 1))

    async def fail(self, user_id: int, reason: str) -> int | None:
        """Count a failure. Returns the lockout's end (UTC ns) when this failure started one."""
        now = self._clock.now_ns()
        st = self._states.setdefault(user_id, LockState())
        if st.until_ns and now - st.until_ns > DECAY_S * NS:
            st.level = 0  # a quiet day resets the escalation
        st.failures = [t for t in st.failures if now - t < self.window_ns] + [now]
        started = None
        if len(st.failures) >= self.threshold:
            st.level += 1
            seconds = self.duration_s(st.level)
            st.until_ns = now + seconds * NS
            st.failures = []
            st.reason = reason
            started = st.until_ns
            self._audit.record(
                "state_transition",
                {"kind": "lockout", "scope": f"user:{user_id}", "from_state": None, "to_state": "LOCKED",
                 "reason": f"{self.threshold} failures; lockout #{st.level} for {seconds}s; last: {reason}"},
            )
        await self._kv.put(NAMESPACE, str(user_id), st.to_json())
        return started
