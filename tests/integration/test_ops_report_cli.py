"""``bot report daily --date YYYY-MM-DD --out FILE``: the same summary as the scheduled one, on demand."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.cli import main
from bot.store import migrate
from tests.conftest import DB
from tests.integration.test_ops_summary import png_size, write_fixture, write_market_data


async def test_report_daily_prints_the_summary_and_writes_the_chart(db: DB, tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
        await write_fixture(engine)
    finally:
        await engine.dispose()
    write_market_data(tmp_path / "md")
    cfg = tmp_path / "bot.toml"
    cfg.write_text(db.store_toml() + f'[market]\nrecord_dir = "{tmp_path / "md"}"\n[ops]\ntimezone = "UTC"\ndaily_summary_time = 00:00:00\n')
    out = tmp_path / "chart.png"
    code = await asyncio.to_thread(main, ["report", "daily", "--date", "2026-06-02", "--out", str(out), "--config", str(cfg)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Daily summary 2026-06-02" in captured.out and "net +0.16 USDT" in captured.out and "<b>" not in captured.out
    assert png_size(out.read_bytes()) == (1000, 600)
    assert f"chart: {out}" in captured.err


async def test_report_daily_usage_errors(db: DB, tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(db.store_toml())
    code = await asyncio.to_thread(main, ["report", "daily", "--date", "29.03.2026", "--config", str(cfg)])
    assert code == 2 and "use YYYY-MM-DD" in capsys.readouterr().err
    code = await asyncio.to_thread(main, ["report", "daily", "--date", "2026-03-29", "--out", str(tmp_path / "no" / "x.png"), "--config", str(cfg)])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    # an empty database: the schema check names the command to run
    code = await asyncio.to_thread(main, ["report", "daily", "--date", "2026-03-29", "--config", str(cfg)])
    assert code == 3 and "bot db upgrade --config" in capsys.readouterr().err
    engine = db.engine()
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    code = await asyncio.to_thread(main, ["report", "daily", "--date", "2999-01-01", "--config", str(cfg)])
    assert code == 2 and "has not started yet" in capsys.readouterr().err
