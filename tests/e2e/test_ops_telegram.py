"""Ops through the real control plane: the daily summary and its chart, and an incident draft, reach the
chat through the outbox delivery, as the running service does it (FakeTelegram, DRY_RUN)."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from bot import service
from bot.config import load_settings
from bot.engine.clock import ManualClock
from bot.ops.daily import DailySummaryJob
from bot.store import migrate
from tests.fakes.telegram_server import FakeTelegram

OP = 4242
BOUND = 20.0


def _half_a_day_from_now() -> str:
    from zoneinfo import ZoneInfo

    return (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(hours=12)).strftime("%H:%M:00")


async def test_daily_summary_and_incident_are_delivered_to_the_chat(tmp_path: Path) -> None:
    summary_time = _half_a_day_from_now()
    async with FakeTelegram() as fake:
        cfg = tmp_path / "bot.toml"
        cfg.write_text(
            f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
            '[market.synthetic]\ninterval_ms = 2\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n'
            f'[engine]\nheartbeat_interval_s = 3600\nkill_file = "{tmp_path / "state" / "KILL"}"\n'
            f'[ops]\nsnapshot_dir = "{tmp_path / "snapshots"}"\ntimezone = "Europe/Berlin"\n'
            # half a day away from now: the service's own start-up catch-up (a run missed within the grace time)
            # must not send today's summary before the test fires it (this test once failed at 21:02 Berlin)
            f'daily_summary_time = "{summary_time}"\n'
            f'[telegram]\nbase_url = "{fake.base_url}"\nbase_file_url = "{fake.base_file_url}"\n'
            f"allowed_chat_ids = [{OP}]\nallowed_user_ids = [{OP}]\n"
        )
        db = service.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
        await migrate.upgrade(db)
        await db.dispose()
        svc = await service.build(load_settings(cfg, env={"BOT_TELEGRAM__TOKEN": fake.token}))
        ops = svc.ops
        assert ops is not None and svc.safety is not None
        assert "outbox" in ops.scheduler.runners and "expiry" in ops.scheduler.runners  # the control plane's hooks
        task = asyncio.create_task(service.run(svc, install_signals=False))
        try:
            await asyncio.wait_for(svc.engine.call(lambda: None), BOUND)
            # the scheduled daily summary, fired 2 s after 21:00 Berlin time on the day (an injected clock for the
            # firing decision; the summary itself is what the service builds)
            trigger = ops.reports.trigger
            fire = trigger.last_at_or_before(datetime.now(UTC))
            clock = ManualClock(int((fire + timedelta(seconds=2)).timestamp() * 1e9))
            job = DailySummaryJob(db=svc.db, trigger=trigger, clock=clock, build=ops._build_scheduled, alert=ops.alert, grace_s=300, before=svc.audit.flush)
            assert await job.run() == "sent"
            await ops.scheduler.run_now("outbox")  # the scheduled nudge of the delivery
            label = trigger.label_of_fire(fire).isoformat()
            [text] = await fake.wait_for_sent(lambda r: f"Daily summary {label}" in (r.plain_text or "") and r.method == "sendMessage", timeout=BOUND)
            [photo] = await fake.wait_for_sent(lambda r: r.method == "sendPhoto", timeout=BOUND)
            assert text.chat_id == photo.chat_id == OP
            assert photo.photo is not None and photo.photo[:8] == b"\x89PNG\r\n\x1a\n"
            assert struct.unpack(">II", photo.photo[16:24]) == (1000, 600)
            assert (photo.plain_text or "").startswith(f"Daily summary {label}")
            # an incident: the kill drafts it and the draft reaches the chat
            await svc.engine.call(lambda: svc.safety.kill("drill from the ops test"))  # type: ignore[union-attr]
            await ops.incidents.drain()
            await ops.scheduler.run_now("outbox")
            [incident] = await fake.wait_for_sent(lambda r: (r.plain_text or "").startswith("Incident "), timeout=BOUND)
            body = incident.plain_text or ""
            for heading in ("Date:", "Duration:", "Impact:", "Root cause:", "Mitigation:", "Follow-up actions:"):
                assert heading in body
            assert "kill switch" in body
        finally:
            svc.stop_event.set()
            assert await asyncio.wait_for(task, 60) == 0
    assert svc.settings.ops.daily_summary_time == time.fromisoformat(summary_time)
