"""Incident reports: drafted on SAFE / kill / loss limit from the SafetyController listener, prefilled from
the audit store, pushed to the outbox, annotated by the operator (append-only), required by resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.clock import ManualClock
from bot.ops.incidents import IncidentDesk, IncidentError, RunInfo
from bot.store import migrate
from bot.store.audit import AuditStore
from bot.store.models import IncidentEntryRow, OutboxRow
from tests.conftest import DB

T0 = int(datetime(2026, 6, 2, 12, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
S = 1_000_000_000

STATE: dict[str, Any] = {
    "positions": {"BTC/USDT": {"qty": Decimal("0.003"), "avg_price": Decimal("60000")}},
    "open_orders": [{"client_order_id": "r-9-0", "asset": "BTC/USDT", "side": "SELL", "qty": Decimal("0.001"), "limit_price": Decimal("60100"), "status": "ACCEPTED"}],
    "pnl": {"realised": Decimal("-12.5"), "unrealised": Decimal("-3"), "fees": Decimal("0.5"), "net": Decimal("-16")},
}


@pytest.fixture
async def engine(db: DB) -> AsyncIterator[AsyncEngine]:
    eng = db.engine()
    await migrate.upgrade(eng)
    audit = AuditStore(eng, run_id="run1", mode="LIVE", version_hash="v", config_hash="c", now_ns=lambda: T0)
    audit.record("fill", {"ts_ns": T0 - 120 * S, "fill_id": "f1", "client_order_id": "r-1-0", "intent_id": "r-1", "venue": "binance", "asset": "BTC/USDT",
                          "side": "BUY", "qty": Decimal("0.003"), "price": Decimal("60000"), "fee": Decimal("0.18"), "fee_currency": "USDT",
                          "fee_quote": Decimal("0.18"), "is_maker": False})
    audit.record("order_event", {"ts_ns": T0 - 60 * S, "client_order_id": "r-2-0", "event": "reject", "to_status": "REJECTED", "code": "INSUFFICIENT_BALANCE", "reason": "-2010"})
    audit.record("reconciliation", {"ts_ns": T0 - 5 * S, "venue": "binance", "asset": "BTC/USDT", "ok": False, "internal_qty": Decimal("0.003"),
                                    "venue_qty": Decimal("0.002"), "code": "POSITION_MISMATCH", "detail": "beyond threshold for 12 s"})
    audit.record("state_transition", {"ts_ns": T0, "kind": "trading_state", "from_state": "ACTIVE", "to_state": "SAFE", "code": "POSITION_MISMATCH", "reason": "reconciliation"})
    audit.record("state_transition", {"ts_ns": T0 - 3600 * S, "kind": "trading_state", "from_state": "SAFE", "to_state": "ACTIVE", "reason": "an hour ago: outside the lookback"})
    await audit.flush()
    yield eng
    await eng.dispose()


def desk(engine: AsyncEngine, clock: ManualClock, **kw: Any) -> IncidentDesk:
    flushed: list[int] = []

    async def flush() -> None:
        flushed.append(1)

    return IncidentDesk(engine, clock=clock, run=RunInfo("run1", "LIVE", "v", "c"), state_provider=lambda: STATE, flush=flush, lookback_s=900, **kw)


async def outbox(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(OutboxRow.severity, OutboxRow.dedup_key, OutboxRow.text).order_by(OutboxRow.id))).all())


async def test_safe_drafts_an_incident_prefilled_from_the_audit_store(engine: AsyncEngine) -> None:
    clock = ManualClock(T0)
    d = desk(engine, clock)
    d.on_state_change("ACTIVE", "SAFE", "POSITION_MISMATCH", "reconciliation mismatch persisted")
    await d.drain()
    inc = await d.open_incident()
    assert inc is not None and inc.incident_id == "20260602-1" and inc.is_open and inc.mode == "LIVE"
    assert inc.triggers[0]["label"] == "SAFE mode" and inc.triggers[0]["code"] == "POSITION_MISMATCH"
    assert inc.draft["positions"]["BTC/USDT"]["qty"] == "0.003"
    assert inc.draft["pnl"]["net"] == "-16"
    timeline = [i["text"] for i in inc.draft["timeline"]]
    assert timeline == [
        "fill BUY 0.003 BTC/USDT @ 60000",
        "order r-2-0 reject: INSUFFICIENT_BALANCE -2010",
        "reconciliation binance BTC/USDT mismatch: internal 0.003 venue 0.002 POSITION_MISMATCH beyond threshold for 12 s",
        "trading_state global: ACTIVE → SAFE POSITION_MISMATCH reconciliation",
    ]
    [(severity, key, body)] = await outbox(engine)
    assert severity == "CRITICAL" and key == "incident:20260602-1:open"
    for heading in ("Incident 20260602-1", "Date:", "Duration:", "Impact:", "Root cause:", "Mitigation:", "Follow-up actions:", "Timeline"):
        assert heading in body
    assert "net -16.00" in body and "1 open order(s)" in body and "BTC/USDT 0.003" in body


async def test_a_kill_while_open_joins_the_same_incident_and_annotations_are_append_only(engine: AsyncEngine) -> None:
    clock = ManualClock(T0)
    d = desk(engine, clock)
    d.on_state_change("ACTIVE", "SAFE", "POSITION_MISMATCH", "mismatch")
    clock.advance(30 * S)
    d.on_state_change("SAFE", "SAFE", "KILL_SWITCH", "operator /kill")
    await d.drain()
    inc = await d.open_incident()
    assert inc is not None and [t["label"] for t in inc.triggers] == ["SAFE mode", "kill switch"]
    assert [k for _, k, _ in await outbox(engine)] == ["incident:20260602-1:open", "incident:20260602-1:trigger:2"]

    ok, why = await d.resume_check()
    assert not ok and "no root cause" in why
    clock.advance(60 * S)
    await d.annotate(inc.incident_id, "root_cause", "venue position feed lagged after a partial fill", by="alice")
    await d.annotate(inc.incident_id, "root_cause", "venue feed lag; our grace window too short", by="bob")
    await d.annotate(inc.incident_id, "follow_up", "raise oms.grace_window_s to 5", by="alice")
    await d.annotate(inc.incident_id, "follow_up", "alert on feed lag > 2 s", by="bob")
    ok, why = await d.resume_check()
    assert ok and "our grace window too short" in why
    inc = await d.get(inc.incident_id)
    assert inc is not None
    assert inc.latest("root_cause") == "venue feed lag; our grace window too short"
    assert [n.author for n in inc.notes["root_cause"]] == ["alice", "bob"]  # history kept
    assert [n.text for n in inc.notes["follow_up"]] == ["raise oms.grace_window_s to 5", "alert on feed lag > 2 s"]
    body = d.render(inc)
    assert "Root cause:</b> venue feed lag; our grace window too short" in body and "• alert on feed lag" in body
    assert "resting orders cancelled" in body  # a kill was among the triggers

    for bad_field, bad_text, by, match in (("cause", "x", "a", "unknown field"), ("note", "   ", "a", "empty"), ("note", "x" * 2001, "a", "at most 2000"), ("note", "x", " ", "who")):
        with pytest.raises(IncidentError, match=match):
            await d.annotate(inc.incident_id, bad_field, bad_text, by=by)
    with pytest.raises(IncidentError, match="no incident"):
        await d.annotate("20990101-1", "note", "x", by="a")
    # the records cannot be edited or removed
    for stmt in ("UPDATE incident_entries SET text = 'rewritten'", "DELETE FROM incident_entries"):
        with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(stmt))


async def test_leaving_safe_closes_the_incident_and_the_next_halt_opens_a_new_one(engine: AsyncEngine) -> None:
    clock = ManualClock(T0)
    d = desk(engine, clock, requires_root_cause=False)
    d.on_state_change("ACTIVE", "HALTED", "RISK_BLOCKED", "max daily loss 200 reached")
    await d.drain()
    first = await d.open_incident()
    assert first is not None and first.triggers[0]["label"] == "loss limit"
    assert (await d.resume_check())[0]
    clock.advance(754 * S)
    d.on_state_change("HALTED", "ACTIVE", None, "resumed by alice")
    await d.drain()
    assert not await d.has_open_incident_report()
    closed = await d.get(first.incident_id)
    assert closed is not None and not closed.is_open and closed.duration(datetime.now(UTC)).total_seconds() == 754
    severity, key, body = (await outbox(engine))[-1]
    assert key == f"incident:{first.incident_id}:close" and "Duration:</b> 12 min 34 s" in body and "(closed" in body
    ok, why = await d.resume_check()
    assert not ok and "no incident report is open" in why
    d.on_state_change("ACTIVE", "SAFE", "WS_STALE", "user stream stale")
    await d.drain()
    second = await d.open_incident()
    assert second is not None and second.incident_id == "20260602-2"
    async with engine.connect() as conn:
        entries = [r[0] for r in (await conn.execute(select(IncidentEntryRow.entry).order_by(IncidentEntryRow.id))).all()]
    assert entries == ["open", "close", "open"]


async def test_manual_incident_when_no_draft_exists(engine: AsyncEngine) -> None:
    d = desk(engine, ManualClock(T0), requires_root_cause=False)
    assert not (await d.resume_check())[0]
    inc = await d.open_manual("bot found in SAFE after a host reboot", by="alice")
    assert inc.triggers[0]["label"] == "opened by alice"
    assert (await d.resume_check())[0]
