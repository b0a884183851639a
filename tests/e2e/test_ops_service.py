"""The service runs its periodic work on the ops scheduler: started with the service, a final snapshot at
shutdown, the scheduler stopped, alerts of a failing job reach the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from bot import service
from bot.config import load_settings
from bot.ops.snapshot import load
from bot.store import migrate
from bot.store.models import OutboxRow, SnapshotRow
from tests.conftest import DB

# the daily summary half a day away: the service's start-up catch-up (a run missed within the grace time) would
# otherwise add summary rows to the outbox when a test happens to run just after 21:00 UTC
FAR_SUMMARY = f'daily_summary_time = "{datetime.now(UTC) + timedelta(hours=12):%H:%M:00}"\n'

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
    cfg.write_text(db.store_toml() + CONFIG + f'[ops]\nsnapshot_dir = "{tmp_path / "snaps"}"\n' + FAR_SUMMARY)
    engine = db.engine()
    await migrate.upgrade(engine)
    svc = await service.build(load_settings(cfg, env={}))
    ops = svc.ops
    assert ops is not None
    assert set(ops.scheduler.runners) == {"heartbeat", "audit-flush", "reconcile", "snapshot", "daily-summary", "retention"}
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


async def test_kill_drill_incident_resume_and_arming_expiry_through_the_running_service(db: DB, tmp_path: Path) -> None:
    """Spec 16 disaster drill, the ops side: kill -> incident drafted and pushed -> resume refused until the
    operator enters a root cause -> resume closes the incident; arming expires on the scheduled job; the
    snapshot carries trading state and arming."""
    from bot.risk.safety import TradingState

    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        db.store_toml()
        + CONFIG.replace("max_ticks = 2000", "max_ticks = 0").replace("interval_ms = 0", "interval_ms = 20")
        + f'[ops]\nsnapshot_dir = "{tmp_path / "snaps"}"\n' + FAR_SUMMARY
    )
    engine = db.engine()
    await migrate.upgrade(engine)
    svc = await service.build(load_settings(cfg, env={}))
    safety, ops, arming = svc.safety, svc.ops, svc.arming
    assert safety is not None and ops is not None  # the service wires the incident desk to its SafetyController
    assert "expiry" not in ops.scheduler.runners  # no Telegram: nothing can be armed or staged
    ops.attach_arming(arming)  # what the control plane's hooks do when Telegram is configured
    assert "expiry" in ops.scheduler.runners
    import asyncio

    runner = asyncio.create_task(service.run(svc, install_signals=False))
    try:
        await asyncio.wait_for(svc.engine.call(lambda: None), 10)  # the engine loop is running
        assert ops.scheduler.running
        await svc.engine.call(lambda: safety.kill("drill: operator /kill"))
        await ops.incidents.drain()
        inc = await ops.incidents.open_incident()
        assert inc is not None and inc.triggers[0]["label"] == "kill switch"
        ok, checks = await svc.engine.call(lambda: safety.resume("alice"))
        assert not ok and safety.state is TradingState.SAFE
        [check] = [c for c in checks if c.name == "incident_recorded"]
        assert not check.ok and "no root cause" in check.detail
        await ops.incidents.annotate(inc.incident_id, "root_cause", "drill", by="alice")
        # spec 16.1 "risk limits reset/confirmed": the risk part's checklist item needs the operator's confirmation
        assert [c for c in checks if c.name == "limits_confirmed" and not c.ok]
        await svc.engine.call(lambda: svc.risk.confirm_limits("alice"))
        ok, _ = await svc.engine.call(lambda: safety.resume("alice"))
        assert ok and safety.state is TradingState.ACTIVE
        await ops.incidents.drain()
        assert not await ops.incidents.has_open_incident_report()

        await svc.engine.call(lambda: arming.arm(60, "alice"))
        arming.expires_ns = arming._clock.now_ns()  # the window has run out (the arming runs on the wall clock)
        await ops.scheduler.run_now("expiry")
        assert arming.expires_ns is None
        snap = await ops.snapshot_now()
        assert snap.state["trading_state"]["state"] == "ACTIVE" and snap.state["arming"]["armed"] is False
    finally:
        svc.stop_event.set()
        assert await asyncio.wait_for(runner, 30) == 0
    try:
        async with engine.connect() as conn:
            keys = [r[0] for r in (await conn.execute(select(OutboxRow.dedup_key).order_by(OutboxRow.id))).all()]
    finally:
        await engine.dispose()
    assert keys == [f"incident:{inc.incident_id}:open", f"incident:{inc.incident_id}:close"]


async def test_a_failing_job_alerts_the_operator_through_the_outbox(db: DB, tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(db.store_toml() + CONFIG + f'[ops]\nsnapshot_dir = "{tmp_path / "snaps"}"\n' + FAR_SUMMARY)
    engine = db.engine()
    await migrate.upgrade(engine)
    svc = await service.build(load_settings(cfg, env={}))
    ops = svc.ops
    assert ops is not None and ops.outbox_alert is not None

    async def boom() -> None:
        raise PermissionError("snapshot directory is read-only")

    ops.scheduler.every("boom", "broken job", boom, 60)
    try:
        await ops.scheduler.run_now("boom")
        await ops.outbox_alert.drain()
        # a failed daily summary books one retry on the same scheduler
        ops.scheduler.start()
        ops._retry_daily(3600)
        ops._retry_daily(3600)
        retry = ops.scheduler.next_run_times()["daily-summary-retry"]
        assert retry is not None and 3590 < (retry - datetime.now(UTC)).total_seconds() <= 3600
        await ops.scheduler.stop(1)
        async with engine.connect() as conn:
            rows = (await conn.execute(select(OutboxRow.severity, OutboxRow.dedup_key, OutboxRow.text))).all()
    finally:
        await svc.venue.close()
        await svc.db.dispose()
        await engine.dispose()
    [(severity, key, text)] = rows
    assert severity == "ERROR" and key.startswith("job-failed:boom@")
    assert "Scheduled job 'broken job' failed (1 in a row): PermissionError: snapshot directory is read-only" in text
