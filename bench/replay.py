"""Replay benchmark: 1,000,000 BTC/USDT quote ticks through the full REPLAY pipeline, audit store included.

    python bench/replay.py [--ticks 1000000] [--variant a|b|both] [--runs 1]

The ticks are generated here, deterministically: a seeded random walk of the mid around 60,000 on the 0.01 tick
(steps of -20..+20 ticks, a one-tick spread, 1.5 BTC shown each side), one tick every 100 ms of event time.
They go through what ``bot replay --data`` builds (composition root in mode REPLAY, injected clock, engine, quote
strategy, risk engine and runtime, control gate, OMS, simulated venue, SQLite audit store in a temporary file,
backtest statistics). The loss limits are raised (a throughput benchmark: the quotes lose a little on each fill and
the daily loss limit would otherwise halt them after a few hours of event time); every other limit is the default:

- (a) ``quote`` computes its quotes on every tick and submits nothing (shadow mode);
- (b) ``quote`` cancels and replaces one bid and one ask every 10th tick (about 200,000 orders, many fills).

Each variant runs in its own process (so that its peak RSS is its own). Printed, and written to
``bench/results/replay.json``: ticks/s, orders, fills, peak RSS, and the RSS after each tenth of the ticks (it
must not grow with the number of ticks). Targets on the 2-core reference machine: (a) >= 150,000 ticks/s,
(b) >= 20,000 ticks/s, peak RSS <= 500 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.domain.market import Tick  # noqa: E402

START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
PERIOD_NS = 100_000_000
VARIANTS = {
    "a": {"shadow": "true", "sigma_prior": "0.0005", "fee": "0"},
    "b": {"refresh_ticks": "10", "spread_bps": "0.1", "inventory_cap": "0.05", "order_qty": "0.001", "post_only": "true"},
}
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 1e6


class RandomWalkFeed:
    """The benchmark's ticks: generated lazily in batches (never all in memory), Decimals cached by level."""

    def __init__(self, n: int, *, seed: int = 20260101, batch: int = 1000, samples: int = 10) -> None:
        self.n = n
        self._rng = random.Random(seed)
        self._batch = batch
        self._prices: dict[int, Decimal] = {}
        self._size = Decimal("1.5")
        self._every = max(1, n // samples)
        self.rss: list[tuple[int, float]] = []
        self.emitted = 0

    async def batches(self) -> AsyncIterator[Sequence[Tick]]:
        level = 6_000_000  # 60,000.00 in ticks of 0.01
        steps = range(-20, 21)
        size = self._size
        prices = self._prices
        new = tuple.__new__
        ts = START_NS
        seq = 0
        while seq < self.n:
            k = min(self._batch, self.n - seq)
            out = []
            for step in self._rng.choices(steps, k=k):
                level += step
                if level < 5_000_000 or level > 7_000_000:
                    level -= 2 * step  # stay around 60,000
                bid = prices.get(level)
                if bid is None:
                    bid = prices[level] = Decimal(level).scaleb(-2)
                ask = prices.get(level + 1)
                if ask is None:
                    ask = prices[level + 1] = Decimal(level + 1).scaleb(-2)
                seq += 1
                ts += PERIOD_NS
                out.append(new(Tick, ("BTC/USDT", bid, size, ask, size, ts, ts, seq, "sim", None)))
            self.emitted = seq
            if seq // self._every != (seq - k) // self._every:
                self.rss.append((seq, round(rss_mb(), 1)))
            yield out
            await asyncio.sleep(0)

    async def close(self) -> None:
        return None


async def run_variant(variant: str, ticks: int) -> dict[str, object]:
    from bot.config import load_settings
    from bot.replay import backtest

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        cfg = Path(tmp) / "bench.toml"
        cfg.write_text(
            "[store]\nbatch_size = 5000\nflush_interval_ms = 1000\n"
            "[engine]\nheartbeat_interval_s = 3600\nqueue_size = 16\n"
            "[risk]\nmax_trade_qty = \"0.01\"\nmax_order_notional = \"1000\"\nmax_position_qty = \"1\"\n"
            # a throughput benchmark: the quotes lose a little every fill; the loss limits must not stop the run
            "max_daily_loss = \"1000000\"\nmax_daily_loss_per_strategy = \"1000000\"\nmax_portfolio_loss = \"1000000\"\n"
            "strategy_loss_kill = \"1000000\"\n"
            "[sim]\nbalances = { USDT = \"1000000\", BTC = \"10\" }\n"
            "[sim.instruments.\"BTC/USDT\"]\ntick_size = \"0.01\"\nlot_size = \"0.00001\"\nmin_notional = \"5\"\n"
            "maker_fee = \"0.0001\"\ntaker_fee = \"0.001\"\n"
        )
        base = load_settings(cfg, env={})
        feed = RandomWalkFeed(ticks)
        rss_before = rss_mb()
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        report = await backtest(
            base, [], "quote", dict(VARIANTS[variant]), Path(tmp) / "out", feed=feed, assets=["BTC/USDT"], start_ns=START_NS,
            logs=False,
        )
        wall = time.perf_counter() - t0
        db_size = (Path(tmp) / "out" / "replay.db").stat().st_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # KiB -> MB, the unit of the samples
    s = report.stats
    return {
        "variant": variant,
        "ticks": report.ticks,
        "seconds": round(report.elapsed_s, 2),
        "seconds_with_setup": round(wall, 2),
        "ticks_per_s": round(report.ticks / report.elapsed_s),
        # CPU time of the run: on a busy machine wall time measures the neighbours as much as this code
        "cpu_s": round(report.cpu_s, 2),
        "ticks_per_cpu_s": round(report.ticks / report.cpu_s),
        "engine_thread_cpu_s": round(report.engine_cpu_s, 2),
        "ticks_per_engine_thread_cpu_s": round(report.ticks / report.engine_cpu_s),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "orders": s.orders,
        "fills": s.fills,
        "audit_db_mb": round(db_size / 1e6, 1),
        "rss_before_mb": round(rss_before, 1),
        "rss_samples_mb": feed.rss,
        "peak_rss_mb": round(peak, 1),
        "pnl_net": str(report.pnl_net.quantize(Decimal("0.01"))),
    }


def calibration_s(n: int = 10_000_000) -> float:
    """Seconds for a fixed pure-Python loop: how fast this machine runs the interpreter today. The ticks/s of two
    runs on different days compare only alongside it (the same 2-core machine type has run variant (a) at 170,000
    ticks/s one day and 62,000 another, with nothing else running)."""
    t0 = time.perf_counter()
    s = 0
    for i in range(n):
        s += i
    return round(time.perf_counter() - t0, 3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--variant", choices=("a", "b", "both"), default="both")
    parser.add_argument("--runs", type=int, default=1, help="repeat each variant (separate processes)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not write bench/results/replay.json")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(asyncio.run(run_variant(args.variant, args.ticks))))
        return 0
    variants = ("a", "b") if args.variant == "both" else (args.variant,)
    calibration = calibration_s()
    print(f"calibration: 10,000,000 pure-Python additions in {calibration} s")
    results = []
    for variant in variants:
        for _ in range(args.runs):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", "--variant", variant, "--ticks", str(args.ticks)],
                capture_output=True, text=True, check=False,
            )
            if proc.returncode != 0:
                print(proc.stdout, proc.stderr, file=sys.stderr)
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(
                f"({variant}) {r['ticks']:,} ticks in {r['seconds']} s = {r['ticks_per_s']:,} ticks/s "
                f"(CPU: {r['ticks_per_cpu_s']:,}/s, engine thread {r['ticks_per_engine_thread_cpu_s']:,}/s; load {r['load_average']}); "
                f"orders {r['orders']:,}, fills {r['fills']:,}; peak RSS {r['peak_rss_mb']} MB; RSS by tick {r['rss_samples_mb']}"
            )
    if not args.no_write:
        out = ROOT / "bench" / "results" / "replay.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "benchmark": "replay",
            "machine": {
                "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                "calibration_s": calibration,
            },
            "targets": {"a_ticks_per_s": 150_000, "b_ticks_per_s": 20_000, "peak_rss_mb": 500},
            "results": results,
        }
        out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"written {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
