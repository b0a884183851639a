"""Alembic upgrade/downgrade on SQLite and PostgreSQL; the audit tables refuse UPDATE and DELETE."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot.store import migrate
from bot.store.models import AUDIT_TABLES
from tests.conftest import DB


async def _tables(db: DB) -> set[str]:
    engine = db.engine()
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def test_upgrade_then_downgrade(db: DB) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        assert await migrate.database_heads(engine) == migrate.code_heads()
        await migrate.check_schema(engine, "")
        tables = await _tables(db)
        for model in AUDIT_TABLES.values():
            assert model.__tablename__ in tables
        assert {"outbox", "state_kv", "key_entries", "snapshots"} <= tables
        await migrate.downgrade(engine, "base")
        assert await migrate.database_heads(engine) == set()
        assert (await _tables(db)) <= {"alembic_version"}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("table", sorted(m.__tablename__ for m in AUDIT_TABLES.values()))
async def test_audit_tables_refuse_update_and_delete(db: DB, table: str) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        # one valid row through the same code path the service uses
        from bot.store.audit import AuditStore

        store = AuditStore(engine, run_id="r1", mode="DRY_RUN", version_hash="v", config_hash="c", now_ns=lambda: 1_700_000_000_000_000_000)
        kind = next(k for k, m in AUDIT_TABLES.items() if m.__tablename__ == table)
        store.record(kind, _minimal_row(kind))
        await store.flush()
        async with engine.connect() as conn:
            assert (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar() == 1
        for stmt in (f"UPDATE {table} SET mode = 'LIVE'", f"DELETE FROM {table}"):
            with pytest.raises((IntegrityError, DBAPIError), match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(stmt))
        if db.schema:  # PostgreSQL also refuses TRUNCATE
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as conn:
                    await conn.execute(text(f"TRUNCATE {table}"))
        async with engine.connect() as conn:
            row = (await conn.execute(text(f"SELECT mode, ts FROM {table}"))).one()
        assert row[0] == "DRY_RUN"
    finally:
        await engine.dispose()


async def test_schema_check_says_which_command_to_run(db: DB) -> None:
    engine = db.engine()
    try:
        with pytest.raises(migrate.SchemaBehind, match=r"run 'bot db upgrade --config x.toml' first"):
            await migrate.check_schema(engine, " --config x.toml")
    finally:
        await engine.dispose()


def _minimal_row(kind: str) -> dict[str, object]:
    from decimal import Decimal

    rows: dict[str, dict[str, object]] = {
        "run": {"run_kind": "start"},
        "decision": {"decision_id": "d1", "inputs_ref": "x"},
        "intent": {"intent_id": "i1", "kind": "PLACE", "asset": "BTC/USDT", "side": "BUY", "qty": Decimal("0.001"),
                   "order_type": "LIMIT", "limit_price": Decimal("60000.01"), "tif": "GTC", "urgency": "NORMAL"},
        "risk_verdict": {"intent_id": "i1", "stage": "staged", "approved": True, "inputs": {"qty": Decimal("0.001")}},
        "order": {"client_order_id": "c1", "intent_id": "i1", "venue": "sim", "asset": "BTC/USDT", "side": "BUY",
                  "qty": Decimal("0.001"), "order_type": "LIMIT", "limit_price": Decimal("1"), "tif": "GTC", "status": "NEW"},
        "order_event": {"client_order_id": "c1", "event": "submit", "to_status": "PENDING_SUBMIT"},
        "fill": {"fill_id": "f1", "client_order_id": "c1", "intent_id": "i1", "venue": "sim", "asset": "BTC/USDT", "side": "BUY",
                 "qty": Decimal("0.001"), "price": Decimal("60000.01"), "fee": Decimal("0.06"), "fee_currency": "USDT",
                 "fee_quote": Decimal("0.06"), "is_maker": True, "venue_ts_ns": 1_700_000_000_000_000_000},
        "command": {"command": "/status", "outcome": "ok"},
        "state_transition": {"kind": "trading_state", "to_state": "ACTIVE"},
        "reconciliation": {"venue": "sim", "ok": True},
    }
    return dict(rows[kind])


async def test_decimals_and_utc_round_trip(db: DB) -> None:
    from decimal import Decimal

    from bot.store.audit import AuditStore

    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        store = AuditStore(engine, run_id="r1", mode="DRY_RUN", version_hash="v", config_hash="c", now_ns=lambda: 0)
        row = _minimal_row("fill")
        row["price"] = Decimal("60000.123456789012345678")
        row["ts_ns"] = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456Z
        store.record("fill", row)
        await store.flush()
        from sqlalchemy import select

        from bot.store.models import FillRow

        async with engine.connect() as conn:
            got = (await conn.execute(select(FillRow.price, FillRow.ts, FillRow.schema_version))).one()
        assert got.price == Decimal("60000.123456789012345678")
        assert got.ts == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
        assert got.schema_version == 1
    finally:
        await engine.dispose()
