"""The daily summary against a hand-worked fixture day, and its chart delivered as a photo to the test
Bot API server.

Fixture (report day 2026-06-02, time zone UTC, summary time 00:00 -> window 06-02 00:00 to 06-03 00:00):
  run A (DRY_RUN) bought 0.002 @ 59,900 the evening before (position 0.002 at the start, mid 60,000).
  F1 10:00:00 BUY  0.001  @ 60,010 fee  0.06   order o1 LIMIT 60,010 placed 09:59:59 (arrival mid 60,005)
  F2 10:30:00 SELL 0.002  @ 60,100 fee -0.012  order o2 LIMIT 60,100 placed 10:20:00 (arrival mid 60,090)
  F3 14:00:00 SELL 0.0005 @ 59,950 fee  0.06   order o3 MARKET      placed 14:00:00 (arrival mid 59,960)
  last mid of the day 60,200 (23:00).
By hand:
  cash  = -60.01 + 120.2 + 29.975 = 90.165;  end position 0.0005 -> value 30.1;  start value 0.002*60,000 = 120
  gross = 30.1 - 120 + 90.165 = 0.265;  fees = 0.06 - 0.012 + 0.06 = 0.108;  net = 0.157
  notional = 210.185
  slippage: F3 SELL vs 59,960: +10/59,960 = +1.6678 bps (cost 0.005); F1 BUY vs 60,005: +5/60,005 = +0.8333 bps
            (cost 0.005); F2 sold 10 above its arrival mid: favourable, not an outlier
  markouts BUY  (F1 @ 60,010; mids 60,012 / 60,004 / 60,020): +0.3333, -0.9998, +1.6664 bps
           SELL (F2 @ 60,100; 60,090 / 60,110 / 60,100 -> +1.6639, -1.6639, 0;
                 F3 @ 59,950; 59,940 / 59,960 / 59,950 -> +1.6681, -1.6681, 0): means +1.6660, -1.6660, 0
"""

from __future__ import annotations

import gzip
import json
import struct
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Bot
from telegram.constants import ParseMode

from bot.engine.clock import ManualClock
from bot.ops.daily import DailySummaryJob
from bot.ops.marketdata import RecordedPrices
from bot.ops.summary import build_daily_summary
from bot.ops.triggers import DailyAt
from bot.store import migrate
from bot.store.audit import AuditStore
from bot.store.models import OutboxRow
from tests.conftest import DB
from tests.fakes.telegram_server import FakeTelegram

DAY = date(2026, 6, 2)
D = Decimal


def ts(hh: int, mm: int = 0, ss: int = 0, day: int = 2) -> int:
    return int(datetime(2026, 6, day, hh, mm, ss, tzinfo=UTC).timestamp()) * 1_000_000_000


MIDS = [
    (ts(23, 59, 0, day=1), "60000"),
    (ts(9, 59, 59), "60005"),
    (ts(10, 0, 0), "60008"),
    (ts(10, 0, 1), "60012"),
    (ts(10, 0, 5), "60004"),
    (ts(10, 0, 30), "60020"),
    (ts(10, 20, 0), "60090"),
    (ts(10, 30, 0), "60095"),
    (ts(10, 30, 1), "60090"),
    (ts(10, 30, 5), "60110"),
    (ts(10, 30, 30), "60100"),
    (ts(14, 0, 0), "59960"),
    (ts(14, 0, 1), "59940"),
    (ts(14, 0, 5), "59960"),
    (ts(14, 0, 30), "59950"),
    (ts(23, 0, 0), "60200"),
]


def write_market_data(record_dir: Path) -> None:
    """The recorder's format (docs/interfaces.md): one gzip JSON-lines file per venue, symbol and UTC day."""
    folder = record_dir / "sim" / "BTC-USDT"
    folder.mkdir(parents=True)
    by_day: dict[str, list[str]] = {}
    for seq, (t, mid) in enumerate(MIDS):
        day = datetime.fromtimestamp(t / 1e9, UTC).date().isoformat()
        line = {"asset": "BTC/USDT", "bid": str(D(mid) - D("0.5")), "ask": str(D(mid) + D("0.5")), "ts_local_ns": t, "ts_venue_ns": t, "seq": seq, "venue": "sim"}
        by_day.setdefault(day, []).append(json.dumps(line))
    for day, lines in by_day.items():
        with gzip.open(folder / f"{day}.jsonl.gz", "wt") as fh:
            fh.write("\n".join(lines) + "\nnot json at all\n")


def store(engine: AsyncEngine, run_id: str, mode: str = "DRY_RUN") -> AuditStore:
    return AuditStore(engine, run_id=run_id, mode=mode, version_hash="v", config_hash="c", now_ns=lambda: 0)


