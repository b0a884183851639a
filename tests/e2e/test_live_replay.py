"""A LIVE run's recorded market data replays on the simulated venue, with the instruments as traded."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import service
from bot.cli import main
from bot.config import load_settings
from tests.e2e.test_live_end_to_end import BOUND, _config, _keys
from tests.fakes.binance_server import FakeBinance
from tests.fakes.telegram_server import FakeTelegram
from tests.keys_support import new_key_file


async def test_a_live_run_replays_on_the_simulated_venue(
    tmp_path: Path, isolated_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    key_file = new_key_file(tmp_path)
    async with FakeBinance() as ex, FakeTelegram() as tg:
        ex.set_balance("USDT", "10000")
        ex.set_balance("BTC", "0")
        ex.set_book("BTC/USDT", "100.00", "5", "100.01", "5")
        await _keys(url, key_file, ex)
        cfg = _config(tmp_path, url, key_file, ex, tg)
        svc = await service.build(load_settings(cfg, env={"BOT_TELEGRAM__TOKEN": tg.token}))
        task = asyncio.create_task(service.run(svc, install_signals=False))
        try:
            await ex.wait_for_ws_clients(2)
            for i in range(5):  # market data from the venue's stream: the recorder writes it as it is handled
                ex.set_book("BTC/USDT", f"{100 + i}.00", "5", f"{100 + i}.02", "5")
                async with asyncio.timeout(BOUND):
                    while svc.engine.counters.ticks < i + 1:
                        await svc.engine.call(lambda: None)
        finally:
            svc.stop_event.set()
            async with asyncio.timeout(60):
                assert await task == 0
    events = svc.engine.counters.events
    assert events >= 5
    out = tmp_path / "replay"
    assert await asyncio.to_thread(main, ["replay", "--run", svc.run_id, "--config", str(cfg), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"{events} market events replayed of {events} recorded" in text and "identical" in text
