"""REPLAY end to end: DRY_RUN recorded then replayed (parity), determinism, divergence, pinned code, backtests."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import replay, service
from bot.cli import main
from bot.config import load_settings
from bot.store import migrate
from tests.conftest import DB

RUN = """
[market]
record_dir = "{record_dir}"
[market.synthetic]
interval_ms = 0
max_ticks = {ticks}
start_ts = "2026-01-01T00:00:00Z"
seed = 11
[engine]
heartbeat_interval_s = 3600
"""

MODEL_QUOTE = """
[[strategies]]
id = "quote"
name = "quote"
params = { order_qty = "0.001", sigma_min_samples = 3, sigma_window = 5, fee = "0", inventory_cap = "0.01" }
"""


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The command configures logging for a process (root handler on the then-captured stderr): undo it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


async def record_dry_run(db: DB, tmp_path: Path, *, ticks: int = 3000, extra: str = "") -> tuple[Path, str]:
    """Run DRY_RUN on the synthetic feed with the recorder on; return the config file and the run id."""
    cfg = tmp_path / "bot.toml"
    cfg.write_text(db.store_toml() + RUN.format(record_dir=tmp_path / "md", ticks=ticks) + extra)
    engine = db.engine()
    await migrate.upgrade(engine)
    await engine.dispose()
    svc = await service.build(load_settings(cfg, env={}))
    assert await service.run(svc, install_signals=False) == 0
    assert svc.engine.counters.decisions > 0
    return cfg, svc.run_id


async def bot(*argv: str) -> int:
    """``bot ...`` as the operator types it (in a worker thread: the command runs its own event loop)."""
    return await asyncio.to_thread(main, list(argv))


async def test_dry_run_recorded_then_replayed_gives_the_same_intents_in_the_same_order(
    db: DB, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, run_id = await record_dry_run(db, tmp_path)
    out = tmp_path / "replay"
    assert await bot("replay", "--run", run_id, "--config", str(cfg), "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "identical" in text and "3000 market events replayed of 3000 recorded" in text
    expected = (out / "expected.intents.jsonl").read_text().splitlines()
    actual = (out / "intents.jsonl").read_text().splitlines()
    assert len(expected) > 100 and actual == expected  # same intents (ids, prices, sizes) in the same order
    assert (out / "expected.decisions.jsonl").read_bytes() == (out / "decisions.jsonl").read_bytes()
    assert await bot("replay", "--list", "--config", str(cfg)) == 0
    assert run_id in capsys.readouterr().out


async def test_the_same_replay_twice_gives_byte_identical_logs(tmp_path: Path) -> None:
    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    cfg, run_id = await record_dry_run(db, tmp_path, ticks=2000)
    for name in ("a", "b"):
        assert await bot("replay", "--run", run_id, "--config", str(cfg), "--out", str(tmp_path / name)) == 0
    data = sorted((tmp_path / "md" / "sim" / "BTC-USDT").iterdir())
    for name in ("c", "d"):
        args = ["replay", "--data", *map(str, data), "--strategy", "quote", "--param", "spread_bps=3", "--out", str(tmp_path / name)]
        assert await bot(*args) == 0
    for first, second in (("a", "b"), ("c", "d")):
        for log in ("decisions.jsonl", "intents.jsonl"):
            one, two = (tmp_path / first / log).read_bytes(), (tmp_path / second / log).read_bytes()
            assert one and one == two, f"{log} of replays {first} and {second} differ"


async def test_a_changed_parameter_is_reported_at_the_event_it_first_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    cfg, run_id = await record_dry_run(db, tmp_path, ticks=3600, extra=MODEL_QUOTE)
    # Ticks every 100 ms from 00:00:00.1; sigma needs 3 one-minute returns: the tick that opens minute 4 (event
    # 2400) closes the third and the first quotes go out there. With 4 returns they would wait for event 3000.
    code = await bot("replay", "--run", run_id, "--config", str(cfg), "--param", "quote.sigma_min_samples=4", "--out", str(tmp_path / "w"))
    text = capsys.readouterr().out
    assert code == 4, text
    assert "quote.sigma_min_samples: 3 -> 4" in text
    assert "first divergence at event 2400 (decision #1)" in text
    assert "expected:\n  " in text and "actual:\n  " in text
    expected = [json.loads(x) for x in (tmp_path / "w" / "expected.decisions.jsonl").read_text().splitlines()]
    actual = [json.loads(x) for x in (tmp_path / "w" / "decisions.jsonl").read_text().splitlines()]
    assert expected[0]["event"] == 2400 and actual[0]["event"] == 3000


async def test_changed_strategy_code_is_refused_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    cfg, run_id = await record_dry_run(db, tmp_path, ticks=500)
    monkeypatch.setattr(replay, "code_hash", lambda cls: "f" * 64)  # as if the strategy's source had changed
    assert await bot("replay", "--run", run_id, "--config", str(cfg)) == 2
    err = capsys.readouterr().err
    assert "refusing to replay: the strategy code differs" in err and "ffffffffffff now" in err and "--force" in err
    assert await bot("replay", "--run", run_id, "--config", str(cfg), "--force") == 0
    assert "replayed with changed code (--force)" in capsys.readouterr().out


async def test_backtest_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    await record_dry_run(db, tmp_path, ticks=3000)
    [data] = (tmp_path / "md" / "sim" / "BTC-USDT").iterdir()
    report = tmp_path / "report.json"
    args = ["replay", "--data", str(data), "--strategy", "quote", "--param", "spread_bps=3", "--param", "min_requote_ms=500",
            "--json", str(report)]
    assert await bot(*args) == 0
    text = capsys.readouterr().out
    for label in ("pnl gross", "pnl net", "fees", "orders", "fills", "fill ratio", "max drawdown", "sharpe", "slippage", "ticks/s"):
        assert label in text
    r = json.loads(report.read_text())
    assert r["ticks"] == 3000 and r["orders"] > 0 and r["fills"] > 0
    from decimal import Decimal

    assert Decimal(r["pnl_net"]) == Decimal(r["pnl_gross"]) - Decimal(r["fees"])
    assert 0 < r["fill_ratio"] <= 1 and r["max_drawdown_pct"] >= 0 and r["maker_slippage_bps"] < 0  # makers earn the spread
    assert Decimal(r["account_value"]) > 100_000  # 100,000 USDT + 1 BTC at the first mid


async def test_replay_refusals_say_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    cfg, run_id = await record_dry_run(db, tmp_path, ticks=300)
    assert await bot("replay", "--run", "nope", "--config", str(cfg)) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    assert await bot("replay", "--run", run_id, "--config", str(cfg), "--record-dir", str(tmp_path / "elsewhere")) == 2
    assert "no market data files" in capsys.readouterr().err
    assert await bot("replay", "--run", run_id, "--config", str(cfg), "--param", "sigma=1") == 2
    assert "STRATEGY_ID.key=value" in capsys.readouterr().err
    [data] = (tmp_path / "md" / "sim" / "BTC-USDT").iterdir()
    assert await bot("replay", "--data", str(data)) == 2
    assert "--data needs --strategy" in capsys.readouterr().err
    assert await bot("replay", "--data", str(data), "--strategy", "nosuch") == 2
    assert "unknown strategy 'nosuch'" in capsys.readouterr().err
    assert await bot("replay", "--data", str(tmp_path / "missing.jsonl.gz"), "--strategy", "quote") == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert await bot("replay", "--data", str(data), "--strategy", "quote", "--out", str(tmp_path / "full")) == 2
    assert "not empty" in capsys.readouterr().err


async def test_operator_decisions_are_counted_not_compared(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An operator's order comes from outside the recording: the replay says so and compares the rest."""
    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    cfg = tmp_path / "bot.toml"
    cfg.write_text(db.store_toml() + RUN.format(record_dir=tmp_path / "md", ticks=2000))
    engine = db.engine()
    await migrate.upgrade(engine)
    await engine.dispose()
    svc = await service.build(load_settings(cfg, env={}))
    done = []

    async def operator() -> None:  # at the top of an iteration, inside the loop, like a command from Telegram
        if not done and svc.engine.counters.ticks >= 500:
            done.append(await svc.engine.propose("manual", "buy BTC/USDT 0.001 limit 50000"))

    svc.engine.guards.append(operator)
    assert await service.run(svc, install_signals=False) == 0
    assert done and done[0][0].order is not None  # the operator's order rested far below the market
    assert await bot("replay", "--run", svc.run_id, "--config", str(cfg), "--out", str(tmp_path / "r")) == 0
    text = capsys.readouterr().out
    assert "identical" in text and "1 operator decision(s) of the run are not replayed" in text


async def test_dry_run_on_a_recorded_file_lives_in_the_file_s_time(tmp_path: Path) -> None:
    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    await record_dry_run(db, tmp_path, ticks=600)
    [data] = (tmp_path / "md" / "sim" / "BTC-USDT").iterdir()
    cfg = tmp_path / "paper.toml"
    cfg.write_text(db.store_toml() + f'[market]\nfeed = "recorded"\nrecorded_file = "{data}"\nrecord = false\n[engine]\nheartbeat_interval_s = 3600\n')
    svc = await service.build(load_settings(cfg, env={}))
    assert svc.clock.now_ns() == 1_767_225_600_100_000_000  # the file's first event, not the wall clock
    assert await service.run(svc, install_signals=False) == 0
    assert svc.engine.counters.ticks == 600 and svc.clock.now_ns() == 1_767_225_660_000_000_000
