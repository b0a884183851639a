"""LIVE end to end: the whole service against a local Binance (ccxt, websockets) and a local Bot API server.

The invariant of the product (spec 9.2, 16 "E2E invariants"): nothing reaches a LIVE venue without an unexpired
arming AND a confirmation whose hash matches the stored intent. Here: an intent confirmed before arming sends
nothing; after /approve and /arm, the same confirmation sends exactly one order, with the trade key, under our
client order id; /disarm cancels it at the venue before the trade key is dropped; a graceful stop exits 0.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot import service
from bot.config import load_settings
from bot.domain.credentials import KeyScope
from bot.keys.master import FileSource
from bot.keys.store import KeyStore
from bot.store import migrate
from bot.store.db import create_engine
from tests.fakes.binance_server import FakeBinance
from tests.fakes.telegram_server import FakeTelegram, SentMessage
from tests.keys_support import new_api_key, new_key_file

OP = 4242
BOUND = 30.0
HASH = re.compile(r"/confirm ([0-9a-f]{10,})")


async def _keys(url: str, key_file: Path, fake: FakeBinance) -> tuple[str, str]:
    """A read-only key and a trade key, known to the fake exchange and sealed in the key store."""
    read_api, read_secret, trade_api, trade_secret = (new_api_key() for _ in range(4))
    fake.add_key(read_api, read_secret, can_trade=False)
    fake.add_key(trade_api, trade_secret, can_trade=True)
    db = create_engine(url)
    await migrate.upgrade(db)
    with FileSource(key_file).load() as master:
        store = KeyStore(db, lambda: 0)
        await store.add(master, "binance", KeyScope.READ, read_api, read_secret)
        await store.add(master, "binance", KeyScope.TRADE, trade_api, trade_secret)
    await db.dispose()
    return read_api, trade_api


def _config(tmp_path: Path, url: str, key_file: Path, ex: FakeBinance, tg: FakeTelegram) -> Path:
    cfg = tmp_path / "live.toml"
    cfg.write_text(
        'mode = "LIVE"\n'
        f'[store]\nurl = "{url}"\n'
        f'[keys]\nmaster_key_file = "{key_file}"\n'
        '[market]\nvenue = "binance"\nfeed = "venue"\nassets = ["BTC/USDT"]\n'
        f'record_dir = "{tmp_path / "md"}"\n'
        '[[strategies]]\nid = "manual"\nname = "manual"\n'
        '[risk]\nmax_trade_qty = "1"\nmax_position_qty = "2"\nmax_order_notional = "1000"\n'
        f'[venue]\nrest_url = "{ex.base_url}"\nws_url = "{ex.ws_url}"\nenable_rate_limit = false\nrequest_timeout_ms = 3000\n'
        "trade_poll_interval_s = 600\ntrade_poll_fallback_s = 600\nlisten_key_keepalive_s = 3000\nclock_check_interval_s = 3600\n"
        f'[engine]\nheartbeat_interval_s = 3600\nstate_dir = "{tmp_path / "state"}"\nkill_file = "{tmp_path / "state" / "KILL"}"\n'
        f'[ops]\nsnapshot_dir = "{tmp_path / "snapshots"}"\n'
        f'[telegram]\nbase_url = "{tg.base_url}"\nbase_file_url = "{tg.base_file_url}"\n'
        f"allowed_chat_ids = [{OP}]\nallowed_user_ids = [{OP}]\ncommands_per_minute = 600\n"
    )
    return cfg


async def test_live_needs_arming_and_confirmation(tmp_path: Path, isolated_logging: None) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    key_file = new_key_file(tmp_path)
    async with FakeBinance() as ex, FakeTelegram() as tg:
        ex.set_balance("USDT", "10000")
        ex.set_balance("BTC", "0")
        ex.set_book("BTC/USDT", "100.00", "5", "100.01", "5")
        _read_api, trade_api = await _keys(url, key_file, ex)
        loaded = load_settings(_config(tmp_path, url, key_file, ex, tg), env={"BOT_TELEGRAM__TOKEN": tg.token})
        svc = await service.build(loaded)
        assert svc.live is not None, "LIVE runs on the live venue adapter"
        task = asyncio.create_task(service.run(svc, install_signals=False))

        async def say(text: str, expect: str) -> SentMessage:
            since = len(tg.sent)
            tg.send_message(OP, OP, text)
            [reply] = await tg.wait_for_sent(lambda r: r.chat_id == OP and expect.lower() in (r.plain_text or "").lower(), since=since, timeout=BOUND)
            return reply

        def orders_sent() -> int:
            return len(ex.requests_for("POST", "/api/v3/order"))

        try:
            await tg.wait_for_sent(lambda r: "Service started" in (r.plain_text or ""), timeout=BOUND)
            await ex.wait_for_ws_clients(2)  # market data and the user-data stream
            ex.set_book("BTC/USDT", "100.00", "5", "100.02", "5")  # a fresh tick for the engine's mid
            await svc.engine.call(lambda: None)

            # 1. not armed: an intent is only a preview and its confirmation sends nothing
            preview = await say("/intent manual buy BTC/USDT 0.1 limit 99", "Intent")
            match = HASH.search(preview.plain_text or "")
            assert match is not None, preview.plain_text
            await say(f"/confirm {match.group(1)}", "not armed")
            assert orders_sent() == 0, "nothing may reach the LIVE venue without arming"

            # 2. arming needs the running configuration approved first (spec 15.1)
            await say("/arm 15m", "approve")
            assert not svc.arming.is_armed()
            await say(f"/approve {loaded.hash[:12]}", "approved")
            await say("/arm 15m", "armed")
            assert svc.arming.is_armed()

            # 3. armed + a matching confirmation: exactly one order, with the trade key, under our client id
            staged = await say("/intent manual buy BTC/USDT 0.1 limit 99", "Intent")
            match = HASH.search(staged.plain_text or "")
            assert match is not None, staged.plain_text
            await say("/confirm 0000000000", "")  # a wrong hash sends nothing
            assert orders_sent() == 0
            await say(f"/confirm {match.group(1)}", "")
            await ex.wait_for_request("POST", "/api/v3/order")
            [post] = ex.requests_for("POST", "/api/v3/order")
            assert post.api_key == trade_api, "orders go out with the trade key only"
            coid = post.params["newClientOrderId"]
            assert post.params["price"].rstrip("0").rstrip(".") == "99" and post.params["quantity"].rstrip("0") == "0.1"
            await ex.wait_until(lambda: ex.order(coid) is not None)
            await say(f"/confirm {match.group(1)}", "")  # single use
            assert orders_sent() == 1

            # 4. /disarm: the resting order is cancelled at the venue, then the trade key is dropped
            await say("/disarm", "disarm")
            await ex.wait_until(lambda: ex.open_orders("BTC/USDT") == [])
            holder = svc.trade_key
            assert holder is not None
            async with asyncio.timeout(BOUND):
                await holder.wait_released()
            assert not holder.held
        finally:
            svc.stop_event.set()
            async with asyncio.timeout(60):
                assert await task == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[telegram]\nallowed_chat_ids = [1]\nallowed_user_ids = [1]\n', "needs the Telegram control plane"),
        ("", "set market.feed"),
    ],
)
async def test_live_refuses_to_start_without_its_safeguards(tmp_path: Path, extra: str, message: str) -> None:
    cfg = tmp_path / "live.toml"
    feed = 'feed = "venue"\n' if "telegram" in extra else ""
    cfg.write_text(f'mode = "LIVE"\n[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n[market]\nvenue = "binance"\n{feed}{extra}')
    with pytest.raises(service.StartupError, match=message):
        await service.build(load_settings(cfg, env={}))


async def test_live_stream_loss_enters_safe_and_revokes_arming(tmp_path: Path, isolated_logging: None) -> None:
    """Connectivity loss in LIVE (the venue drops every stream): SAFE, arming revoked, no order can follow."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    key_file = new_key_file(tmp_path)
    async with FakeBinance() as ex, FakeTelegram() as tg:
        ex.set_balance("USDT", "10000")
        ex.set_book("BTC/USDT", "100.00", "5", "100.01", "5")
        await _keys(url, key_file, ex)
        loaded = load_settings(_config(tmp_path, url, key_file, ex, tg), env={"BOT_TELEGRAM__TOKEN": tg.token})
        svc = await service.build(loaded)
        assert svc.safety is not None
        entered_safe = asyncio.Event()
        svc.safety.add_listener(lambda old, new, code, reason: entered_safe.set() if new.value == "SAFE" else None)
        task = asyncio.create_task(service.run(svc, install_signals=False))
        try:
            await tg.wait_for_sent(lambda r: "Service started" in (r.plain_text or ""), timeout=BOUND)
            await ex.wait_for_ws_clients(2)
            await ex.drop_streams()
            async with asyncio.timeout(BOUND):
                await entered_safe.wait()
            assert svc.safety.state.value == "SAFE"
            assert svc.safety.code is not None and svc.safety.code.value == "VENUE_UNAVAILABLE"
            assert not svc.arming.is_armed()
            assert len(ex.requests_for("POST", "/api/v3/order")) == 0
        finally:
            svc.stop_event.set()
            async with asyncio.timeout(60):
                assert await task == 0
