"""Risk numbers: the cost of ``RiskEngine.check`` per intent and of the per-tick / per-iteration risk work.

    /work/venv/bin/python bench/risk_check.py      (from the repository root)

The real engine, OMS, risk runtime and simulated venue (the test harness), one asset, 20 resting orders of
the strategy (a quoting steady state), a position and marks, all policies configured with their defaults:

- ``check_approved``: one full check that passes every policy (the common path), called as the engine calls it
  (``RiskEngine.check(intent, engine.view)``, without the audit row);
- ``check_blocked_early``: a check refused by the allowlist (the cheapest refusal);
- ``on_tick``: the risk tick listener (jump detector; barrier test when one is armed);
- ``iteration_guard``: the guard at the top of an engine iteration without P&L work (kill file stat, staleness,
  latency, events, breakers), and ``iteration_guard_pnl`` with the P&L/drawdown evaluation it does at most every
  ``eval_interval_ms`` and after fills.
Prints the numbers and writes bench/results/risk_check.json.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.intent import Side  # noqa: E402
from bot.risk.limits import RiskLimits  # noqa: E402
from tests.unit.risk_harness import BTC, Harness  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "risk_check.json"
D = Decimal


def timed(fn: Any, n: int, repeat: int = 5) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter_ns() - t0) / n)
    return {"median_ns": round(statistics.median(runs)), "best_ns": round(min(runs)), "n": n, "repeat": repeat}


async def timed_async(fn: Any, n: int, repeat: int = 5) -> dict[str, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            await fn()
        runs.append((time.perf_counter_ns() - t0) / n)
    return {"median_ns": round(statistics.median(runs)), "best_ns": round(min(runs)), "n": n, "repeat": repeat}


async def main() -> dict[str, Any]:
    lim = RiskLimits(max_trade_qty=D("0.01"), max_order_notional=D("1000"), max_position_qty=D("0.5"), account_value=D("100000"),
                     allowed_assets={"sim": (BTC, "ETH/USDT")})
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as d:
        async with Harness(lim, tmp_path=Path(d)) as h:
            await h.px("59999.99", "60000.01", size="5")
            await h.place(h.intent(Side.BUY, "0.01"))  # a position
            for i in range(20):  # the strategy's resting quotes
                await h.place(h.intent(Side.BUY if i % 2 else Side.SELL, "0.001", str(59000 - i) if i % 2 else str(61000 + i)))
            await h.px("59999.99", "60000.01", size="5")
            engine, risk = h.engine, h.risk
            ok = h.intent(Side.BUY, "0.001", "59990")
            bad = h.intent(Side.BUY, "0.001", "2990", asset="ETH/USDT")
            bad = bad.__class__(**{**{f: getattr(bad, f) for f in bad.__dataclass_fields__}, "asset": "DOGE/USDT"})
            assert risk.check(ok, engine.view).approved and not risk.check(bad, engine.view).approved
            out["check_approved"] = timed(lambda: risk.check(ok, engine.view), 20_000)
            out["check_blocked_early"] = timed(lambda: risk.check(bad, engine.view), 20_000)
            tick = h.tick("59999.99", "60000.01", "5")
            out["on_tick"] = timed(lambda: h.runtime.on_tick(tick), 50_000)
            sup = h.supervisor
            sup.pnl_dirty = False
            sup._last_pnl_mono = h.clock.monotonic_ns() + 10**18  # P&L already evaluated "now": the cheap path

            async def guard() -> None:
                await h.runtime.guard()

            out["iteration_guard"] = await timed_async(guard, 20_000)

            async def guard_pnl() -> None:
                sup.pnl_dirty = True
                await h.runtime.guard()

            out["iteration_guard_pnl"] = await timed_async(guard_pnl, 10_000)
    return out


if __name__ == "__main__":
    results = asyncio.run(main())
    meta = {"python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor() or "unknown"}
    for k, v in results.items():
        print(f"{k:22s} median {v['median_ns'] / 1000:8.2f} µs   best {v['best_ns'] / 1000:8.2f} µs   (n={v['n']} x {v['repeat']})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(f"written {RESULTS}")
