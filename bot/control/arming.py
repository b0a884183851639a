"""Arming: LIVE execution needs an unexpired arming window (spec 8.6: one-shot, with TTL, auto-expiring).

An arming is never renewed automatically and is revoked by ``disarm``, SAFE mode or a kill. It does not
survive a restart (a restarted service is disarmed: fail closed). Listeners hear every change, including the
expiry, which ``check_expiry`` detects (the engine loop and a scheduled job call it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.domain.ports import AuditSink, Clock

log = logging.getLogger(__name__)

ArmingListener = Callable[[bool, str], None]
NS = 1_000_000_000


class ArmingRefused(Exception):
    pass


class Arming:
    def __init__(self, clock: Clock, audit: AuditSink, max_ttl_s: int) -> None:
        self._clock = clock
        self._audit = audit
        self.max_ttl_s = max_ttl_s
        self.expires_ns: int | None = None
        self.armed_by: str | None = None
        self.epoch = 0  # increments with every arming: what was staged in one window is not confirmable in another
        self._listeners: list[ArmingListener] = []

    def add_listener(self, fn: ArmingListener) -> None:
        self._listeners.append(fn)

    def arm(self, ttl_s: int, by: str) -> int:
        """Arm for ``ttl_s`` seconds (replaces a current window: never extends it silently). Returns the expiry."""
        if ttl_s <= 0:
            raise ArmingRefused("the arming time must be positive")
        if ttl_s > self.max_ttl_s:
            raise ArmingRefused(f"the arming time {ttl_s}s exceeds the maximum {self.max_ttl_s}s")
        now = self._clock.now_ns()
        self.expires_ns = now + ttl_s * NS
        self.armed_by = by
        self.epoch += 1
        self._record("ARMED", f"armed by {by} for {ttl_s}s")
        self._notify(True, f"armed by {by} for {ttl_s}s")
        return self.expires_ns

    def disarm(self, reason: str) -> bool:
        """Revoke now. Returns False if it was not armed."""
        if self.expires_ns is None:
            return False
        self.expires_ns = None
        self.armed_by = None
        self._record("DISARMED", reason)
        self._notify(False, reason)
        return True

    def check_expiry(self) -> bool:
        """Disarm if the window has passed. Returns True when it just expired."""
        if self.expires_ns is not None and self._clock.now_ns() >= self.expires_ns:
            self.disarm("arming expired")
            return True
        return False

    def is_armed(self) -> bool:
        self.check_expiry()
        return self.expires_ns is not None

    def remaining_s(self) -> int:
        if not self.is_armed() or self.expires_ns is None:
            return 0
        return max(0, (self.expires_ns - self._clock.now_ns()) // NS)

    def _record(self, to_state: str, reason: str) -> None:
        self._audit.record("state_transition", {"kind": "arming", "scope": "global", "from_state": None, "to_state": to_state, "reason": reason})

    def _notify(self, armed: bool, reason: str) -> None:
        for fn in self._listeners:
            try:
                fn(armed, reason)
            except Exception:
                log.exception("arming listener failed")