def fill(fid: str, t: int, coid: str, side: str, qty: str, price: str, fee: str, maker: bool) -> dict[str, Any]:
    return {
        "ts_ns": t, "strategy_id": "quote", "fill_id": fid, "client_order_id": coid, "intent_id": coid[:-2], "venue": "sim",
        "asset": "BTC/USDT", "side": side, "qty": D(qty), "price": D(price), "fee": D(fee), "fee_currency": "USDT",
        "fee_quote": D(fee), "is_maker": maker,
    }


def order(t: int, coid: str, side: str, qty: str, otype: str, limit: str | None) -> dict[str, Any]:
    return {
        "ts_ns": t, "strategy_id": "quote", "client_order_id": coid, "intent_id": coid[:-2], "venue": "sim", "asset": "BTC/USDT",
        "side": side, "qty": D(qty), "order_type": otype, "limit_price": D(limit) if limit else None, "tif": "GTC", "status": "NEW",
    }


def intent(t: int, iid: str) -> dict[str, Any]:
    return {"ts_ns": t, "strategy_id": "quote", "intent_id": iid, "kind": "PLACE", "asset": "BTC/USDT", "side": "BUY", "qty": D("0.001"),
            "order_type": "LIMIT", "limit_price": D("60000"), "tif": "GTC", "urgency": "NORMAL"}


def verdict(t: int, iid: str, approved: bool, code: str | None, reason: str = "") -> dict[str, Any]:
    return {"ts_ns": t, "strategy_id": "quote", "intent_id": iid, "stage": "staged", "approved": approved, "code": code, "reason": reason}


async def write_fixture(engine: AsyncEngine) -> None:
    a = store(engine, "runA")
    a.record("run", {"ts_ns": ts(22, 0, 0, day=1), "run_kind": "start"})
    a.record("order", order(ts(22, 59, 0, day=1), "A-0-0", "BUY", "0.002", "LIMIT", "59900"))
    a.record("fill", fill("f0", ts(23, 0, 0, day=1), "A-0-0", "BUY", "0.002", "59900", "0.12", False))
    for i, t in enumerate([ts(9, 59, 59), ts(10, 20), ts(14), ts(15), ts(16)]):
        a.record("intent", intent(t, f"A-{i + 1}"))
    a.record("intent", intent(ts(23, 0, 0, day=1), "A-0"))  # the day before: not counted
    a.record("order", order(ts(9, 59, 59), "A-1-0", "BUY", "0.001", "LIMIT", "60010"))
    a.record("order", order(ts(10, 20), "A-2-0", "SELL", "0.002", "LIMIT", "60100"))
    a.record("order", order(ts(14), "A-3-0", "SELL", "0.0005", "MARKET", None))
    a.record("fill", fill("f1", ts(10), "A-1-0", "BUY", "0.001", "60010", "0.06", False))
    a.record("fill", fill("f2", ts(10, 30), "A-2-0", "SELL", "0.002", "60100", "-0.012", True))
    a.record("fill", fill("f3", ts(14), "A-3-0", "SELL", "0.0005", "59950", "0.06", False))
    a.record("risk_verdict", verdict(ts(9, 59, 59), "A-1", True, None))
    a.record("risk_verdict", verdict(ts(15), "A-4", False, "RISK_BLOCKED", "max_trade_qty 0.02 > 0.01"))
    a.record("risk_verdict", verdict(ts(16), "A-5", False, "RISK_BLOCKED", "max_trade_qty 0.02 > 0.01"))
    a.record("risk_verdict", verdict(ts(17), "A-6", False, "MARKET_DATA_STALE", "no tick for 12 s"))
    a.record("risk_verdict", verdict(ts(23, 30, 0, day=1), "A-0", False, "RISK_BLOCKED", "the day before"))
    a.record("state_transition", {"ts_ns": ts(17, 0, 1), "kind": "trading_state", "from_state": "ACTIVE", "to_state": "SAFE", "code": "MARKET_DATA_STALE", "reason": "all feeds stale"})
    await a.flush()
    # a simulated run that ended before the day: its leftover position is not ours any more
    b = store(engine, "runB")
    b.record("run", {"ts_ns": ts(1, 0, 0, day=1), "run_kind": "start"})
    b.record("fill", fill("g1", ts(2, 0, 0, day=1), "B-1-0", "BUY", "1", "50000", "5", False))
    b.record("run", {"ts_ns": ts(3, 0, 0, day=1), "run_kind": "stop"})
    await b.flush()


@pytest.fixture
async def engine(db: DB) -> AsyncIterator[AsyncEngine]:
    eng = db.engine()
    await migrate.upgrade(eng)
    await write_fixture(eng)
    yield eng
    await eng.dispose()


