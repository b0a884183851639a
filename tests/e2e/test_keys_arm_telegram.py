"""The trade key through the operator's commands: sealed while disarmed, decrypted after /arm, gone after /disarm
and after the arming expires (the operator's clock is injected), with the real control plane on FakeTelegram.

The service runs in DRY_RUN (LIVE refuses to start in this build until the live venue is wired); the trade-key
wiring is the one ``build`` applies in LIVE (``service.wire_trade_key``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot import service
from bot.config import load_settings
from bot.domain.credentials import KeyScope
from bot.engine.clock import ManualClock
from bot.keys.master import FileSource
from bot.keys.runtime import KeyRuntime
from bot.keys.store import KeyStore
from bot.store import migrate
from bot.store.db import create_engine
from tests.fakes.telegram_server import FakeTelegram, SentMessage
from tests.keys_support import digest, new_api_key, new_key_file, reachable

OP = 1001
BOUND = 30.0
NS = 1_000_000_000


async def test_trade_key_follows_arm_disarm_and_expiry(tmp_path: Path, isolated_logging: None) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    key_file = new_key_file(tmp_path)
    db = create_engine(url)
    await migrate.upgrade(db)
    source = FileSource(key_file)
    api, secret = new_api_key(), new_api_key()
    secret_digests = {digest(api), digest(secret)}
    with source.load() as master:
        entry = await KeyStore(db, lambda: 0).add(master, "binance", KeyScope.TRADE, api, secret)
    await db.dispose()
    del api, secret
    operator_clock = ManualClock(1_800_000_000 * NS)
    async with FakeTelegram() as fake:
        cfg = tmp_path / "bot.toml"
        cfg.write_text(
            f'[store]\nurl = "{url}"\n[keys]\nmaster_key_file = "{key_file}"\n'
            '[market.synthetic]\ninterval_ms = 2\nmax_ticks = 0\nstart_ts = "2026-01-01T00:00:00Z"\n'
            f'[engine]\nheartbeat_interval_s = 3600\nstate_dir = "{tmp_path / "state"}"\nkill_file = "{tmp_path / "state" / "KILL"}"\n'
            f'[ops]\nsnapshot_dir = "{tmp_path / "snapshots"}"\n'
            f'[telegram]\nbase_url = "{fake.base_url}"\nbase_file_url = "{fake.base_file_url}"\n'
            f"allowed_chat_ids = [{OP}]\nallowed_user_ids = [{OP}]\ncommands_per_minute = 600\n"
        )
        svc = await service.build(load_settings(cfg, env={"BOT_TELEGRAM__TOKEN": fake.token}), control_clock=operator_clock)
        assert svc.keys is not None and svc.safety is not None and svc.keys.source is not None
        keys = KeyRuntime(svc.keys.store, svc.keys.source, svc.keys.master_key_id, svc.keys.entries, "binance", trade_entry=entry)
        holder = service.wire_trade_key(keys, svc.arming, svc.safety, svc.engine, drain_timeout_s=10)
        changes: list[str] = []
        changed = asyncio.Event()

        def on_key(creds: object) -> None:
            changes.append("loaded" if creds is not None else "dropped")
            changed.set()

        holder.add_listener(on_key)
        task = asyncio.create_task(service.run(svc, install_signals=False))

        async def command(text: str) -> SentMessage:
            since = len(fake.sent)
            fake.send_message(OP, OP, text, date=operator_clock.now_ns() // NS)  # typed "now" on the operator's clock
            [reply] = await fake.wait_for_sent(lambda r: r.chat_id == OP and "#" not in (r.plain_text or "")[-6:], since=since, timeout=BOUND)
            return reply

        async def next_change() -> str:
            async with asyncio.timeout(BOUND):
                await changed.wait()
            changed.clear()
            return changes[-1]

        try:
            await fake.wait_for_sent(lambda r: "Service started" in (r.plain_text or ""), timeout=BOUND)
            await command("/status")
            assert not holder.held and holder.loads == 0, "disarmed: the trade key stays sealed"
            assert reachable(secret_digests, {64}) == []

            reply = await command("/arm 15m")
            assert "armed" in (reply.plain_text or "").lower()
            assert await next_change() == "loaded" and holder.held and holder.loads == 1

            await command("/disarm")
            assert await next_change() == "dropped"
            async with asyncio.timeout(BOUND):
                await holder.wait_released()
            assert not holder.held and holder.trade_credentials() is None
            assert reachable(secret_digests, {64}) == [], "after /disarm no reachable object holds the trade key"

            await command("/arm 1m")
            assert await next_change() == "loaded" and holder.loads == 2
            operator_clock.advance(61 * NS)  # the window runs out; the next engine event notices it
            assert await next_change() == "dropped"
            async with asyncio.timeout(BOUND):
                await holder.wait_released()
            assert not holder.held and not svc.arming.is_armed()
            assert reachable(secret_digests, {64}) == [], "after the expiry no reachable object holds the trade key"
            assert changes == ["loaded", "dropped", "loaded", "dropped"]
        finally:
            svc.stop_event.set()
            async with asyncio.timeout(60):
                assert await task == 0
