"""Reconciliation cycle numbers: 1, 10 and 100 assets with 100 open orders each (spec 4.7.3).

    /work/venv/bin/python bench/reconcile.py      (from the repository root)

For each size, an OMS and the simulated venue hold the same state: one fill and 100 resting orders per asset
(the steady state of a market maker). One reconciliation cycle is timed in its parts:

- ``fetch``: the REST side, here against the in-process simulated venue (so it measures our fetch plus the
  simulated venue, not a network);
- ``apply``: the comparison inside the engine loop (what the loop is blocked for);
- ``cycle``: ``reconcile_once`` end to end;
each as a normal cycle (fills fetched only where there is a reason) and as a full scan (fills fetched for every
asset, every 12th cycle). Allocations come from tracemalloc (peak and net of one cycle, traced separately from
the timing runs). Prints the numbers and writes bench/results/reconcile.json.
"""

from __future__ import annotations

import asyncio
import json
import platform
import statistics
import sys
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.domain.instrument import FeeModel, Instrument  # noqa: E402
from bot.domain.intent import Intent, OrderType, Side  # noqa: E402
from bot.domain.market import Tick  # noqa: E402
from bot.domain.position import Portfolio  # noqa: E402
from bot.engine.clock import ManualClock  # noqa: E402
from bot.engine.sim_venue import SimulatedVenue  # noqa: E402
from bot.oms.limits import OmsLimits  # noqa: E402
from bot.oms.orders import OrderManager  # noqa: E402
from bot.oms.reconcile import Reconciler  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "reconcile.json"
D = Decimal
SEC = 1_000_000_000
ORDERS_PER_ASSET = 100


class ListAudit:
    def __init__(self) -> None:
        self.rows = 0

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows += 1

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None


async def _call(fn: Any) -> Any:
    result = fn()
    if asyncio.iscoroutine(result):
        result = await result
    return result


async def build(n_assets: int) -> tuple[Reconciler, SimulatedVenue, ManualClock]:
    clock = ManualClock(1_767_225_600 * SEC)
    assets = [f"A{i:03d}/USDT" for i in range(n_assets)]
    instruments = {
        a: Instrument(a, "sim", a.replace("/", ""), a.split("/")[0], "USDT", D("0.01"), D("0.001"), D("0.001"), D("5"), fees=FeeModel(D("0.001"), D("0.001")))
        for a in assets
    }
    sim = SimulatedVenue(instruments, clock, balances={"USDT": D("1000000000")})
    oms = OrderManager(
        venue=sim, venue_name="sim", portfolio=Portfolio(), audit=ListAudit(), clock=clock, instruments=instruments,
        limits=OmsLimits(max_orders_per_s=D("1000000")), id_prefix="bench",
    )
    sim.set_report_sink(oms.on_report)
    reconciler = Reconciler(oms)
    await reconciler.take_baseline(_call)
    n = 0
    for a in assets:
        n += 1
        await oms.submit(Intent(f"bench-{n}", clock.now_ns(), "mm", a, Side.BUY, D("0.01"), OrderType.LIMIT, D("1000")))
        sim.on_tick(Tick(a, D("998"), D("1"), D("999"), D("1"), clock.now_ns(), clock.now_ns(), n, "sim"))  # fills it
        for k in range(ORDERS_PER_ASSET):
            n += 1
            order = await oms.submit(Intent(f"bench-{n}", clock.now_ns(), "mm", a, Side.BUY, D("0.01"), OrderType.LIMIT, D(900 - k)))
            assert order is not None, "bench set-up: an order was refused"
    clock.advance(10 * SEC)
    assert len(oms.live) == n_assets * ORDERS_PER_ASSET
    res = await reconciler.reconcile_once(_call)  # warm: baselines, watermarks
    assert res.ok, res.problems
    return reconciler, sim, clock


def _stats(samples: list[float]) -> dict[str, float]:
    return {"min": round(min(samples), 3), "median": round(statistics.median(samples), 3), "max": round(max(samples), 3)}


async def measure(n_assets: int, repeats: int) -> dict[str, Any]:
    reconciler, sim, clock = await build(n_assets)
    out: dict[str, Any] = {"assets": n_assets, "open_orders": n_assets * ORDERS_PER_ASSET, "repeats": repeats}
    for label, full_every in (("normal", 10**9), ("full_scan", 1)):
        reconciler.full_scan_every = full_every
        reconciler.cycles = 1  # so that normal cycles are not full scans
        fetch_ms, apply_ms, cycle_ms = [], [], []
        for _ in range(repeats):
            clock.advance(5 * SEC)
            t0 = time.perf_counter()
            snap = await reconciler.fetch(sim)
            t1 = time.perf_counter()
            res = reconciler.apply(snap)
            t2 = time.perf_counter()
            assert res.ok, res.problems
            fetch_ms.append((t1 - t0) * 1e3)
            apply_ms.append((t2 - t1) * 1e3)
            clock.advance(5 * SEC)
            t3 = time.perf_counter()
            await reconciler.reconcile_once(_call)
            cycle_ms.append((time.perf_counter() - t3) * 1e3)
        clock.advance(5 * SEC)
        tracemalloc.start()
        snap = await reconciler.fetch(sim)
        fetch_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        reconciler.apply(snap)
        apply_current, apply_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[label] = {
            "fetch_ms": _stats(fetch_ms),
            "apply_ms": _stats(apply_ms),
            "cycle_ms": _stats(cycle_ms),
            "fetch_alloc_peak_kib": round(fetch_peak / 1024, 1),
            "apply_alloc_peak_kib": round((apply_peak - before) / 1024, 1),
            "apply_alloc_net_kib": round((apply_current - before) / 1024, 1),
        }
    return out


async def main() -> None:
    results = []
    for n_assets, repeats in ((1, 50), (10, 20), (100, 5)):
        r = await measure(n_assets, repeats)
        results.append(r)
        for label in ("normal", "full_scan"):
            m = r[label]
            print(
                f"{n_assets:>3} assets x {ORDERS_PER_ASSET} orders ({r['open_orders']:>5} open) {label:<9}: "
                f"cycle median {m['cycle_ms']['median']:>8.3f} ms | fetch {m['fetch_ms']['median']:>8.3f} ms | "
                f"apply {m['apply_ms']['median']:>8.3f} ms | apply peak {m['apply_alloc_peak_kib']:>8.1f} KiB, net {m['apply_alloc_net_kib']:>6.1f} KiB | "
                f"fetch peak {m['fetch_alloc_peak_kib']:>8.1f} KiB"
            )
    payload = {
        "benchmark": "reconciliation cycle (bench/reconcile.py)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "note": "fetch runs against the in-process simulated venue (no network); apply is what blocks the engine loop",
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