def q(x: Decimal | None, places: str = "0.0001") -> Decimal:
    assert x is not None
    return x.quantize(Decimal(places))


async def test_summary_numbers_match_the_hand_worked_day(engine: AsyncEngine, tmp_path: Path) -> None:
    write_market_data(tmp_path / "md")
    s = await build_daily_summary(engine, DAY, UTC, at=time(0, 0), prices=RecordedPrices(tmp_path / "md"), configured_mode="DRY_RUN")
    m = s.metrics
    assert (s.start, s.end) == (datetime(2026, 6, 2, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC))
    assert (m.fills, m.buys, m.sells, m.maker_fills) == (3, 1, 2, 1)
    assert m.notional == D("210.185")
    assert m.position_start == {"BTC/USDT": D("0.002")} and m.position_end == {"BTC/USDT": D("0.0005")}
    assert m.marks_start["BTC/USDT"] == D("60000") and m.marks_end["BTC/USDT"] == D("60200")
    assert m.gross == D("0.265")
    assert (m.fees_paid, m.rebates, m.fees) == (D("0.12"), D("-0.012"), D("0.108"))
    assert m.net == D("0.157")
    assert m.fee_verdict == "profitable before and after fees"
    assert q(m.gross_bps) == D("12.6079") and q(m.fee_bps) == D("5.1383")
    # slippage outliers, worst first
    assert [(o.fill_id, o.reference_kind, o.reference) for o in m.outliers] == [("f3", "arrival mid", D("59960")), ("f1", "arrival mid", D("60005"))]
    assert [q(o.bps) for o in m.outliers] == [D("1.6678"), D("0.8333")]
    assert [o.cost for o in m.outliers] == [D("0.0050"), D("0.005")]
    assert m.slippage_measured == 3
    # markouts by side
    got = {(mk.side, mk.horizon_s): (mk.n, q(mk.mean_bps)) for mk in m.markouts}
    assert got == {
        (1, 1): (1, D("0.3333")), (1, 5): (1, D("-0.9998")), (1, 30): (1, D("1.6664")),
        (-1, 1): (2, D("1.6660")), (-1, 5): (2, D("-1.6660")), (-1, 30): (2, D("0.0000")),
    }
    # the regime buckets attribute the whole day's net PnL
    assert len(m.buckets) == 24
    assert sum((pnl for _, pnl, _ in m.regimes.values()), D(0)) == m.net
    assert sum(f for _, _, f in m.regimes.values()) == 3
    # equity curve ends at the net PnL, positions follow the fills
    assert m.curve[-1][1] == m.net and m.curve[0][2] == {"BTC/USDT": D("0.002")}
    # the message
    text = s.text_plain
    assert "Daily summary 2026-06-02" in text and "Mode: DRY_RUN" in text
    assert "Intents 5 · orders 3 · fills 3 (buy 1, sell 2, maker 1)" in text
    assert "gross +0.27 · fees 0.11 · net +0.16 USDT" in text
    assert "Fee check: profitable before and after fees" in text
    assert "1. SELL 0.0005 BTC/USDT @ 59,950.00 vs arrival mid 59,960.00: +1.7 bps" in text
    assert "Risk blocks 3: RISK_BLOCKED ×2, MARKET_DATA_STALE ×1" in text
    assert "→ SAFE MARKET_DATA_STALE all feeds stale" in text
    assert "BTC/USDT BUY: +1s +0.3 (1) · +5s -1.0 (1) · +30s +1.7 (1)" in text
    assert "Prices: BTC/USDT recorded market data" in text
    assert len(s.text_html) <= 4096


async def test_without_market_data_prices_come_from_fills(engine: AsyncEngine, tmp_path: Path) -> None:
    s = await build_daily_summary(engine, DAY, UTC, at=time(0, 0), prices=RecordedPrices(tmp_path / "none"))
    m = s.metrics
    # marks: last fill before the day (59,900) and the last fill of the day (59,950)
    assert m.marks_start["BTC/USDT"] == D("59900") and m.marks_end["BTC/USDT"] == D("59950")
    # gross = 0.0005*59,950 - 0.002*59,900 + 90.165 = 29.975 - 119.8 + 90.165
    assert m.gross == D("0.340")
    assert m.net == D("0.232")
    # slippage against limit prices: both limit fills at their limit (0 bps), the market order has no reference
    assert m.slippage_measured == 2 and m.outliers == []
    assert "our fill prices (approximate)" in s.text_plain


