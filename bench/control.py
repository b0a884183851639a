"""Benchmark: command -> reply latency of the Telegram control plane, against a bare PTB echo bot, in one run.

Everything goes through the real python-telegram-bot over loopback HTTP against the local Bot API server
(tests/fakes/telegram_server.py): a message is injected as a person typing, and the time is taken until the
bot's reply is recorded by the server.

- ``echo``: a bare PTB Application with one echo MessageHandler (the reference), running at the same time
  against its own server; every command of ours is followed by one echo, so a change in machine load during the
  run affects both sides alike;
- ``status``: /status (the full status screen);
- the per-user command budget is set above what the run sends (it stays in the path);
- ``intent`` and ``confirm``: intent -> confirm cycles in LIVE mode while armed: /intent stages a passive IOC
  limit order (audit rows, risk pre-check, estimate, hash, buttons), /confirm re-checks everything and sends the
  order to the simulated venue through the LIVE gate and the venue guard (it expires unfilled, so resting
  orders do not pile up over the run).

The control plane runs as the service wires it (build_control_core / build_control_plane), with PTB's
AIORateLimiter set to 1000 messages/s: at Telegram's real 30/s a sequential benchmark would measure the
limiter, not the code. The OMS order-rate guard is raised for the same reason (1000 orders in a few seconds).

    python bench/control.py [--n 1000]

Prints p50/p99 per command and the ratio of our p99 to the p99 of the echoes interleaved with that command
(target <= 1.5), and writes bench/results/control.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

os.environ.setdefault("PTB_TIMEDELTA", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update  # noqa: E402
from telegram.ext import Application, ApplicationBuilder, ContextTypes, MessageHandler, filters  # noqa: E402

from bot.control.ratelimit import CommandRateLimiter  # noqa: E402
from bot.domain.modes import Mode  # noqa: E402
from bot.oms.limits import OmsLimits  # noqa: E402
from bot.risk.limits import RiskLimits  # noqa: E402
from tests.control.harness import ASSET, OP, Harness  # noqa: E402
from tests.fakes.telegram_server import FakeTelegram  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "control.json"
TARGET_RATIO = 1.5


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "p50_ms": round(statistics.median(samples), 3), "p99_ms": round(pct(samples, 99), 3),
            "max_ms": round(max(samples), 3)}


async def round_trip(fake: FakeTelegram, text: str) -> tuple[float, str]:
    since = len(fake.sent)
    started = time.perf_counter()
    fake.send_message(OP, OP, text)
    [reply] = await fake.wait_for_sent(lambda r: r.chat_id == OP, since=since, timeout=10)
    return (time.perf_counter() - started) * 1000, reply.plain_text or ""


@contextlib.asynccontextmanager
async def echo_bot(fake: FakeTelegram) -> AsyncIterator[None]:
    """A bare PTB Application with one echo handler: the reference."""

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message and update.message.text
        await update.message.reply_text(update.message.text)

    app: Application = ApplicationBuilder().token(fake.token).base_url(fake.base_url).base_file_url(fake.base_file_url).build()  # type: ignore[assignment]
    app.add_handler(MessageHandler(filters.TEXT, echo))
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling()
        await fake.wait_for_poll()
        try:
            yield
        finally:
            await app.updater.stop()
            await app.stop()


async def run_all(n: int, tmp: Path) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Both bots run at once, each against its own server; every command of ours is followed by one echo, so
    both sides see the same machine load."""
    risk = RiskLimits(Decimal("1"), Decimal("1000000"), Decimal("100000"), {"sim": (ASSET,)})
    oms = OmsLimits(max_orders_per_s=Decimal("100000"), flipflop_max_cycles=1_000_000)
    echo: dict[str, list[float]] = {"status": [], "cycles": []}  # the echoes interleaved with each phase
    out: dict[str, list[float]] = {"status": [], "intent": [], "confirm": []}
    seq = iter(range(10**9))

    async with FakeTelegram() as echo_fake, FakeTelegram() as fake, echo_bot(echo_fake):
        async def ping(phase: str) -> None:
            i = next(seq)
            ms, text = await round_trip(echo_fake, f"/ping {i}")
            assert text == f"/ping {i}", text
            echo[phase].append(ms)

        async with Harness(tmp, mode=Mode.LIVE, fake=fake, risk=risk, oms_limits=oms, arm_max_ttl_s=86_400, intent_ttl_s=3600) as h:
            await h.tick("60000")
            # the per-user command budget (at most 600/min in configuration) would stop a benchmark of thousands of
            # commands a minute; the limiter stays in the path with a budget this run cannot exhaust
            h.telegram.gatekeeper.limiter = CommandRateLimiter(10 * n + 100)
            _, armed = await round_trip(fake, "/arm 12h")
            assert "ARMED" in armed, armed
            for _ in range(20):  # warm-up
                await round_trip(fake, "/status")
                await round_trip(echo_fake, "warm")
            for _ in range(n):
                ms, text = await round_trip(fake, "/status")
                assert text.startswith("LIVE"), text
                out["status"].append(ms)
                await ping("status")
            for i in range(n):
                ms, text = await round_trip(fake, f"/intent manual buy BTC/USDT 0.001 limit {50000 + i % 100} tif=IOC")
                assert "Hash " in text, text
                out["intent"].append(ms)
                await ping("cycles")
                full = text.split("Hash ")[1][:64]
                ms, text = await round_trip(fake, f"/confirm {full[:10]}")
                assert "Executed" in text, text
                out["confirm"].append(ms)
                await ping("cycles")
            assert len(h.venue.placed) == n
            await h.flush()
    return echo, out


