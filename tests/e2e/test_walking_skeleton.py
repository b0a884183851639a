"""The walking skeleton end to end in DRY_RUN: synthetic data -> quote strategy -> risk -> sim venue -> store."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import service
from bot.cli import main
from bot.config import load_settings
from bot.store import migrate
from bot.store.models import FillRow, IntentRow, OrderEventRow, OrderRow, RiskVerdictRow, Run
from tests.conftest import DB

CONFIG = """
[market.synthetic]
interval_ms = 0
max_ticks = 3000
start_ts = "2026-01-01T00:00:00Z"
seed = 11
[engine]
heartbeat_interval_s = 3600
"""


async def _run_skeleton(db: DB, tmp_path: Path) -> service.Service:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(db.store_toml() + CONFIG + f'[ops]\nsnapshot_dir = "{tmp_path / "snapshots"}"\n')
    engine = db.engine()
    await migrate.upgrade(engine)
    await engine.dispose()
    loaded = load_settings(cfg, env={})
    svc = await service.build(loaded)
    assert await service.run(svc, install_signals=False) == 0
    return svc


async def test_skeleton_records_consistent_ids(db: DB, tmp_path: Path) -> None:
    svc = await _run_skeleton(db, tmp_path)
    engine = db.engine()
    try:
        async with engine.connect() as conn:
            intents = {r.intent_id: r for r in (await conn.execute(select(IntentRow))).all()}
            verdicts = (await conn.execute(select(RiskVerdictRow))).all()
            orders = {r.client_order_id: r for r in (await conn.execute(select(OrderRow))).all()}
            fills = (await conn.execute(select(FillRow))).all()
            events = (await conn.execute(select(OrderEventRow).order_by(OrderEventRow.id))).all()
            runs = (await conn.execute(select(Run.run_kind, Run.run_id))).all()
    finally:
        await engine.dispose()
    assert svc.engine.counters.ticks == 3000
    assert intents and orders and fills, "the skeleton must produce intents, orders and fills"
    assert {k for k, _ in runs} == {"start", "stop"} and {r for _, r in runs} == {svc.run_id}
    # every order comes from a recorded intent that risk approved
    approved = {v.intent_id for v in verdicts if v.approved}
    for order in orders.values():
        assert order.intent_id in intents
        assert order.intent_id in approved
        assert order.run_id == svc.run_id and order.mode == "DRY_RUN"
        assert order.config_hash == svc.loaded.hash and order.version_hash == svc.version
    # every fill belongs to a recorded order and carries its intent
    for fill in fills:
        assert fill.client_order_id in orders
        assert fill.intent_id == orders[fill.client_order_id].intent_id
        assert isinstance(fill.qty, Decimal) and isinstance(fill.price, Decimal)
    # the position in memory equals the signed sum of the recorded fills
    signed = sum((f.qty if f.side == "BUY" else -f.qty for f in fills), Decimal(0))
    assert svc.engine.portfolio.qty("BTC/USDT") == signed
    # graceful stop: no order left open, and every order's last event is terminal
    assert svc.engine.oms.live == {}
    last_status = {}
    for e in events:
        last_status[e.client_order_id] = e.to_status
    assert set(last_status) == set(orders)
    assert set(last_status.values()) <= {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}


async def test_skeleton_is_deterministic_given_seed(tmp_path: Path) -> None:
    """Same seed and start time -> same decisions (the basis of replay parity)."""
    results = []
    for i in range(2):
        d = tmp_path / str(i)
        d.mkdir()
        db = DB(f"sqlite+aiosqlite:///{d / 'bot.db'}", None)
        svc = await _run_skeleton(db, d)
        results.append((svc.engine.counters.intents, svc.engine.counters.fills, svc.engine.portfolio.qty("BTC/USDT")))
    assert results[0] == results[1]


def test_bot_run_refuses_a_database_behind_head(tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "var" / "bot.db"}"\n' + CONFIG)
    assert main(["run", "--config", str(cfg)]) == 3
    err = capsys.readouterr().err
    assert "refusing to start" in err
    assert f"run 'bot db upgrade --config {cfg}' first" in err


def test_bot_db_upgrade_then_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "var" / "bot.db"}"\n' + CONFIG.replace("3000", "200"))
    assert main(["db", "upgrade", "--config", str(cfg)]) == 0
    assert main(["db", "current", "--config", str(cfg)]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["run", "--config", str(cfg)]) == 0


async def test_sigterm_stops_gracefully(tmp_path: Path) -> None:
    """An unbounded paced feed stopped by the stop event (what SIGTERM sets): exit 0, nothing left open."""
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
        '[market.synthetic]\ninterval_ms = 1\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n'
    )
    engine = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None).engine()
    await migrate.upgrade(engine)
    await engine.dispose()
    svc = await service.build(load_settings(cfg, env={}))
    fills_seen = asyncio.Event()
    svc.engine.oms.fill_listeners.append(lambda f, o: fills_seen.set())
    task = asyncio.create_task(service.run(svc, install_signals=False))
    async with asyncio.timeout(60):
        await fills_seen.wait()
    svc.stop_event.set()
    async with asyncio.timeout(30):
        assert await task == 0
    assert svc.engine.oms.live == {}