async def test_partial_day_and_a_day_not_started(engine: AsyncEngine) -> None:
    s = await build_daily_summary(engine, DAY, UTC, at=time(0, 0), now=datetime(2026, 6, 2, 12, tzinfo=UTC))
    assert s.metrics.fills == 2 and "so far: until 12:00:00" in s.text_plain
    with pytest.raises(ValueError, match="has not started yet"):
        await build_daily_summary(engine, date(2026, 6, 5), UTC, at=time(0, 0), now=datetime(2026, 6, 2, 12, tzinfo=UTC))


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_scheduled_summary_is_a_message_and_a_png_chart_sent_as_a_photo(engine: AsyncEngine, tmp_path: Path) -> None:
    write_market_data(tmp_path / "md")
    prices = RecordedPrices(tmp_path / "md")
    trigger = DailyAt(time(0, 0), UTC)
    clock = ManualClock(ts(0, 0, 1, day=3))  # one second after the summary time

    async def build(day: date) -> Any:
        return await build_daily_summary(engine, day, UTC, at=time(0, 0), prices=prices)

    job = DailySummaryJob(db=engine, trigger=trigger, clock=clock, build=build, alert=lambda *a: None, grace_s=300)
    assert await job.run() == "sent"
    async with engine.connect() as conn:
        rows = (await conn.execute(select(OutboxRow.text, OutboxRow.photo, OutboxRow.status).order_by(OutboxRow.id))).all()
    assert [r.status for r in rows] == ["pending", "pending"]
    text_row, chart_row = rows
    assert text_row.photo is None and "Daily summary 2026-06-02" in text_row.text
    png = chart_row.photo
    assert png is not None and 10_000 < len(png) < 500_000
    assert png_size(png) == (1000, 600)
    # delivery: a minimal PTB Bot call per outbox row (the control plane's Notifier does this in the service)
    async with FakeTelegram() as fake:
        async with Bot(fake.token, base_url=fake.base_url, base_file_url=fake.base_file_url) as bot:
            await bot.send_message(chat_id=1001, text=text_row.text, parse_mode=ParseMode.HTML)
            await bot.send_photo(chat_id=1001, photo=png, caption=chart_row.text, parse_mode=ParseMode.HTML)
        message, photo = await fake.wait_for_sent(count=2)
    assert message.method == "sendMessage" and message.plain_text is not None and "Daily summary 2026-06-02" in message.plain_text
    assert photo.method == "sendPhoto" and photo.photo == png
    assert photo.plain_text is not None and photo.plain_text.startswith("Daily summary 2026-06-02")


async def test_day_end_checkpoint_gives_the_same_numbers_and_catches_late_fills(engine: AsyncEngine, tmp_path: Path) -> None:
    from bot.ops.outbox import kv_get
    from bot.ops.summary import CHECKPOINT_NS

    prices = RecordedPrices(tmp_path / "none")
    day3 = date(2026, 6, 3)
    a = store(engine, "runA")
    a.record("fill", fill("f4", ts(9, 0, 0, day=3), "A-7-0", "SELL", "0.0005", "60300", "0.03", False))
    await a.flush()
    plain = await build_daily_summary(engine, day3, UTC, at=time(0, 0), prices=prices)
    await build_daily_summary(engine, DAY, UTC, at=time(0, 0), prices=prices, save_checkpoint=True)
    async with engine.connect() as conn:
        ck = await kv_get(conn, CHECKPOINT_NS, datetime(2026, 6, 3, tzinfo=UTC).isoformat())
    assert ck is not None and ck["books"] == [["runA:BTC/USDT", "BTC/USDT", "0.0005"]] and ck["last_price"]["BTC/USDT"][1] == "59950"
    fast = await build_daily_summary(engine, day3, UTC, at=time(0, 0), prices=prices)
    assert (fast.metrics.position_start, fast.metrics.gross, fast.metrics.net) == (plain.metrics.position_start, plain.metrics.gross, plain.metrics.net)
    assert fast.metrics.position_end == {"BTC/USDT": D("0")}
    # a fill of 2 June written after the checkpoint (found late by reconciliation) still counts on 3 June
    late = store(engine, "runA")
    late.record("fill", fill("f9", ts(23, 0, 0, day=2), "A-8-0", "BUY", "0.001", "60150", "0.06", False))
    await late.flush()
    after = await build_daily_summary(engine, day3, UTC, at=time(0, 0), prices=prices)
    assert after.metrics.position_start == {"BTC/USDT": D("0.0015")} and after.metrics.position_end == {"BTC/USDT": D("0.001")}
    # a partial day is never checkpointed
    await build_daily_summary(engine, day3, UTC, at=time(0, 0), prices=prices, now=datetime(2026, 6, 3, 12, tzinfo=UTC), save_checkpoint=True)
    async with engine.connect() as conn:
        assert await kv_get(conn, CHECKPOINT_NS, datetime(2026, 6, 3, 12, tzinfo=UTC).isoformat()) is None
        assert await kv_get(conn, CHECKPOINT_NS, datetime(2026, 6, 4, tzinfo=UTC).isoformat()) is None
