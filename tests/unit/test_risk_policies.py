"""Each policy of the matrix: just under its threshold passes, at (or, for inclusive maxima, just over) it blocks,
with the code, the policy and its inputs in the audited ``risk_verdict`` row. Real engine, simulated venue,
injected clock; every number hand-worked in the comments."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.intent import IntentKind, OrderType, Side, TimeInForce
from bot.domain.venue import VenueError
from bot.risk.limits import CooldownLimits, DrawdownLimits, EventLimits, LatencyLimits, LossLimits, SlippageLimits, StaleLimits
from bot.risk.safety import TradingState
from tests.unit.risk_harness import BTC, MS, T0, Harness, S, limits

MID = ("59999.99", "60000.01")  # mid 60000.00


def fill(h: Harness, side: Side, qty: str, price: str, sid: str = "s1", fee: str = "0", n: int = 1) -> None:
    """Put a position on the books directly (a fill the venue reported), for loss scenarios."""
    h.portfolio.apply_fill(Fill(f"x-{sid}-{n}", "c", None, "sim", BTC, side, D(qty), D(price), D(fee), "USDT", D(fee), False,
                                h.clock.now_ns(), strategy_id=sid))
    h.supervisor.pnl_dirty = True


def assert_blocked(verdict, row, policy: str, code: ErrorCode = ErrorCode.RISK_BLOCKED) -> None:
    assert not verdict.approved, row
    assert row["approved"] is False and row["code"] == code.value
    assert row["inputs"]["policy"] == policy, row


async def test_max_trade_size_is_inclusive(tmp_path: Path) -> None:
    async with Harness(limits(max_trade_qty=D("0.02")), tmp_path=tmp_path) as h:
        await h.px(*MID)
        v, row = await h.check(h.intent(Side.BUY, "0.02", "59000"))  # the maximum itself is allowed
        assert v.approved and row["approved"] and row["inputs"]["qty"] == D("0.02")
        v, row = await h.check(h.intent(Side.BUY, "0.02001", "59000"))  # one lot over
        assert_blocked(v, row, "max_trade_size")
        assert row["inputs"]["qty"] == D("0.02001") and row["inputs"]["max_trade_qty"] == D("0.02")


async def test_max_notional_is_inclusive(tmp_path: Path) -> None:
    async with Harness(limits(max_order_notional=D("1000")), tmp_path=tmp_path) as h:
        await h.px(*MID)
        v, row = await h.check(h.intent(Side.BUY, "0.02", "50000"))  # 0.02 x 50000 = 1000.00
        assert v.approved and row["inputs"]["notional"] == D("1000.00")
        v, row = await h.check(h.intent(Side.BUY, "0.02", "50000.01"))  # 1000.0002
        assert_blocked(v, row, "max_notional")
        assert row["inputs"]["notional"] == D("1000.0002") and row["inputs"]["max_order_notional"] == D("1000")


async def test_max_position_counts_fills_resting_and_in_flight_orders(tmp_path: Path) -> None:
    class Unknown:
        """A venue whose answer to one submit is lost and whose lookup fails: the order stays in flight."""

        name = "sim"

        def __init__(self, inner) -> None:
            self.inner = inner
            self.lose_next = False

        def __getattr__(self, n):
            return getattr(self.inner, n)

        async def place_order(self, request):
            if self.lose_next:
                self.lose_next = False
                raise VenueError(ErrorCode.UNKNOWN_ORDER_STATUS, "timeout")
            return await self.inner.place_order(request)

        async def fetch_order(self, asset, coid):
            raise VenueError(ErrorCode.VENUE_UNAVAILABLE, "down")

    h0 = Harness(tmp_path=tmp_path)  # only to build the simulated venue with its clock
    venue = Unknown(h0.sim)
    async with Harness(limits(max_position_qty=D("0.05")), tmp_path=tmp_path, venue=venue) as h:
        venue.inner = h.sim
        h.sim.set_report_sink(h.engine.on_report)
        await h.px(*MID)
        await h.place(h.intent(Side.BUY, "0.01"))  # filled: position 0.01
        await h.place(h.intent(Side.BUY, "0.02", "59000"))  # resting: +0.02
        venue.lose_next = True
        await h.place(h.intent(Side.BUY, "0.01", "59000"))  # in flight (PENDING_SUBMIT): +0.01
        assert h.portfolio.qty(BTC) == D("0.01")
        assert h.oms.open_exposure(BTC) == (D("0.03"), D("0"))
        v, row = await h.check(h.intent(Side.BUY, "0.01", "58000"))  # 0.01 + 0.03 + 0.01 = 0.05: at the cap
        assert v.approved and row["inputs"]["worst_case"] == D("0.05")
        v, row = await h.check(h.intent(Side.BUY, "0.01001", "58000"))  # 0.05001
        assert_blocked(v, row, "max_position")
        assert (row["inputs"]["position"], row["inputs"]["resting_buy"], row["inputs"]["worst_case"]) == (D("0.01"), D("0.03"), D("0.05001"))
        v, row = await h.check(h.intent(Side.SELL, "0.02", "61000"))  # the other side: 0.01 - 0.02 = -0.01, fine
        assert v.approved


async def test_slippage_from_l1_and_size(tmp_path: Path) -> None:
    # bid 59880.01 / ask 60119.99: mid 60000; a market buy inside the ask size pays the ask:
    # (60119.99 - 60000) / 60000 x 10000 = 19.99833 bps < 20 -> passes
    async with Harness(limits(slippage=SlippageLimits(max_bps=D("20"), unknown_depth_bps=D("50"))), tmp_path=tmp_path) as h:
        await h.px("59880.01", "60119.99", size="0.01")
        v, row = await h.check(h.intent(Side.BUY, "0.01"))
        assert v.approved and D("19.99") < row["inputs"]["slippage_bps"] < D("20")
        # bid 59880 / ask 60120: exactly 20 bps -> blocked
        await h.px("59880", "60120", size="0.01")
        v, row = await h.check(h.intent(Side.BUY, "0.01"))
        assert_blocked(v, row, "slippage")
        assert row["inputs"]["slippage_bps"] == D("20")
        # size beyond the displayed 0.01 with no L2: the rest is assumed 50 bps past the ask
        await h.px("59999.99", "60000.01", size="0.01")
        v, row = await h.check(h.intent(Side.BUY, "0.02"))
        assert_blocked(v, row, "slippage")
        assert row["inputs"]["beyond_known_depth"] == D("0.01")
        # a passive limit expects no slippage whatever its size
        v, row = await h.check(h.intent(Side.BUY, "0.02", "59999.99"))
        assert v.approved and row["inputs"]["slippage_bps"] == 0


async def test_daily_loss_global_blocks_at_cap(tmp_path: Path) -> None:
    lim = limits(loss=LossLimits(max_daily_loss=D("10"), max_daily_loss_per_strategy=D("100"), max_portfolio_loss=D("1000"), strategy_loss_kill=D("1000")))
    async with Harness(lim, tmp_path=tmp_path) as h:
        await h.px(*MID)
        fill(h, Side.BUY, "0.01", "60000", sid="other")  # long 0.01 @ 60000 (another strategy: the account's loss)
        # mid 59000.01: unrealised (59000.01 - 60000) x 0.01 = -9.9999: loss under 10 -> new risk passes
        await h.px("59000", "59000.02")
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert v.approved
        # mid 59000.00: -10.00 = the cap -> the policy blocks at once (the check computes P&L live)
        await h.send(h.tick("58999.99", "59000.01"))
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert_blocked(v, row, "max_daily_loss")
        assert row["inputs"]["daily_pnl"] == D("-10.00") and row["inputs"]["max_daily_loss"] == D("10")
        # within eval_interval_ms the supervisor kills: SAFE, locked until the next trading day
        await h.idle(advance_ms=100)
        assert h.safety.state is TradingState.SAFE
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert_blocked(v, row, "trading_state", ErrorCode.SAFE_MODE)
        rows = [r for r in h.audit.transitions("daily_loss") if r["scope"] == "global"]
        assert rows and rows[0]["to_state"] == "LOCKED" and "daily loss 10 >= max_daily_loss 10" in rows[0]["reason"]
        # and flattened in the same iteration (one slice: 0.01 <= max_trade_qty, inside the displayed bid size)
        assert [r["to_state"] for r in h.audit.transitions("flatten")] == ["STARTED", "DONE"]
        assert h.portfolio.qty(BTC) == 0
        v, row = await h.check(h.intent(Side.SELL, "0.005", "58999.99"))  # now a sell would open a short: refused
        assert_blocked(v, row, "trading_state", ErrorCode.SAFE_MODE)


async def test_daily_loss_per_strategy_net_of_fees(tmp_path: Path) -> None:
    lim = limits(loss=LossLimits(max_daily_loss=D("100"), max_daily_loss_per_strategy=D("10"), max_portfolio_loss=D("1000"), strategy_loss_kill=D("1000")))
    async with Harness(lim, tmp_path=tmp_path) as h:
        await h.px(*MID)
        # s1 long 0.01 @ 60000 with a 0.50 fee; mid 59050.01: -9.4999 - 0.50 = -9.9999 -> passes
        fill(h, Side.BUY, "0.01", "60000", fee="0.50")
        await h.px("59050", "59050.02")
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert v.approved
        # mid 59050.00: -9.50 - 0.50 = -10.00 -> s1 blocked, other strategies are not
        await h.px("59049.99", "59050.01")
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert_blocked(v, row, "max_daily_loss_strategy")
        assert row["inputs"]["daily_pnl"] == D("-10.00") and row["inputs"]["scope"] == "strategy:s1"
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000", sid="s2"))
        assert v.approved
        await h.idle(advance_ms=100)  # the supervisor: s1 SAFE (its own scope) and flattened
        assert h.safety.strategy_state("s1") is TradingState.SAFE and h.safety.state is TradingState.ACTIVE
        assert [(r["scope"], r["to_state"]) for r in h.audit.transitions("flatten")] == [("strategy:s1", "STARTED"), ("strategy:s1", "DONE")]
        assert h.portfolio.strategy_position("s1", BTC).qty == 0


async def test_portfolio_loss_limit_halts_all(tmp_path: Path) -> None:
    lim = limits(loss=LossLimits(max_daily_loss=D("1000"), max_daily_loss_per_strategy=D("1000"), max_portfolio_loss=D("20"), strategy_loss_kill=D("1000")))
    async with Harness(lim, tmp_path=tmp_path) as h:
        await h.px(*MID)
        fill(h, Side.BUY, "0.02", "60000")
        await h.px("58999.99", "59000.03")  # mid 59000.01: -19.9998 -> passes
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert v.approved and h.safety.state is TradingState.ACTIVE
        await h.px("58999.99", "59000.01")  # mid 59000.00: -20.00 -> blocked at once
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert_blocked(v, row, "portfolio_loss")
        assert row["inputs"]["session_pnl"] == D("-20.00")
        await h.idle(advance_ms=100)  # ... and HALTED: nothing new at all
        assert h.safety.state is TradingState.HALTED
        v, row = await h.check(h.intent(Side.SELL, "0.001", "59500"))  # even reducing: halted means hold
        assert_blocked(v, row, "trading_state")


async def test_strategy_loss_kill_halts_that_strategy_only(tmp_path: Path) -> None:
    lim = limits(loss=LossLimits(max_daily_loss=D("1000"), max_daily_loss_per_strategy=D("1000"), max_portfolio_loss=D("1000"), strategy_loss_kill=D("15")))
    async with Harness(lim, tmp_path=tmp_path) as h:
        await h.px(*MID)
        fill(h, Side.BUY, "0.01", "60000")
        await h.px("58500", "58500.02")  # -14.9999
        assert h.safety.strategy_state("s1") is TradingState.ACTIVE
        await h.px("58499.99", "58500.01")  # -15.00
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert_blocked(v, row, "strategy_loss_kill")
        assert row["inputs"]["session_pnl"] == D("-15.00")
        await h.idle(advance_ms=100)
        assert h.safety.strategy_state("s1") is TradingState.HALTED and h.safety.state is TradingState.ACTIVE
        v, row = await h.check(h.intent(Side.BUY, "0.001", "58000"))
        assert_blocked(v, row, "trading_state")
        assert row["inputs"]["scope"] == "strategy:s1"
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "58000", sid="s2"))
        assert v.approved
        breaker = [r for r in h.audit.transitions("breaker") if r["scope"] == "strategy:s1"]
        assert breaker and breaker[0]["to_state"] == "OPEN"  # the strategy's cooldown started too


async def test_cooldown_delays_a_strategy_then_lifts(tmp_path: Path) -> None:
    async with Harness(limits(cooldown=CooldownLimits(strategy_cooldown_s=60)), tmp_path=tmp_path) as h:
        await h.px(*MID)
        mono = h.clock.monotonic_ns()
        h.risk.breakers.strategy("s1").trip(mono, "test trigger")
        await h.idle(advance_ms=59_999)  # 59.999 s: still cooling down
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert_blocked(v, row, "cooldown")
        assert row["inputs"]["remaining_s"] == 0.001
        await h.idle(advance_ms=1)  # 60 s: the breaker closes (audited)
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved
        assert [r["to_state"] for r in h.audit.transitions("breaker")] == ["CLOSED"]


async def test_global_breaker_trips_on_a_burst_of_venue_errors(tmp_path: Path) -> None:
    lim = limits(cooldown=CooldownLimits(breaker_errors=3, breaker_window_s=10, global_cooldown_s=30, breaker_max_trips=2))
    async with Harness(lim, tmp_path=tmp_path) as h:
        await h.px(*MID)
        # a post-only buy at the ask would take: the venue rejects it
        bad = lambda: h.intent(Side.BUY, "0.001", "60000.01", order_type=OrderType.LIMIT_MAKER)  # noqa: E731
        for _ in range(2):
            await h.engine.call(lambda: h.engine.submit(bad()))
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved  # 2 errors: under the burst threshold
        await h.engine.call(lambda: h.engine.submit(bad()))  # the third
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert_blocked(v, row, "circuit_breaker")
        await h.idle(advance_ms=30_000)
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved
        for _ in range(3):  # a second burst: the second trip within the hour asks for a human
            await h.engine.call(lambda: h.engine.submit(bad()))
        assert h.safety.state is TradingState.HALTED


async def test_stale_asset_blocks_at_threshold(tmp_path: Path) -> None:
    async with Harness(limits(stale=StaleLimits(asset_stale_s=10, recover_s=5, all_stale_safe=False)), tmp_path=tmp_path) as h:
        await h.px(*MID)
        await h.idle(advance_ms=9_999)
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved
        await h.idle(advance_ms=1)
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert_blocked(v, row, "stale_data", ErrorCode.MARKET_DATA_STALE)
        assert row["inputs"]["age_s"] == 10.0


async def test_asset_allowlist_per_venue(tmp_path: Path) -> None:
    async with Harness(limits(allowed_assets={"sim": ("ETH/USDT",)}), tmp_path=tmp_path) as h:
        await h.px(*MID)
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert_blocked(v, row, "asset_allowlist")
        assert row["inputs"] == {"venue": "sim", "asset": BTC, "policy": "asset_allowlist"}


async def test_latency_throttle_halves_the_order_rate_and_block(tmp_path: Path) -> None:
    lat = LatencyLimits(window=10, min_samples=5, baseline_ms=10, degrade_ratio=2.0, hard_ms=100, order_rate_per_s=D("4"),
                        throttle_factor=D("0.5"), recover_ratio=1.5)
    async with Harness(limits(latency=lat), tmp_path=tmp_path) as h:
        await h.px(*MID)
        for _ in range(10):
            h.runtime.risk.latency.observe("sim", 19 * MS, h.clock.monotonic_ns())  # p95 19 ms < 2 x 10 ms
        assert h.risk.latency.state("sim").value == "NORMAL"
        for _ in range(3):
            await h.place(h.intent(Side.BUY, "0.001", "59000"))
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved  # normal: risk does not limit the rate (the OMS does)
        for _ in range(10):
            t = h.risk.latency.observe("sim", 20 * MS, h.clock.monotonic_ns())  # p95 20 ms = 2 x baseline
        assert h.risk.latency.state("sim").value == "THROTTLED" and t is None  # the transition came on the first at-threshold sample
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert_blocked(v, row, "latency_throttle")  # 3 orders within the last second; the throttled limit is 2/s
        assert row["inputs"]["orders_last_s"] == 3 and row["inputs"]["limit_per_s"] == 2
        await h.idle(advance_ms=1000)
        await h.place(h.intent(Side.BUY, "0.001", "59000"))
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved  # 1 in the last second: under 2
        for _ in range(10):
            h.risk.latency.observe("sim", 100 * MS, h.clock.monotonic_ns())  # p95 = the hard threshold
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert_blocked(v, row, "latency_block")
        assert row["inputs"]["p95_ms"] == 100.0


async def test_event_pull_after_a_jump(tmp_path: Path) -> None:
    ev = EventLimits(jump_sigma=5, jump_window_s=5, jump_min_move_bps=10, jump_min_samples=20, jump_halflife_s=60, cooldown_s=30)
    async with Harness(limits(events=ev), tmp_path=tmp_path) as h:
        # a quiet market alternating +-1 bps every second: variance rate ~ (1e-4)^2 per second
        for i in range(40):
            b = "60000" if i % 2 else "60006"
            await h.px(b, str(D(b) + D("0.02")), advance_ms=1000)
        assert h.risk.events.detector.warmed_up(BTC)
        # sigma over 5 s ~ 1e-4 x sqrt(5) = 2.2 bps; 5 sigma ~ 11 bps; a 12 bps jump within a second fires
        await h.px("60078", "60078.02", advance_ms=1000)
        rows = h.audit.transitions("event")
        assert rows and rows[-1]["to_state"] == "PULL", rows
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert_blocked(v, row, "event_pull")
        # 30 s of event time later the cooldown ends: re-tighten
        await h.px("60078", "60078.02", advance_ms=30_000)
        assert h.audit.transitions("event")[-1]["to_state"] == "NORMAL"
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59000"))
        assert v.approved


async def test_drawdown_throttle_reduces_size_then_kill_reduces(tmp_path: Path) -> None:
    dd = DrawdownLimits(throttle_at=D("0.02"), release_at=D("0.01"), throttle_scale=D("0.5"), kill_at=D("0.05"))
    lim = limits(account_value=D("1000"), drawdown=dd, max_position_qty=D("10"),
                 loss=LossLimits(max_daily_loss=D("900"), max_daily_loss_per_strategy=D("900"), max_portfolio_loss=D("900"), strategy_loss_kill=D("900")))
    async with Harness(lim, tmp_path=tmp_path) as h:
        await h.px("9999.99", "10000.01")
        fill(h, Side.BUY, "1", "10000", sid="other")  # long 1 @ 10000 on a 1000 account
        # mid 9980.01: equity 1000 - 19.99 = 980.01; peak 1000: drawdown 1.999% < 2% -> full size
        await h.px("9980", "9980.02")
        v, row = await h.check(h.intent(Side.BUY, "0.02", "9000"))
        assert v.approved and v.qty is None
        # mid 9980.00: 980.00 -> 2.000% = throttle_at: size x 0.5 (0.02 -> 0.01)
        await h.px("9979.99", "9980.01")
        await h.idle(advance_ms=100)
        v, row = await h.check(h.intent(Side.BUY, "0.02", "9000"))
        assert v.approved and v.qty == D("0.010") and row["inputs"]["throttled_from"] == D("0.02")
        # mid 9950.00: 950 -> 5% = kill_at: REDUCING, resting cancelled, flatten
        await h.px("9949.99", "9950.01")
        await h.idle(advance_ms=100)
        assert h.safety.state is TradingState.REDUCING
        assert [r["to_state"] for r in h.audit.transitions("flatten")][:1] == ["STARTED"]
        v, row = await h.check(h.intent(Side.BUY, "0.01", "9000"))
        assert_blocked(v, row, "trading_state")


async def test_cancels_always_pass_and_kill_blocks_everything_else(tmp_path: Path) -> None:
    async with Harness(tmp_path=tmp_path) as h:
        await h.px(*MID)
        h.kill_file.touch()
        await h.idle()
        v, row = await h.check(h.intent(Side.SELL, "0.001", "61000"))
        assert_blocked(v, row, "manual_kill", ErrorCode.KILL_SWITCH)
        cancel = replace(h.intent(Side.SELL, "0.001", "61000"), kind=IntentKind.CANCEL, target="t-0-0")
        v, _ = await h.check(cancel)
        assert v.approved


async def test_event_widen_blocks_quotes_too_close_to_mid(tmp_path: Path) -> None:
    from bot.risk.advice import QuoteMode
    from bot.risk.events import ScheduledEvent

    start = T0 + 60 * S  # 60 s after the harness start
    ev = EventLimits(widen_min_bps=D("20"), calendar=(ScheduledEvent("CPI", start, 10 * S, 10 * S, frozenset({BTC}), QuoteMode.WIDEN),))
    async with Harness(limits(events=ev), tmp_path=tmp_path) as h:
        await h.px(*MID)
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59990"))
        assert v.approved  # before the window
        await h.px(*MID, advance_ms=50_000)  # 50 s: the window opens 10 s before the release
        assert h.audit.transitions("event")[-1]["to_state"] == "WIDEN"
        assert h.s1.advice_seen[-1].mode is QuoteMode.WIDEN and h.s1.advice_seen[-1].spread_mult == D("3")
        # mid 60000: 20 bps = 120 -> a bid must be at or below 59880
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59880"))
        assert v.approved
        v, row = await h.check(h.intent(Side.BUY, "0.001", "59880.01"))
        assert_blocked(v, row, "event_widen")
        v, row = await h.check(h.intent(Side.BUY, "0.001", order_type=OrderType.MARKET, tif=TimeInForce.IOC))
        assert_blocked(v, row, "event_widen")
        await h.px(*MID, advance_ms=20_000)  # 70 s: 10 s after the release, the window closes
        assert h.audit.transitions("event")[-1]["to_state"] == "NORMAL"
        v, _ = await h.check(h.intent(Side.BUY, "0.001", "59990"))
        assert v.approved