async def main(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        started = time.perf_counter()
        echo, ours = await run_all(n, Path(d))
        elapsed = time.perf_counter() - started
    echo_s = summary(echo["status"] + echo["cycles"])
    phase_echo = {"status": summary(echo["status"]), "intent": summary(echo["cycles"]), "confirm": summary(echo["cycles"])}
    result: dict[str, Any] = {
        "benchmark": "control plane command -> reply through python-telegram-bot over loopback HTTP (FakeTelegram)",
        "n": n,
        "echo": echo_s,
        "echo_by_phase": {"status": phase_echo["status"], "intent_confirm_cycles": phase_echo["intent"]},
        "commands": {k: summary(v) for k, v in ours.items()},
        "target": f"our p99 <= {TARGET_RATIO} x the bare echo handler's p99",
        "elapsed_s": round(elapsed, 1),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "notes": "LIVE mode, armed; AIORateLimiter at 1000 msg/s; OMS order-rate guard raised; SQLite audit store; "
                 "echo and ours interleaved message by message",
    }
    for name, s in result["commands"].items():
        ref = phase_echo[name]  # the echoes measured in the same phase, interleaved one to one
        s["echo_p99_same_phase_ms"] = ref["p99_ms"]
        s["p99_ratio_to_echo"] = round(s["p99_ms"] / ref["p99_ms"], 2)
        s["p50_ratio_to_echo"] = round(s["p50_ms"] / ref["p50_ms"], 2)
        s["meets_target"] = s["p99_ratio_to_echo"] <= TARGET_RATIO
    return result


def report(result: dict[str, Any]) -> None:
    print(f"{'command':14} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'echo p99':>9} {'p99/echo':>9}")
    for label, e in (("echo (all)", result["echo"]), ("echo /status", result["echo_by_phase"]["status"]),
                     ("echo cycles", result["echo_by_phase"]["intent_confirm_cycles"])):
        print(f"{label:14} {e['n']:>6} {e['p50_ms']:>8.2f} {e['p99_ms']:>8.2f} {e['max_ms']:>8.2f}")
    for name, s in result["commands"].items():
        flag = "ok" if s["meets_target"] else "MISSED"
        print(f"{'/' + name:14} {s['n']:>6} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.2f} "
              f"{s['echo_p99_same_phase_ms']:>9.2f} {s['p99_ratio_to_echo']:>9.2f} {flag}")
    print(f"target: {result['target']}; total {result['elapsed_s']} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="messages per command (default 1000)")
    args = parser.parse_args()
    res = asyncio.run(main(args.n))
    report(res)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {RESULTS}")
