"""The audit store's writer process (REPLAY on SQLite): rows land exactly as through the engine; a failed write
keeps every row and raises; a dead writer stops the writes instead of losing them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.store import migrate
from bot.store.audit import AuditStore
from bot.store.db import create_engine
from bot.store.models import IntentRow, OutboxRow, Run, StateTransitionRow
from bot.store.sqlite_writer import AuditWriteError

T = 1_767_225_600_123_456_789


def store(engine, **kw):  # type: ignore[no-untyped-def]
    return AuditStore(engine, run_id="r1", mode="REPLAY", version_hash="v", config_hash="c", now_ns=lambda: T, writer_process=True, **kw)


async def test_rows_written_by_the_process_read_back_exactly(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await migrate.upgrade(engine)
    audit = store(engine)
    try:
        for i in range(3000):
            audit.record("intent", {"ts_ns": T + i, "strategy_id": "q", "intent_id": f"i{i}", "decision_id": "d", "kind": "PLACE",
                                    "asset": "BTC/USDT", "side": "BUY", "qty": Decimal("0.001"), "order_type": "LIMIT",
                                    "limit_price": Decimal("60000.123456789012345678"), "tif": "GTC", "urgency": "NORMAL"})
        audit.add_outbox({"severity": "INFO", "dedup_key": "k", "text": "hello", "created_at": datetime(2026, 1, 1, tzinfo=UTC)})
        await audit.flush()
        async with engine.connect() as conn:
            rows = (await conn.execute(select(IntentRow.intent_id, IntentRow.limit_price, IntentRow.ts).order_by(IntentRow.id))).all()
            outbox = (await conn.execute(select(OutboxRow.text, OutboxRow.created_at, OutboxRow.status))).all()
        assert len(rows) == 3000 and rows[0].intent_id == "i0" and rows[-1].intent_id == "i2999"
        assert rows[0].limit_price == Decimal("60000.123456789012345678")
        assert rows[0].ts == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
        assert outbox == [("hello", datetime(2026, 1, 1, tzinfo=UTC), "pending")]
        assert audit.pending == 0 and audit.written == 3000
    finally:
        await audit.close()
        await engine.dispose()


async def test_a_failed_write_keeps_every_row(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await migrate.upgrade(engine)
    audit = store(engine)
    try:
        audit.record("state_transition", {"kind": "trading_state", "to_state": None, "reason": "x"})  # NOT NULL to_state
        with pytest.raises(AuditWriteError, match="NOT NULL"):
            await audit.flush()
        assert audit.pending == 1
        async with engine.connect() as conn:
            assert (await conn.execute(select(StateTransitionRow.id))).all() == []
        await audit.close()
        with pytest.raises(AuditWriteError, match="closed"):
            await audit.flush()  # nothing is written behind a closed writer's back, and nothing is dropped
        assert audit.pending == 1
    finally:
        await audit.close()
        await engine.dispose()


async def test_a_dead_writer_is_an_error_not_a_loss(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await migrate.upgrade(engine)
    audit = store(engine)
    try:
        audit.record("run", {"run_kind": "start"})
        await audit.flush()
        writer = audit._writer
        assert writer is not None and writer._proc is not None
        writer._proc.kill()
        writer._proc.wait()
        audit.record("run", {"run_kind": "stop"})
        with pytest.raises(AuditWriteError, match="gone"):
            await audit.flush()
        assert audit.pending == 1
    finally:
        await audit.close()
        await engine.dispose()


def test_only_for_sqlite_files() -> None:
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    with pytest.raises(ValueError, match="SQLite database file"):
        store(engine)


async def test_a_flush_whose_caller_is_cancelled_still_trims_what_it_committed(tmp_path: Path) -> None:
    """Shutdown cancels the periodic flush task. If that happens while the writer commits, the rows must not stay
    buffered, or the final flush writes them a second time (seen: a replay's decisions stored twice)."""
    import asyncio
    import threading

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    await migrate.upgrade(engine)
    audit = store(engine)
    writer = audit._writer
    assert writer is not None
    committed, release = threading.Event(), threading.Event()
    real = writer._roundtrip

    def slow_answer(data: bytes) -> tuple[bool, str | None]:
        answer = real(data)  # the child has committed
        committed.set()
        release.wait(10)  # ... and its answer is still on its way when the caller is cancelled
        return answer

    writer._roundtrip = slow_answer  # type: ignore[method-assign]
    try:
        for i in range(10):
            audit.record("run", {"run_kind": "start", "detail": f"r{i}"})
        periodic = asyncio.create_task(audit.flush())
        await asyncio.get_running_loop().run_in_executor(None, committed.wait, 10)
        periodic.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await periodic
        writer._roundtrip = real  # type: ignore[method-assign]
        audit.record("run", {"run_kind": "stop", "detail": "last"})
        await audit.flush()  # the final flush
        async with engine.connect() as conn:
            details = [r.detail for r in (await conn.execute(select(Run.detail).order_by(Run.id))).all()]
        assert details == [f"r{i}" for i in range(10)] + ["last"]
        assert audit.pending == 0 and audit.written == 11
    finally:
        release.set()
        await audit.close()
        await engine.dispose()
