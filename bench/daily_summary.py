"""Benchmark: building the daily summary on a busy day with a long history.

Generates (deterministically) a SQLite store with PRIOR_DAYS days of history at FILLS_PER_DAY fills a day,
one report day with FILLS_PER_DAY fills, and one recorded market data tick per second for that day, then
times ``build_daily_summary`` (database load, metrics, chart) and records peak RSS.

    python bench/daily_summary.py [--fills-per-day 5000] [--prior-days 30]

Prints the numbers and writes bench/results/daily_summary.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.ops.marketdata import RecordedPrices  # noqa: E402
from bot.ops.summary import build_daily_summary  # noqa: E402
from bot.store import migrate  # noqa: E402
from bot.store.audit import AuditStore  # noqa: E402
from bot.store.db import create_engine  # noqa: E402

DAY = date(2026, 6, 2)
NS = 1_000_000_000


def day_start_ns(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()) * NS


async def populate(url: str, md: Path, fills_per_day: int, prior_days: int) -> None:
    engine = create_engine(url)
    await migrate.upgrade(engine)
    rng = random.Random(4)
    store = AuditStore(engine, run_id="bench", mode="LIVE", version_hash="v", config_hash="c", now_ns=lambda: 0, batch_size=5000)
    store.record("run", {"ts_ns": day_start_ns(DAY - timedelta(days=prior_days)), "run_kind": "start"})
    price = Decimal("60000")
    n = 0
    for offset in range(prior_days, -1, -1):
        d = DAY - timedelta(days=offset)
        t0 = day_start_ns(d)
        for i in range(fills_per_day):
            n += 1
            side = "BUY" if rng.random() < 0.5 else "SELL"
            px = price + Decimal(rng.randint(-500, 500)) / 10
            ts = t0 + int(i * 86_400 / fills_per_day * NS)
            coid = f"b-{n}-0"
            if offset == 0:
                store.record("order", {"ts_ns": ts - NS, "client_order_id": coid, "intent_id": f"b-{n}", "venue": "binance", "asset": "BTC/USDT",
                                       "side": side, "qty": Decimal("0.001"), "order_type": "LIMIT", "limit_price": px, "tif": "GTC", "status": "NEW"})
            store.record("fill", {"ts_ns": ts, "fill_id": f"f{n}", "client_order_id": coid, "intent_id": f"b-{n}", "venue": "binance",
                                  "asset": "BTC/USDT", "side": side, "qty": Decimal("0.001"), "price": px, "fee": Decimal("0.06"),
                                  "fee_currency": "USDT", "fee_quote": Decimal("0.06"), "is_maker": rng.random() < 0.7})
            if store.needs_flush():
                await store.flush()
    await store.flush()
    await engine.dispose()
    folder = md / "binance" / "BTC-USDT"
    folder.mkdir(parents=True)
    for d in (DAY - timedelta(days=1), DAY, DAY + timedelta(days=1)):
        t0 = day_start_ns(d)
        mid = 60000.0
        with gzip.open(folder / f"{d.isoformat()}.jsonl.gz", "wt") as fh:
            for s in range(86_400):
                mid += rng.uniform(-5, 5)
                m = Decimal(f"{mid:.2f}")
                fh.write(json.dumps({"ts_local_ns": t0 + s * NS, "bid": str(m - Decimal("0.01")), "ask": str(m + Decimal("0.01")), "seq": s}) + "\n")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fills-per-day", type=int, default=5000)
    ap.add_argument("--prior-days", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        t = time.perf_counter()
        await populate(url, Path(tmp) / "md", args.fills_per_day, args.prior_days)
        setup_s = time.perf_counter() - t
        engine = create_engine(url)
        prices = RecordedPrices(Path(tmp) / "md")
        midnight = datetime.min.time()
        t = time.perf_counter()
        summary = await build_daily_summary(engine, DAY, UTC, at=midnight, prices=prices)
        cold = time.perf_counter() - t
        # the scheduled job checkpoints each day's end: the next day reads only its own fills
        await build_daily_summary(engine, DAY - timedelta(days=1), UTC, at=midnight, prices=prices, save_checkpoint=True)
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            warm = await build_daily_summary(engine, DAY, UTC, at=midnight, prices=prices)
            runs.append(time.perf_counter() - t)
        assert warm.metrics.net == summary.metrics.net
        await engine.dispose()
    result = {
        "fills_per_day": args.fills_per_day,
        "prior_days": args.prior_days,
        "history_fills": args.fills_per_day * args.prior_days,
        "market_ticks_per_day": 86_400,
        "setup_s": round(setup_s, 2),
        "build_s_no_checkpoint": round(cold, 3),
        "build_s_with_checkpoint_best": round(min(runs), 3),
        "build_s_with_checkpoint_runs": [round(r, 3) for r in runs],
        "fills_in_day": summary.metrics.fills,
        "png_bytes": len(summary.png_bytes),
        "text_chars": len(summary.text_html),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1),  # KiB -> MB
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results" / "daily_summary.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
