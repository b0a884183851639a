"""The human path out of SAFE through Telegram, against the service as ``bot run`` builds it (FakeTelegram):
/kill -> /resume refused with the checklist -> /limits, /limits confirm -> incident root cause -> /resume."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot import service
from bot.config import load_settings
from bot.risk.safety import TradingState
from bot.store import migrate
from tests.control.test_service import BOUND, command, config
from tests.fakes.telegram_server import FakeTelegram


async def test_kill_then_resume_needs_limits_confirmed_and_an_incident(tmp_path: Path) -> None:
    async with FakeTelegram() as fake:
        cfg = config(tmp_path, fake, "[oms]\nreconcile_interval_s = 1\n")
        db = service.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await migrate.upgrade(db)
        await db.dispose()
        svc = await service.build(load_settings(cfg, env={"BOT_TELEGRAM__TOKEN": fake.token}))
        assert svc.control is not None and svc.safety is not None and svc.ops is not None
        task = asyncio.create_task(service.run(svc, install_signals=False))
        try:
            await fake.wait_for_sent(lambda r: "Service started" in (r.plain_text or ""), timeout=BOUND)
            assert "limits" in [c["command"] for c in fake.my_commands()]
            killed = await command(fake, "/kill")
            assert "KILLED" in (killed.plain_text or "") and svc.safety.state is TradingState.SAFE
            refused = (await command(fake, "/resume")).plain_text or ""
            assert "Still SAFE" in refused and "❌ limits_confirmed" in refused and "❌ incident_recorded" in refused
            shown = (await command(fake, "/limits")).plain_text or ""
            assert "Risk limits" in shown and "qty ≤ 0.01" in shown and "Daily loss < 200" in shown and "❌ not confirmed" in shown
            confirmed = (await command(fake, "/limits confirm")).plain_text or ""
            assert "Limits confirmed" in confirmed and "✅ confirmed by" in confirmed
            await svc.ops.incidents.drain()
            inc = await svc.ops.incidents.open_incident()
            assert inc is not None
            await command(fake, f"/incident {inc.incident_id} root_cause drill")
            await svc.ops.scheduler.run_now("reconcile")  # the scheduled reconciliation, now rather than in a second
            resumed = (await command(fake, "/resume")).plain_text or ""
            assert "Trading state ACTIVE" in resumed and "✅ limits_confirmed" in resumed, resumed
            assert svc.safety.state is TradingState.ACTIVE
            again = (await command(fake, "/limits")).plain_text or ""
            assert "✅ confirmed by" in again
        finally:
            svc.stop_event.set()
            async with asyncio.timeout(BOUND):
                assert await task == 0
