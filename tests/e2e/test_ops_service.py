"""The service runs its periodic work on the ops scheduler: started with the service, a final snapshot at
shutdown, the scheduler stopped, alerts of a failing job reach the outbox."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot import service
from bot.config import load_settings
from bot.ops.snapshot import load
from bot.store import migrate
from bot.store.models import OutboxRow, SnapshotRow
from tests.conftest import DB

CONFIG = """
[market.synthetic]
interval_ms = 0
max_ticks = 2000
start_ts = "2026-01-01T00:00:00Z"
seed = 11
[engine]
heartbeat_interval_s = 3600
"""


async def test_service_wires_the_scheduler_and_writes_a_final_snapshot(db: DB, tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(db.store_toml() + CONFIG + f'[ops]\nsnapshot_dir = "{tmp_path / "snaps"}"\n')
    engine = db.engine()
    await migrate.upgrade(engine)
    svc = await service.build(load_settings(cfg, env={}))
    ops = svc.ops
    assert ops is not None
    assert set(ops.scheduler.runners) == {"heartbeat", "audit-flush", "snapshot", "daily-summary", "retention"}
    assert await service.run(svc, install_signals=False) == 0
    assert not ops.scheduler.running
    snap = ops.snapshots.latest_valid()
    assert snap is not None and snap.run_id == svc.run_id
    state = load(snap.path).state
    assert set(state) >= {"positions", "open_orders", "pnl", "mode", "counters"}
    assert state["open_orders"] == []  # shutdown cancelled every resting order before the last snapshot
    assert state["counters"]["ticks"] == 2000
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(SnapshotRow.run_id, SnapshotRow.sha256))).all()
            outbox = (await conn.execute(select(OutboxRow.dedup_key))).all()
    finally:
        await engine.dispose()
    assert [(r.run_id, r.sha256) for r in rows] == [(svc.run_id, snap.sha256)]
    assert outbox == []  # nothing failed, nothing to tell
