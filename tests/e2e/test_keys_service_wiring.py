"""The composition root's trade-key wiring in a running service: arming decrypts, disarm cancels resting orders
through the engine, then drops the key and the venue's trade client; a kill does the same."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import service
from bot.config import load_settings
from bot.domain.credentials import KeyScope
from bot.keys.master import FileSource
from bot.keys.runtime import KeyRuntime
from bot.keys.store import KeyStore
from bot.store import migrate
from bot.store.db import create_engine
from tests.keys_support import new_api_key, new_key_file


@pytest.mark.parametrize("end", ["disarm", "kill"])
async def test_arming_ends_cancel_then_drop(tmp_path: Path, isolated_logging: None, end: str) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    key_file = new_key_file(tmp_path)
    db = create_engine(url)
    await migrate.upgrade(db)
    source = FileSource(key_file)
    with source.load() as master:
        entry = await KeyStore(db, lambda: 0).add(master, "binance", KeyScope.TRADE, new_api_key(), new_api_key())
    await db.dispose()
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        f'[store]\nurl = "{url}"\n[keys]\nmaster_key_file = "{key_file}"\n'
        '[market.synthetic]\ninterval_ms = 1\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n[engine]\nheartbeat_interval_s = 3600\n'
    )
    svc = await service.build(load_settings(cfg, env={}))
    assert svc.keys is not None and svc.arming is not None and svc.safety is not None
    # what build() does for LIVE, on this DRY_RUN service (its simulated venue rests orders like a live one)
    keys = KeyRuntime(svc.keys.store, source, svc.keys.master_key_id, svc.keys.entries, "binance", trade_entry=entry)
    dropped = asyncio.Event()
    at_end: set[str] = set()
    still_live_at_drop: list[set[str]] = []

    async def drop_client() -> None:
        dropped.set()

    holder = service.wire_trade_key(keys, svc.arming, svc.safety, svc.engine, drain_timeout_s=10, drop_client=drop_client)
    # at the moment the key goes, none of the orders resting when the arming ended may still be live
    holder.add_listener(lambda creds: still_live_at_drop.append(at_end & set(svc.engine.oms.live)) if creds is None else None)
    resting = asyncio.Event()
    svc.engine.tick_listeners.append(lambda tick: resting.set() if svc.engine.oms.live else None)
    task = asyncio.create_task(service.run(svc, install_signals=False))
    try:
        async with asyncio.timeout(30):
            await resting.wait()
        await svc.engine.call(lambda: svc.arming.arm(60, "alice"))
        assert holder.held and holder.trade_credentials() is not None

        def finish() -> None:
            at_end.update(svc.engine.oms.live)
            if end == "disarm":
                svc.arming.disarm("operator /disarm")
            else:
                svc.safety.kill("operator /kill")

        await svc.engine.call(finish)
        async with asyncio.timeout(30):
            await holder.wait_released()
            await dropped.wait()
        assert not holder.held and holder.trade_credentials() is None
        assert at_end and still_live_at_drop == [set()], "resting orders are cancelled before the key goes"
        assert svc.engine.counters.ticks > 0
    finally:
        svc.stop_event.set()
        async with asyncio.timeout(30):
            assert await task == 0
