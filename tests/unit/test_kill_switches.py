"""The kill-switch layers and the automatic stops: kill file, stale data, latency breach, connectivity loss,
and the drawdown denominator (seed 001, regression 4). Real engine, simulated venue, injected clock."""

from __future__ import annotations

import dataclasses
from decimal import Decimal as D
from pathlib import Path

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.intent import OrderType, Side
from bot.domain.streams import StreamStatus
from bot.engine.strategy import StrategyContext
from bot.risk.drawdown import AccountValue, drawdown
from bot.risk.limits import DrawdownLimits, LatencyLimits, LossLimits, StaleLimits
from bot.risk.safety import TradingState
from tests.unit.risk_harness import BTC, MS, Harness, Scripted, limits

ETH = "ETH/USDT"


def bids(ctx: StrategyContext, n: int = 2) -> list:
    """Two resting orders far from the market, every tick."""
    assert ctx.tick is not None
    return [ctx.place(BTC, Side.BUY, D("0.001"), price=ctx.tick.bid - 100 - i) for i in range(n)]


async def test_kill_file_created_mid_run_stops_orders_and_cancels_resting(tmp_path: Path) -> None:
    lim = limits(max_position_qty=D("1"))
    async with Harness(lim, tmp_path=tmp_path) as h:
        s = h.s1
        s.on_tick_hook = lambda ctx: s.plan.append(bids)
        for _ in range(4):
            await h.px("59999.99", "60000.01")
        assert len(h.oms.live) == 8 and len(h.orders_sent()) == 8
        # during the 5th iteration, while the strategy is being called, someone touches the kill file
        s.on_tick_hook = lambda ctx: (h.kill_file.touch(), s.plan.append(bids))
        await h.px("59999.99", "60000.01")
        sent_by_current_iteration = len(h.orders_sent())
        assert sent_by_current_iteration == 10  # the current iteration finishes what it was doing
        ticks_seen = s.ticks
        # the next iteration: nothing acted on, every resting order cancelled within it
        await h.px("59999.99", "60000.01")
        assert h.oms.live == {}
        assert len(h.orders_sent()) == sent_by_current_iteration
        assert h.safety.state is TradingState.SAFE and h.safety.code is ErrorCode.KILL_SWITCH
        for _ in range(5):
            await h.px("59999.99", "60000.01")
        assert s.ticks == ticks_seen  # strategies are not even called while the file exists
        assert len(h.orders_sent()) == sent_by_current_iteration
        # an operator-confirmed order is refused too (KILL_SWITCH), not only strategy orders
        v, _ = await h.place(h.intent(Side.SELL, "0.001", "61000"))
        assert not v.approved and v.code is ErrorCode.KILL_SWITCH
        kills = h.audit.transitions("kill_file")
        assert [r["to_state"] for r in kills] == ["PRESENT"] and kills[0]["code"] == "KILL_SWITCH"
        cancels = [r for r in h.audit.of("order_event") if r["event"] == "canceled"]
        assert len(cancels) == 10
        # removing the file does not resume: SAFE stays until a human resumes (and the checklist passes)
        h.kill_file.unlink()
        await h.px("59999.99", "60000.01")
        assert s.ticks == ticks_seen + 1 and h.safety.state is TradingState.SAFE
        assert len(h.orders_sent()) == sent_by_current_iteration  # its intents are refused (SAFE)
        ok, checks = await h.resume("alice")
        assert not ok and {c.name for c in checks if not c.ok} >= {"positions_reconciled", "incident_recorded", "limits_confirmed"}


