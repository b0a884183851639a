"""The key store against the venue (FakeBinance through ccxt): ``bot keys verify`` and the trade-key holder as
the venue adapter's trade-credentials provider."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.control.arming import Arming
from bot.domain.credentials import KeyScope
from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.venue import OrderRequest, VenueError
from bot.engine.clock import ManualClock, WallClock
from bot.keys.holder import TradeKeyHolder
from bot.keys.master import FileSource
from bot.keys.sealing import SealedEntry, credentials_from, open_into, wipe
from bot.keys.store import KeyStore
from bot.risk.safety import SafetyController
from bot.store import migrate
from bot.store.db import create_engine
from bot.venues.binance import build_binance
from tests.fakes.binance_server import FakeBinance
from tests.keys_support import digest, new_api_key, new_key_file, reachable
from tests.unit.test_trade_key_holder import Audit

NS = 1_000_000_000


@pytest.fixture
async def fake() -> AsyncIterator[FakeBinance]:
    async with FakeBinance() as venue:
        venue.set_balance("USDT", "1000")
        venue.set_balance("BTC", "1")
        venue.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        yield venue


def _config(tmp_path: Path, fake: FakeBinance, key_file: Path) -> Path:
    cfg = tmp_path / "bot.toml"
    cfg.write_text(
        f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "bot.db"}"\n'
        f'[keys]\nmaster_key_file = "{key_file}"\n'
        '[market]\nassets = ["BTC/USDT"]\n'
        f'[venue]\nrest_url = "{fake.base_url}"\nws_url = "{fake.ws_url}"\nenable_rate_limit = false\nrequest_timeout_ms = 3000\n'
    )
    return cfg


async def _cli(monkeypatch: pytest.MonkeyPatch, argv: list[str], stdin: str = "") -> int:
    """``bot ...`` in a worker thread (it runs its own event loop) while this loop serves the fake venue."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    async with asyncio.timeout(60):
        return await asyncio.to_thread(main, argv)


async def test_verify_against_the_venue(
    fake: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_env: None, isolated_logging: None
) -> None:
    read_api, read_secret, trade_api, trade_secret = new_api_key(), new_api_key(), new_api_key(), new_api_key()
    fake.add_key(read_api, read_secret, can_trade=False)
    fake.add_key(trade_api, trade_secret, can_trade=True)
    cfg = str(_config(tmp_path, fake, new_key_file(tmp_path)))
    assert await _cli(monkeypatch, ["db", "upgrade", "--config", cfg]) == 0
    assert await _cli(monkeypatch, ["keys", "add", "--config", cfg, "--venue", "binance", "--kind", "read"], f"{read_api}\n{read_secret}\n") == 0
    assert await _cli(monkeypatch, ["keys", "add", "--config", cfg, "--venue", "binance", "--kind", "trade"], f"{trade_api}\n{trade_secret}\n") == 0
    capsys.readouterr()

    assert await _cli(monkeypatch, ["keys", "verify", "--config", cfg]) == 0
    out = capsys.readouterr().out
    read_part, trade_part = out.split("binance trade ")
    assert "OK       reads" in read_part and "OK       permissions: no trading" in read_part
    assert "OK       cannot trade: the venue refused a trade request for lack of permission (-2015)" in read_part
    assert "OK       can trade: the venue answered a trade request with 'unknown order' (-2011)" in trade_part
    assert "OK       permissions: trading" in trade_part and "OK       permissions: no withdrawals" in trade_part
    assert "WARN     ip restriction" in trade_part and out.rstrip().endswith("verify: ok")
    assert fake.orders == [] and fake.requests_for("POST", "order") == []  # nothing was ever placed
    probes = fake.requests_for("DELETE", "order")
    assert [r.api_key for r in probes] == [read_api, trade_api] and all(r.params["origClientOrderId"].startswith("keysverify-") for r in probes)
    assert await _cli(monkeypatch, ["keys", "list", "--config", cfg]) == 0
    assert "never" not in capsys.readouterr().out  # both keys were used: last-used recorded

    # keys in the wrong slots: a trade-capable key as the read key, a read-only key as the trade key
    assert await _cli(monkeypatch, ["keys", "add", "--config", cfg, "--venue", "binance", "--kind", "read", "--replace"], f"{trade_api}\n{trade_secret}\n") == 0
    assert await _cli(monkeypatch, ["keys", "add", "--config", cfg, "--venue", "binance", "--kind", "trade", "--replace"], f"{read_api}\n{read_secret}\n") == 0
    capsys.readouterr()
    assert await _cli(monkeypatch, ["keys", "verify", "--config", cfg]) == 1
    out = capsys.readouterr().out
    assert "FAIL     cannot trade: this READ key CAN trade" in out and "FAIL     permissions: no trading" in out
    assert "FAIL     can trade: this TRADE key cannot trade" in out and out.rstrip().endswith("verify: FAILED")
    assert fake.orders == []
    captured = out + capsys.readouterr().err
    assert all(v not in captured for v in (read_api, read_secret, trade_api, trade_secret))


