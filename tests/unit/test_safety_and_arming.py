from __future__ import annotations

from typing import Any

import pytest

from bot.control.arming import Arming, ArmingRefused
from bot.domain.errors import ErrorCode
from bot.engine.clock import ManualClock
from bot.risk.safety import Check, SafetyController, TradingState


class Audit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.append((kind, row))

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None


def test_automatic_transitions_only_escalate_and_are_audited() -> None:
    audit, clock = Audit(), ManualClock(1)
    s = SafetyController(audit, clock)
    heard: list[tuple[TradingState, TradingState]] = []
    s.add_listener(lambda old, new, code, reason: heard.append((old, new)))
    assert s.enter(TradingState.REDUCING, ErrorCode.RISK_BLOCKED, "drawdown throttle")
    assert s.enter(TradingState.SAFE, ErrorCode.POSITION_MISMATCH, "reconciliation")
    assert not s.enter(TradingState.ACTIVE, None, "a bug tries to leave SAFE")
    assert s.state is TradingState.SAFE and not s.allows_new_orders()
    assert heard == [(TradingState.ACTIVE, TradingState.REDUCING), (TradingState.REDUCING, TradingState.SAFE)]
    rows = [r for k, r in audit.rows if k == "state_transition"]
    assert [r["to_state"] for r in rows] == ["REDUCING", "SAFE"]
    assert rows[1]["code"] == "POSITION_MISMATCH"


def test_resume_requires_every_check() -> None:
    audit, clock = Audit(), ManualClock(1)
    s = SafetyController(audit, clock)
    reconciled = {"ok": False}
    s.add_check(lambda: Check("positions reconciled", reconciled["ok"]))
    s.add_check(lambda: Check("market data fresh", True))

    def broken() -> Check:
        raise RuntimeError("db down")

    s.kill("operator /kill")
    ok, checks = s.resume("alice")
    assert not ok and s.state is TradingState.SAFE
    assert [c.name for c in checks if not c.ok] == ["positions reconciled"]
    reconciled["ok"] = True
    s.add_check(broken)
    ok, checks = s.resume("alice")
    assert not ok and any("failed to run" in c.detail for c in checks)  # fail closed
    s._checks.pop()
    ok, _ = s.resume("alice")
    assert ok and s.state is TradingState.ACTIVE


def test_arming_expires_and_notifies_once() -> None:
    audit, clock = Audit(), ManualClock(0)
    arming = Arming(clock, audit, max_ttl_s=3600)
    heard: list[tuple[bool, str]] = []
    arming.add_listener(lambda armed, reason: heard.append((armed, reason)))
    with pytest.raises(ArmingRefused, match="exceeds the maximum"):
        arming.arm(7200, "alice")
    arming.arm(900, "alice")
    assert arming.is_armed() and arming.remaining_s() == 900
    clock.advance(899 * 1_000_000_000)
    assert arming.is_armed()
    clock.advance(1_000_000_000)
    assert not arming.is_armed()
    assert not arming.check_expiry()  # already expired: no second notification
    assert heard == [(True, "armed by alice for 900s"), (False, "arming expired")]
    assert not arming.disarm("again")