async def test_stale_asset_blocks_then_recovers_with_hysteresis_and_all_stale_is_safe(tmp_path: Path) -> None:
    lim = limits(stale=StaleLimits(asset_stale_s=10, recover_s=5, all_stale_safe=True), max_position_qty=D("1"))
    async with Harness(lim, tmp_path=tmp_path, assets=(BTC, ETH)) as h:
        for _ in range(3):
            await h.send(h.tick("59999.99", "60000.01"), h.tick("2999.99", "3000.01", asset=ETH), advance_ms=1000)
        # ETH goes silent; BTC keeps ticking every second
        for _ in range(9):
            await h.px("59999.99", "60000.01", advance_ms=1000)
        assert not h.audit.transitions("feed")  # 9 s: under the threshold
        await h.px("59999.99", "60000.01", advance_ms=1000)  # 10 s
        assert [(r["scope"], r["to_state"], r["code"]) for r in h.audit.transitions("feed")] == [("asset:ETH/USDT", "STALE", "MARKET_DATA_STALE")]
        v, row = await h.check(h.intent(Side.BUY, "0.01", "2900", asset=ETH))
        assert not v.approved and row["inputs"]["policy"] == "stale_data"
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved and h.safety.state is TradingState.ACTIVE  # only the stale asset is blocked
        # ETH comes back: one tick is not enough; it must flow for recover_s (5 s)
        await h.send(h.tick("59999.99", "60000.01"), h.tick("2999.99", "3000.01", asset=ETH), advance_ms=1000)
        for _ in range(4):
            v, row = await h.check(h.intent(Side.BUY, "0.01", "2900", asset=ETH))
            assert not v.approved and row["inputs"]["recovering"] is True
            await h.send(h.tick("59999.99", "60000.01"), h.tick("2999.99", "3000.01", asset=ETH), advance_ms=1000)
        await h.send(h.tick("59999.99", "60000.01"), h.tick("2999.99", "3000.01", asset=ETH), advance_ms=1000)
        assert h.audit.transitions("feed")[-1]["to_state"] == "FRESH"
        v, _ = await h.check(h.intent(Side.BUY, "0.01", "2900", asset=ETH))
        assert v.approved
        # resting orders, then every feed goes silent: SAFE and the resting orders are cancelled
        await h.place(h.intent(Side.BUY, "0.001", "59000"))
        assert h.oms.live
        await h.idle(advance_ms=10_000)
        assert h.safety.state is TradingState.SAFE and h.safety.code is ErrorCode.MARKET_DATA_STALE
        assert h.oms.live == {}
        ok, checks = await h.resume("alice")
        fresh = next(c for c in checks if c.name == "market_data_fresh")
        assert not ok and not fresh.ok and "BTC/USDT" in fresh.detail
        # data back and flowing: the freshness check passes (the state still needs the human resume)
        for _ in range(7):
            await h.send(h.tick("59999.99", "60000.01"), h.tick("2999.99", "3000.01", asset=ETH), advance_ms=1000)
        assert h.runtime.check_market_data_fresh().ok and h.safety.state is TradingState.SAFE


class LatencyVenue:
    """The simulated venue with a configurable order-ack latency on every answer (ExecutionReport.latency_ns)."""

    def __init__(self) -> None:
        self.inner = None
        self.latency_ms = 10
        self.name = "sim"

    def __getattr__(self, n: str):
        return getattr(self.inner, n)

    async def place_order(self, request):
        report = await self.inner.place_order(request)
        return dataclasses.replace(report, latency_ns=self.latency_ms * MS)