async def test_unknown_venue_entries_are_reported_not_checked(
    fake: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_env: None, isolated_logging: None
) -> None:
    cfg = str(_config(tmp_path, fake, new_key_file(tmp_path)))
    assert await _cli(monkeypatch, ["db", "upgrade", "--config", cfg]) == 0
    assert await _cli(monkeypatch, ["keys", "add", "--config", cfg, "--venue", "kraken", "--kind", "read"], f"{new_api_key()}\n{new_api_key()}\n") == 0
    capsys.readouterr()
    assert await _cli(monkeypatch, ["keys", "verify", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "UNKNOWN  venue: not checked" in out and fake.requests == []


# ---------------------------------------------------------------------------------------------- holder as provider
ORDER = OrderRequest("k-1", "BTC/USDT", Side.BUY, Decimal("0.1"), OrderType.LIMIT, Decimal("99"), TimeInForce.GTC)


async def test_the_trade_key_reaches_the_venue_only_while_armed(fake: FakeBinance, tmp_path: Path, isolated_logging: None) -> None:
    """Arming -> TradeKeyHolder -> the venue adapter's trade client, against FakeBinance: orders go out with the
    trade key only while armed; disarm cancels the resting order, then the key and the client are gone."""
    read_api, read_secret, trade_api, trade_secret = new_api_key(), new_api_key(), new_api_key(), new_api_key()
    fake.add_key(read_api, read_secret, can_trade=False)
    fake.add_key(trade_api, trade_secret, can_trade=True)
    secret_digests = {digest(trade_api), digest(trade_secret)}
    db = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await migrate.upgrade(db)
    store = KeyStore(db, WallClock().now_ns)
    source = FileSource(new_key_file(tmp_path))
    with source.load() as master:
        read_entry = await store.add(master, "binance", KeyScope.READ, read_api, read_secret)
        trade_entry: SealedEntry = await store.add(master, "binance", KeyScope.TRADE, trade_api, trade_secret)
        buf = open_into(master, read_entry)
        read = credentials_from(buf, read_entry)
        wipe(buf)
    await db.dispose()
    del trade_api, trade_secret

    clock = ManualClock(1_000 * NS)
    arming = Arming(clock, Audit(), max_ttl_s=600)
    safety = SafetyController(Audit(), clock)
    from tests.venues.helpers import venue_settings

    holder_box: dict[str, Any] = {}
    live = build_binance(venue_settings(fake), read_credentials=read, trade_credentials=lambda: holder_box["h"].trade_credentials(), clock=WallClock())
    live.venue.set_report_sink(lambda report: None)

    async def drain() -> None:
        for order in fake.open_orders():
            await live.venue.cancel_order("BTC/USDT", order.client_order_id)

    holder = TradeKeyHolder(trade_entry, source, is_armed=arming.is_armed, drain=drain)
    holder_box["h"] = holder
    dropped = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    def on_key(creds: object) -> None:  # what the composition root wires: drop the venue's client with the key
        if creds is None:
            task = asyncio.get_running_loop().create_task(live.venue.drop_trade_client())
            tasks.add(task)
            task.add_done_callback(lambda t: (tasks.discard(t), dropped.set()))

    holder.add_listener(on_key)
    arming.add_listener(holder.on_arming)
    safety.add_listener(holder.on_trading_state)
    await live.start()
    try:
        with pytest.raises(VenueError) as raised:
            await live.venue.place_order(ORDER)
        assert raised.value.code is ErrorCode.NOT_ARMED and holder.loads == 0

        arming.arm(60, "alice")
        await live.venue.place_order(ORDER)
        assert [o.client_order_id for o in fake.open_orders()] == ["k-1"] and live.venue.has_trade_client
        assert fake.requests_for("POST", "order")[0].api_key != read_api

        arming.disarm("operator /disarm")
        async with asyncio.timeout(10):
            await holder.wait_released()
            await dropped.wait()
        assert fake.open_orders() == [], "the resting order was cancelled before the key was dropped"
        assert not holder.held and not live.venue.has_trade_client
        held = reachable(secret_digests, {64}, ignore_modules=("tests.fakes",))  # the fake venue knows its own keys
        assert held == [], f"no reachable object of ours (holder, venue adapter, ccxt) may keep the trade key: {held}"
        with pytest.raises(VenueError) as raised:
            await live.venue.place_order(OrderRequest("k-2", "BTC/USDT", Side.BUY, Decimal("0.1"), OrderType.LIMIT, Decimal("99"), TimeInForce.GTC))
        assert raised.value.code is ErrorCode.NOT_ARMED

        # expiry: armed again, time runs out, the next venue call finds no key
        dropped.clear()
        arming.arm(30, "alice")
        await live.venue.place_order(OrderRequest("k-3", "BTC/USDT", Side.BUY, Decimal("0.1"), OrderType.LIMIT, Decimal("98"), TimeInForce.GTC))
        clock.advance(31 * NS)
        assert arming.check_expiry()
        async with asyncio.timeout(10):
            await holder.wait_released()
            await dropped.wait()
        assert fake.open_orders() == [] and not holder.held and not live.venue.has_trade_client
        assert holder.loads == 2
    finally:
        await live.stop("test end")
