"""A strategy from another distribution, found through the ``bot.strategies`` entry-point group: no engine change."""

from __future__ import annotations

import hashlib
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import service
from bot.config import load_settings
from bot.engine.registry import available, load_strategy_class
from bot.engine.strategy import Strategy
from bot.store import migrate
from bot.store.models import DecisionRow, IntentRow, Run
from tests.conftest import DB

PLUGIN = '''
"""A third-party strategy: one bid 1% under the mid on every 500th tick."""
from decimal import Decimal

from bot.domain.intent import Side
from bot.engine.strategy import Strategy


class EchoStrategy(Strategy):
    name = "echo"

    def on_tick(self, ctx):
        t = ctx.tick
        if t.seq % int(self.params.get("every", 500)):
            return []
        price = (t.bid * Decimal("0.99")).quantize(Decimal("0.01"))
        return [ctx.place(t.asset, Side.BUY, Decimal("0.001"), price=price, rationale="echo", tag="echo")]
'''


def install_plugin(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A minimal installed distribution: a package plus a .dist-info with its entry point, on sys.path."""
    module = "botplugin_echo_test"
    (root / module).mkdir()
    (root / module / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "botplugin_echo_test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: botplugin-echo-test\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[bot.strategies]\necho = {module}:EchoStrategy\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return module


async def test_a_strategy_from_an_entry_point_runs_without_touching_engine_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site").mkdir()
    module = install_plugin(tmp_path / "site", monkeypatch)
    assert available()["echo"] == f"{module}:EchoStrategy"
    cls = load_strategy_class("echo")
    assert issubclass(cls, Strategy) and cls.__module__ == module

    db = DB(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", None)
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        db.store_toml()
        + f'[market]\nrecord_dir = "{tmp_path / "md"}"\n'
        + '[market.synthetic]\ninterval_ms = 0\nmax_ticks = 2000\nstart_ts = "2026-01-01T00:00:00Z"\n'
        + '[[strategies]]\nid = "echo1"\nname = "echo"\nparams = { every = 500 }\n'
    )
    engine = db.engine()
    await migrate.upgrade(engine)
    await engine.dispose()
    svc = await service.build(load_settings(cfg, env={}))
    assert await service.run(svc, install_signals=False) == 0

    engine = db.engine()
    try:
        async with engine.connect() as conn:
            decisions = (await conn.execute(select(DecisionRow).where(DecisionRow.strategy_id == "echo1"))).all()
            intents = (await conn.execute(select(IntentRow.rationale, IntentRow.qty).where(IntentRow.strategy_id == "echo1"))).all()
            start = (await conn.execute(select(Run.data).where(Run.run_kind == "start"))).scalar_one()
    finally:
        await engine.dispose()
    assert len(decisions) == 4 and [r.rationale for r in intents] == ["echo"] * 4  # ticks 500, 1000, 1500, 2000
    source_hash = hashlib.sha256((tmp_path / "site" / module / "__init__.py").read_text().encode()).hexdigest()
    assert {d.code_hash for d in decisions} == {source_hash}  # the plug-in's own code hash, with every decision
    assert start["strategies"]["echo1"]["code_hash"] == source_hash and start["strategies"]["echo1"]["name"] == "echo"
    assert svc.engine.counters.intents == 4  # each went on to risk like any strategy's (the verdicts are risk's)