async def test_latency_breach_throttles_blocks_and_recovers_with_hysteresis(tmp_path: Path) -> None:
    lat = LatencyLimits(window=10, min_samples=10, baseline_ms=0, min_baseline_ms=5, degrade_ratio=2.0, hard_ms=200, persist_s=60,
                        recover_ratio=1.5, recover_s=5, block_cooldown_s=30, order_rate_per_s=D("4"))
    venue = LatencyVenue()
    async with Harness(limits(latency=lat, max_position_qty=D("10"), max_order_notional=D("100000")), tmp_path=tmp_path, venue=venue) as h:
        venue.inner = h.sim
        await h.px("59999.99", "60000.01")
        await h.place(h.intent(Side.BUY, "0.01"))  # a long to reduce later (one sample at 10 ms)

        async def orders(n: int, ms: int) -> None:
            venue.latency_ms = ms
            for _ in range(n):  # the OMS path (the tap sees every answer); risk is not what is tested here
                await h.engine.call(lambda: h.engine.submit(h.intent(Side.BUY, "0.001", "50000")))
                h.clock.advance(100 * MS)

        def states() -> list[str]:
            return [r["to_state"] for r in h.audit.transitions("latency")]

        await orders(10, 10)  # the first full window: baseline p95 = 10 ms
        assert h.risk.latency.baseline_ms("sim") == 10.0 and states() == []
        await orders(1, 19)  # p95 19 ms < 2 x 10: still normal
        assert states() == []
        await orders(1, 20)  # p95 20 ms = 2 x baseline: throttled (order rate halved)
        assert states() == ["THROTTLED"]
        assert h.runtime.advice("s1", BTC).mode.value == "NORMAL"  # throttling slows orders; it does not pull quotes
        # p95 back to 16 ms: between 1.5x (15) and 2x: stays throttled however long (hysteresis band)
        await orders(10, 16)
        await h.idle(advance_ms=10_000)
        assert states() == ["THROTTLED"]
        # below 15 ms, but not yet for recover_s: still throttled; then held for 5 s -> NORMAL
        await orders(10, 14)
        await h.idle(advance_ms=4_000)
        assert states() == ["THROTTLED"]
        await h.idle(advance_ms=1_000)
        assert states() == ["THROTTLED", "NORMAL"]
        # a p95 at the hard threshold blocks new orders at once
        await orders(10, 200)
        assert states()[-1] == "BLOCKED"
        v, row = await h.check(h.intent(Side.BUY, "0.001", "50000"))
        assert not v.approved and row["inputs"]["policy"] == "latency_block" and row["inputs"]["p95_ms"] == 200.0
        v, row = await h.check(h.intent(Side.SELL, "0.001", "61000"))  # reducing: not blocked, but the rate limit holds
        assert not v.approved and row["inputs"]["policy"] == "latency_throttle" and row["inputs"]["orders_last_s"] == 9
        await h.idle(advance_ms=1_000)
        v, _ = await h.check(h.intent(Side.SELL, "0.001", "61000"))  # reducing the long we bought: allowed
        assert v.approved
        assert h.runtime.advice("s1", BTC).mode.value == "PULL"
        # blocked for block_cooldown_s, then a probe at the throttled rate with an empty window
        # (blocked at the first 200 ms sample; 10 orders 100 ms apart and 1 s idle later it is 2 s old)
        await h.idle(advance_ms=26_000)
        assert states()[-1] == "BLOCKED"
        await h.idle(advance_ms=2_000)
        assert states()[-1] == "THROTTLED"
        # throttled too long (persist_s) without recovering: blocked again
        await orders(10, 25)
        await h.idle(advance_ms=60_000)
        assert states()[-2:] == ["THROTTLED", "BLOCKED"]
        rows = h.audit.transitions("latency")
        assert all(r["scope"] == "venue:sim" for r in rows) and "persisted" in rows[-1]["reason"]


async def test_connectivity_loss_enters_safe_and_cancels_resting(tmp_path: Path) -> None:
    async with Harness(limits(max_position_qty=D("1")), tmp_path=tmp_path) as h:
        await h.px("59999.99", "60000.01")
        for _ in range(3):
            await h.place(h.intent(Side.BUY, "0.001", "59000"))
        assert len(h.oms.live) == 3
        h.arming.arm(600, "alice")
        h.runtime.on_stream_status(StreamStatus("sim", "market", False, ErrorCode.MARKET_DATA_STALE, "quiet", 0, BTC))
        assert h.safety.state is TradingState.ACTIVE  # market staleness is the staleness monitor's business
        h.runtime.on_stream_status(StreamStatus("sim", "user", False, ErrorCode.WS_STALE, "user-data websocket closed", 0))
        assert h.safety.state is TradingState.SAFE and h.safety.code is ErrorCode.VENUE_UNAVAILABLE  # at once
        await h.idle()
        assert h.oms.live == {}
        assert not h.arming.is_armed()  # SAFE revokes arming
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert not v.approved and v.code is ErrorCode.SAFE_MODE


