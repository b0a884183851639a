"""`bot run` as a real process: SIGINT/SIGTERM stop intake, cancel resting orders, flush, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_stops_gracefully(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "bot.db"
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite+aiosqlite:///{db}"\n'
        "[engine]\nheartbeat_interval_s = 0.05\n"
        '[market.synthetic]\ninterval_ms = 1\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n'
    )
    assert await asyncio.to_thread(main, ["db", "upgrade", "--config", str(cfg)]) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--config", str(cfg),
        cwd=tmp_path, env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while True:  # wait (by reading its log, not by sleeping) until the service has filled something
                line = (await proc.stderr.readline()).decode()
                assert line, "service exited early:\n" + "".join(lines)
                lines.append(line)
                if "heartbeat" in line and " fills=0 " not in line and "open_orders=0" not in line:
                    break
        proc.send_signal(sig)
        async with asyncio.timeout(60):
            rest = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, rest
    assert "stopping: intake closed" in rest
    with sqlite3.connect(db) as conn:
        last = dict(conn.execute(
            "SELECT client_order_id, to_status FROM order_events e WHERE id = "
            "(SELECT max(id) FROM order_events WHERE client_order_id = e.client_order_id)"
        ).fetchall())
        stops = conn.execute("SELECT count(*) FROM runs WHERE run_kind = 'stop'").fetchone()[0]
    assert last, "orders were placed"
    assert set(last.values()) <= {"FILLED", "CANCELED", "REJECTED", "EXPIRED"}, "no order may be left open"
    assert "CANCELED" in last.values()
    assert stops == 1
