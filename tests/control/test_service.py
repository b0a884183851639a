"""The service as ``bot run`` builds it, with Telegram configured (DRY_RUN, synthetic data, FakeTelegram)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot import service
from bot.config import load_settings
from bot.risk.safety import TradingState
from bot.store import migrate
from tests.control.harness import OP
from tests.fakes.telegram_server import FakeTelegram, SentMessage

BOUND = 20.0


def config(tmp_path: Path, fake: FakeTelegram, extra: str = "") -> Path:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
        '[market.synthetic]\ninterval_ms = 2\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n'
        "[engine]\nheartbeat_interval_s = 3600\n"
        f'state_dir = "{tmp_path / "state"}"\nkill_file = "{tmp_path / "state" / "KILL"}"\n'
        f'[ops]\nsnapshot_dir = "{tmp_path / "snapshots"}"\n'
        f'[telegram]\nbase_url = "{fake.base_url}"\nbase_file_url = "{fake.base_file_url}"\n'
        f"allowed_chat_ids = [{OP}]\nallowed_user_ids = [{OP}]\ncommands_per_minute = 600\n" + extra
    )
    return cfg


def is_alert(r: SentMessage) -> bool:
    return re.search(r"\n#\d+$", r.plain_text or "") is not None  # alerts end with their outbox id


async def command(fake: FakeTelegram, text: str) -> SentMessage:
    since = len(fake.sent)
    fake.send_message(OP, OP, text)
    [reply] = await fake.wait_for_sent(lambda r: not is_alert(r), since=since, timeout=BOUND)
    return reply


async def test_bot_run_with_telegram(tmp_path: Path) -> None:
    async with FakeTelegram() as fake:
        cfg = config(tmp_path, fake)
        db = service.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await migrate.upgrade(db)
        await db.dispose()
        svc = await service.build(load_settings(cfg, env={"BOT_TELEGRAM__TOKEN": fake.token}))
        assert svc.control is not None and svc.control.telegram is not None
        task = asyncio.create_task(service.run(svc, install_signals=False))
        try:
            started = await fake.wait_for_sent(lambda r: "Service started" in (r.plain_text or ""), timeout=BOUND)
            notice = await fake.wait_for_sent(lambda r: "Configuration not approved yet" in (r.plain_text or ""), timeout=BOUND)
            assert started[0].chat_id == OP and f"/approve {svc.loaded.hash[:16]}" in (notice[0].plain_text or "")
            assert [c["command"] for c in fake.my_commands()][:3] == ["status", "arm", "disarm"]
            status = await command(fake, "/status")
            text = status.plain_text or ""
            assert text.startswith("DRY_RUN · 🟢 ACTIVE")
            assert "PnL today: " in text and "daily loss cap 200.00 USDT" in text  # from the risk runtime
            assert "Reconciliation: n/a" not in text  # from the OMS reconciler
            staged = await command(fake, "/intent manual buy BTC/USDT 0.001 limit 50000")
            full = (staged.plain_text or "").split("Hash ")[1][:64]
            done = await command(fake, f"/confirm {full[:10]}")
            assert "✅ Executed" in (done.plain_text or "")
            assert any(o.strategy_id == "manual" for o in svc.engine.oms.orders.values())
            killed = await command(fake, "/kill")
            assert "KILLED" in (killed.plain_text or "") and svc.control.safety.state is TradingState.SAFE
            alert = await fake.wait_for_sent(lambda r: "KILL" in (r.plain_text or "") and is_alert(r), timeout=BOUND)
            assert alert[0].chat_id == OP
            # SAFE stops the running quote strategy at the gate: no new order over the next ticks
            orders = svc.engine.counters.orders
            seen = asyncio.Event()
            ticks = {"n": 0}

            def count(_tick: object) -> None:
                ticks["n"] += 1
                if ticks["n"] >= 200:
                    seen.set()

            svc.engine.tick_listeners.append(count)
            async with asyncio.timeout(BOUND):
                await seen.wait()
            assert svc.engine.counters.orders == orders
            assert svc.engine.oms.live == {}
        finally:
            svc.stop_event.set()
            async with asyncio.timeout(BOUND):
                assert await task == 0
        stopping = [r for r in fake.sent if "Service stopping" in (r.plain_text or "")]
        assert len(stopping) == 1  # delivered before the bot stopped, exactly once


async def test_a_token_without_allowlists_refuses_to_start(tmp_path: Path) -> None:
    async with FakeTelegram() as fake:
        cfg = tmp_path / "bot.toml"
        cfg.write_text(f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n[telegram]\nbase_url = "{fake.base_url}"\n')
        db = service.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await migrate.upgrade(db)
        await db.dispose()
        with pytest.raises(service.StartupError, match="allowed_user_ids is empty"):
            await service.build(load_settings(cfg, env={"BOT_TELEGRAM__TOKEN": fake.token}))