async def test_drawdown_uses_account_value_not_peak_pnl(tmp_path: Path) -> None:
    """Early in a session, peak P&L 0.50 on a 10 000 account, then a loss of 5: drawdown 0.05 %, not 1000 %."""
    # the formula, by hand: peak equity 10 000.50, equity 9 995.50 -> 5 / 10 000.50
    assert drawdown(D("10000.50"), D("9995.50")) == D(5) / D("10000.50")
    assert D(5) / D("0.50") == 10  # the old bug: dividing by peak P&L reads 1000 %
    dd = DrawdownLimits(throttle_at=D("0.02"), release_at=D("0.01"), throttle_scale=D("0.5"), kill_at=D("0.05"))
    lim = limits(account_value=D("10000"), drawdown=dd, max_position_qty=D("1"))
    async with Harness(lim, tmp_path=tmp_path) as h:
        await h.px("59999.99", "60000.01")
        await h.place(h.intent(Side.BUY, "0.01"))  # filled at 60000.01 (no fee)
        await h.px("60050.01", "60050.03", advance_ms=200)  # mid 60050.02: +0.5001 (the peak)
        await h.px("59550", "59550.02", advance_ms=200)  # mid 59550.01: -4.5000
        await h.idle(advance_ms=100)  # P&L-based checks run every eval_interval_ms (and after fills)
        g = h.risk.drawdown.scopes["*"]
        assert g.peak == D("10000.5001") and g.last == (D("10000.5001") - D("9995.5000")) / D("10000.5001")
        assert g.last < D("0.0005")  # 0.05 %
        assert h.safety.state is TradingState.ACTIVE and not h.audit.transitions("throttle") and not h.audit.transitions("drawdown")
        assert h.runtime.advice("s1", BTC).size_scale == 1


async def test_drawdown_waits_for_equity_to_be_observed(tmp_path: Path) -> None:
    """No configured account value: the start value is 1000 USDT + 0.1 BTC at the first mark; before it, no drawdown."""
    account = AccountValue({"USDT": D("1000"), "BTC": D("0.1")}, "USDT", {"BTC": BTC})
    async with Harness(limits(account_value=None), tmp_path=tmp_path, account=account) as h:
        await h.idle(advance_ms=1000)
        assert not h.risk.drawdown.observed and not h.audit.transitions("baseline")
        await h.px("59999.99", "60000.01", advance_ms=200)
        await h.idle(advance_ms=200)
        assert h.risk.drawdown.start_equity == D("7000.000")  # 1000 + 0.1 x 60000
        assert h.audit.transitions("baseline")[0]["to_state"] == "OBSERVED"


async def test_resume_after_an_automated_kill_waits_for_the_cooldown_and_rebases(tmp_path: Path) -> None:
    dd = DrawdownLimits(throttle_at=D("0.02"), release_at=D("0.01"), throttle_scale=D("0.5"), kill_at=D("0.05"))
    lim = limits(account_value=D("1000"), drawdown=dd, max_position_qty=D("10"), max_trade_qty=D("0.5"), max_order_notional=D("10000"),
                 loss=LossLimits(max_daily_loss=D("900"), max_daily_loss_per_strategy=D("900"), max_portfolio_loss=D("900"), strategy_loss_kill=D("900")))
    async with Harness(lim, tmp_path=tmp_path) as h:
        for name in ("positions_reconciled", "incident_recorded"):
            h.safety.provide_check(name, lambda name=name: __import__("bot.risk.safety", fromlist=["Check"]).Check(name, True))
        await h.px("9999.99", "10000.01")
        h.portfolio.apply_fill(Fill("x1", "c", None, "sim", BTC, Side.BUY, D("1"), D("10000"), D("0"), "USDT", D("0"), False, 0, strategy_id="other"))
        await h.px("9949.99", "9950.01")  # 5 % drawdown
        await h.idle(advance_ms=100)
        assert h.safety.state is TradingState.REDUCING
        assert h.portfolio.qty(BTC) == D("0.5")  # the first slice (max_trade_qty) went in the same iteration
        await h.idle(advance_ms=999)
        assert h.portfolio.qty(BTC) == D("0.5")  # gradually: one slice per flatten.interval_s
        await h.idle(advance_ms=1)
        assert h.portfolio.qty(BTC) == 0 and [r["to_state"] for r in h.audit.transitions("flatten")] == ["STARTED", "DONE"]
        await h.confirm_limits("alice")
        ok, checks = await h.resume("alice")
        assert not ok and [c.name for c in checks if not c.ok] == ["kill_cooldown_elapsed"]
        await h.idle(advance_ms=600_000)
        await h.confirm_limits("alice")
        ok, _ = await h.resume("alice")
        assert ok and h.safety.state is TradingState.ACTIVE
        await h.idle(advance_ms=200)
        assert h.safety.state is TradingState.ACTIVE  # the peak was re-based: the old drawdown does not re-fire
        assert h.audit.transitions("baseline")[-1]["to_state"] == "REBASED"
        v, _ = await h.check(h.intent(Side.BUY, "0.01", "9000", order_type=OrderType.LIMIT))
        assert v.approved
