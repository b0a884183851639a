"""State the control plane keeps in the database, on SQLite and PostgreSQL: state_kv, lockouts, the outbox."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.control.approval import ConfigApproval
from bot.control.lockout import Lockouts
from bot.control.notifier import OutboxNotifier
from bot.engine.clock import ManualClock
from bot.store import migrate
from bot.store.audit import AuditStore
from bot.store.kv import KVStore
from bot.store.models import OutboxRow, StateTransitionRow
from bot.store.outbox import OutboxRepo
from tests.conftest import DB

NS = 1_000_000_000
T0 = 1_800_000_000 * NS


async def test_kv_put_get_replace(db: DB) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        kv = KVStore(engine, lambda: T0)
        assert await kv.get("ns", "k") is None
        await kv.put("ns", "k", {"a": 1})
        await kv.put("ns", "k", {"a": 2, "b": [1, 2]})
        await kv.put("ns", "other", {"x": "y"})
        assert await kv.get("ns", "k") == {"a": 2, "b": [1, 2]}
        assert await kv.all("ns") == {"k": {"a": 2, "b": [1, 2]}, "other": {"x": "y"}}
        assert await kv.all("nothing") == {}
    finally:
        await engine.dispose()


class Audit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.append((kind, row))

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None


async def test_lockout_escalates_and_survives_a_restart(db: DB) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        clock, audit = ManualClock(T0), Audit()

        def lockouts() -> Lockouts:
            return Lockouts(KVStore(engine, clock.now_ns), clock, audit, threshold=3, window_s=600, base_s=60, max_s=3600)

        lk = lockouts()
        await lk.load()
        assert await lk.fail(7, "bad hash") is None
        assert await lk.fail(7, "bad hash") is None
        until = await lk.fail(7, "bad hash")
        assert until == T0 + 60 * NS and lk.locked_until(7) == until
        assert lk.locked_until(8) is None
        # restart: a new instance reads the lockout back
        lk = lockouts()
        await lk.load()
        assert lk.locked_until(7) == T0 + 60 * NS
        clock.advance(61 * NS)
        assert lk.locked_until(7) is None
        # second lockout: 4x longer; third: 16x, capped at max_s
        for _ in range(3):
            until2 = await lk.fail(7, "malformed command")
        assert until2 == clock.now_ns() + 240 * NS
        clock.advance(241 * NS)
        for _ in range(3):
            until3 = await lk.fail(7, "malformed command")
        assert until3 == clock.now_ns() + 960 * NS
        clock.advance(961 * NS)
        for _ in range(3):
            until4 = await lk.fail(7, "malformed command")
        assert until4 == clock.now_ns() + 3600 * NS  # 3840 s capped at max_s
        # failures spread beyond the window do not add up
        clock.advance(3601 * NS)
        for _ in range(5):
            assert await lk.fail(9, "bad hash") is None
            clock.advance(301 * NS)
        # a quiet day resets the escalation
        clock.advance(86_401 * NS)
        for _ in range(3):
            until5 = await lk.fail(7, "bad hash")
        assert until5 == clock.now_ns() + 60 * NS
        assert sum(1 for k, r in audit.rows if k == "state_transition" and r["kind"] == "lockout") == 5
    finally:
        await engine.dispose()


async def test_outbox_rows_ride_in_the_audit_transaction(db: DB) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        clock = ManualClock(T0)
        audit = AuditStore(engine, run_id="r", mode="LIVE", version_hash="v", config_hash="c", now_ns=clock.now_ns)
        committed: list[int] = []
        audit.outbox_listeners.append(committed.append)
        notifier = OutboxNotifier(audit, [11, 12], clock, dedup_s=60, info_per_minute=20)
        # an event whose audit row cannot be written: its alert must not exist either
        audit.record("state_transition", {"kind": "trading_state", "from_state": "ACTIVE", "to_state": None, "reason": "x"})
        notifier.alert("CRITICAL", "safe", "SAFE entered")
        with pytest.raises(IntegrityError):
            await audit.flush()
        async with engine.connect() as conn:
            assert (await conn.execute(select(OutboxRow.id))).all() == []
            assert (await conn.execute(select(StateTransitionRow.id))).all() == []
        assert committed == [] and audit.pending == 3  # nothing lost: kept for the next attempt
        # the same event, written correctly: the alert rows appear with it, one per chat, in order
        buffered = audit._buffer["state_transition"]  # rows are buffered as tuples of column values
        column = audit._specs["state_transition"].columns.index("to_state")
        buffered[0] = buffered[0][:column] + ("SAFE",) + buffered[0][column + 1 :]
        await audit.flush()
        assert committed == [2] and audit.pending == 0
        repo = OutboxRepo(engine)
        items = await repo.pending()
        assert [(i.chat_id, i.severity, i.dedup_key) for i in items] == [(11, "CRITICAL", "safe"), (12, "CRITICAL", "safe")]
        assert "SAFE entered" in items[0].text
        await repo.mark_sent(items[0].id, items[0].created_at)
        await repo.mark_dropped(items[1].id, "Forbidden")
        assert await repo.pending_count() == 0
        assert [(s, a) for _, s, a in await repo.statuses()] == [("sent", 1), ("dropped", 1)]
    finally:
        await engine.dispose()


async def test_config_approval_is_persisted_with_a_readable_diff(db: DB) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        clock, audit = ManualClock(T0), Audit()
        kv = KVStore(engine, clock.now_ns)
        first = ConfigApproval(kv, audit, clock, current_hash="a" * 64, current_public={"risk": {"max_trade_qty": "0.01"}, "telegram": {"token": "**********"}})
        await first.load()
        assert not first.approved
        assert "not approved yet" in (first.notice_html() or "")
        assert (await first.approve("b" * 10, "alice"))[0] is False
        assert (await first.approve("a" * 10, "alice (1)"))[0] is True
        assert first.approved and first.notice_html() is None
        # restart with a changed configuration: the diff names the changed key, never a secret's value
        second = ConfigApproval(kv, audit, clock, current_hash="d" * 64,
                                current_public={"risk": {"max_trade_qty": "0.02"}, "telegram": {"token": "**********"}})
        await second.load()
        notice = second.notice_html() or ""
        assert not second.approved
        assert "risk.max_trade_qty</code>: 0.01 → 0.02" in notice and "alice (1)" in notice and "/approve dddddddddddddddd" in notice
        assert "token" not in notice
    finally:
        await engine.dispose()
