"""Venue adapter numbers: market-data normalisation throughput, and loopback latencies through FakeBinance.

    /work/venv/bin/python bench/venue_adapter.py      (from the repository root)

Prints the numbers and writes bench/results/venue_adapter.json. Loopback latencies measure our adapter plus
ccxt plus the fake (aiohttp) on one machine: compare ratios between runs, not absolute values.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.intent import OrderType, Side, TimeInForce  # noqa: E402
from bot.domain.venue import OrderRequest  # noqa: E402
from bot.engine.clock import ManualClock  # noqa: E402
from bot.venues.binance_feed import BinanceMarketFeed  # noqa: E402
from tests.fakes.binance_server import FakeBinance  # noqa: E402
from tests.venues.helpers import READ_KEY, READ_SECRET, TRADE_KEY, TRADE_SECRET, make_harness  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "venue_adapter.json"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


async def normalisation(n: int = 50_000) -> dict[str, float]:
    feed = BinanceMarketFeed(ws_url="ws://127.0.0.1:1", assets=("BTC/USDT",), clock=ManualClock(1), stale_after_s=10, queue_size=n + 10)
    feed._by_symbol = {"BTCUSDT": "BTC/USDT"}
    messages = [
        json.dumps({"stream": "btcusdt@bookTicker", "data": {"u": i, "s": "BTCUSDT", "b": f"{60000 + i % 100}.01", "B": "1.25",
                                                             "a": f"{60000 + i % 100}.02", "A": "0.5"}})
        for i in range(1, n + 1)
    ]
    start = time.perf_counter()
    for message in messages:
        await feed._on_message(message)
    elapsed = time.perf_counter() - start
    assert feed._queue.qsize() == n
    return {"messages": n, "msgs_per_s": round(n / elapsed), "us_per_msg": round(elapsed / n * 1e6, 2)}


async def loopback(orders: int = 200, ticks: int = 300) -> dict[str, object]:
    async with FakeBinance() as fake:
        fake.add_key(TRADE_KEY, TRADE_SECRET, can_trade=True)
        fake.add_key(READ_KEY, READ_SECRET, can_trade=False)
        fake.set_balance("USDT", "1000000")
        fake.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        fake.set_book("ETH/USDT", "2000.00", "1", "2000.01", "1")
        h = make_harness(fake)
        await h.live.start()
        await fake.wait_for_ws_clients(2)
        try:
            ack, cancel = [], []
            for i in range(orders):
                request = OrderRequest(f"b-{i}", "BTC/USDT", Side.BUY, Decimal("0.1"), OrderType.LIMIT, Decimal("90"), TimeInForce.GTC)
                report = await h.venue.place_order(request)
                ack.append(report.latency_ns / 1e6)
                report = await h.venue.cancel_order("BTC/USDT", request.client_order_id, report.venue_order_id)
                cancel.append(report.latency_ns / 1e6)
            tick_ms = []
            feed = h.live.feed
            for i in range(ticks):
                before = feed.last_seq.get(("book", "BTC/USDT"), 0)
                t0 = time.perf_counter()
                fake.set_book("BTC/USDT", f"{100 + (i % 50) / 100:.2f}", "1", "101.00", "1")
                async with asyncio.timeout(5):
                    while feed.last_seq.get(("book", "BTC/USDT"), 0) <= before:
                        await asyncio.sleep(0)
                tick_ms.append((time.perf_counter() - t0) * 1e3)
            return {
                "orders": orders,
                "submit_ack_ms": {"p50": pct(ack, 0.5), "p99": pct(ack, 0.99), "mean": round(statistics.fmean(ack), 3)},
                "cancel_ack_ms": {"p50": pct(cancel, 0.5), "p99": pct(cancel, 0.99)},
                "ticks": ticks,
                "book_change_to_tick_ms": {"p50": pct(tick_ms, 0.5), "p99": pct(tick_ms, 0.99)},
                "adapter_metrics": h.venue.metrics.snapshot()["requests"],
            }
        finally:
            await h.live.stop("bench end")


async def main() -> None:
    result = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "normalisation": await normalisation(),
        "loopback": await loopback(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    n, lb = result["normalisation"], result["loopback"]
    print(f"bookTicker normalisation: {n['msgs_per_s']} msg/s ({n['us_per_msg']} us/msg)")
    print(f"submit -> ack (loopback, ccxt + fake): p50 {lb['submit_ack_ms']['p50']} ms, p99 {lb['submit_ack_ms']['p99']} ms")
    print(f"cancel -> ack: p50 {lb['cancel_ack_ms']['p50']} ms, p99 {lb['cancel_ack_ms']['p99']} ms")
    print(f"book change -> Tick (fake WS -> feed): p50 {lb['book_change_to_tick_ms']['p50']} ms, p99 {lb['book_change_to_tick_ms']['p99']} ms")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
