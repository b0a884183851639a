"""Triple barrier (seed 004) enforced by the engine, and what strategies learn from risk (ctx.advice)."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from bot.domain.fill import Fill
from bot.domain.intent import Barrier, OrderType, Side, TimeInForce
from bot.risk.advice import QuoteMode
from bot.risk.events import ScheduledEvent
from bot.risk.limits import DrawdownLimits, EventLimits
from bot.strategies.quote import QuoteStrategy
from tests.unit.risk_harness import BTC, T0, Harness, S, limits


def barrier_rows(h: Harness) -> list[tuple[str, str]]:
    return [(r["to_state"], r["reason"]) for r in h.audit.transitions("barrier")]


async def buy_with_barrier(h: Harness, barrier: Barrier, side: Side = Side.BUY) -> None:
    i = h.intent(side, "0.01", order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    v, order = await h.place(i.__class__(**{**{f: getattr(i, f) for f in i.__dataclass_fields__}, "barrier": barrier}))
    assert v.approved and order is not None and order.filled_qty == D("0.01")


async def test_take_profit_closes_the_long_through_risk(tmp_path: Path) -> None:
    async with Harness(tmp_path=tmp_path) as h:
        await h.px("59999.99", "60000.01")
        await buy_with_barrier(h, Barrier(take_profit_bps=D("10"), stop_loss_bps=D("20"), time_limit_s=600))
        # entry 60000.01: take-profit 60000.01 x 1.001 = 60060.01001, stop-loss x 0.998 = 59880.00998
        assert barrier_rows(h)[0][0] == "ARMED" and "take-profit 60060.01001" in barrier_rows(h)[0][1]
        await h.px("60060.00", "60060.02")  # bid 60060.00 < 60060.01001: not touched
        await h.px("59880.01", "59880.03")  # bid 59880.01 > 59880.00998: not touched
        assert h.portfolio.qty(BTC) == D("0.01") and [s for s, _ in barrier_rows(h)] == ["ARMED"]
        await h.px("60060.02", "60060.04")  # bid 60060.02 >= take-profit: exit at the bid
        assert [s for s, _ in barrier_rows(h)] == ["ARMED", "TRIGGERED", "DISARMED"]
        assert "take_profit" in barrier_rows(h)[1][1]
        assert h.portfolio.qty(BTC) == 0
        exit_verdict = [r for r in h.audit.of("risk_verdict") if r["stage"] == "barrier"]
        assert len(exit_verdict) == 1 and exit_verdict[0]["approved"]
        exit_order = [o for o in h.oms.orders.values() if o.tag == "exit"]
        assert len(exit_order) == 1 and exit_order[0].reduce_only and exit_order[0].side is Side.SELL
        assert exit_order[0].avg_price == D("60060.02")
        # realised: (60060.02 - 60000.01) x 0.01 = 0.6001
        assert h.portfolio.positions[BTC].realised_pnl == D("0.6001")


async def test_stop_loss_closes_the_short(tmp_path: Path) -> None:
    async with Harness(tmp_path=tmp_path) as h:
        await h.px("59999.99", "60000.01")
        await buy_with_barrier(h, Barrier(stop_loss_bps=D("20")), side=Side.SELL)  # short 0.01 at 59999.99
        # stop-loss for a short: 59999.99 x 1.002 = 60119.98998; tested on the ask
        await h.px("60119.97", "60119.98")
        assert h.portfolio.qty(BTC) == D("-0.01")
        await h.px("60119.98", "60119.99")
        assert h.portfolio.qty(BTC) == 0 and "stop_loss" in barrier_rows(h)[1][1]


async def test_time_limit_closes_even_without_a_tick(tmp_path: Path) -> None:
    async with Harness(tmp_path=tmp_path) as h:
        await h.px("59999.99", "60000.01")
        await buy_with_barrier(h, Barrier(time_limit_s=60))
        await h.idle(advance_ms=59_900)
        assert h.portfolio.qty(BTC) == D("0.01")
        await h.idle(advance_ms=100)  # 60 s after the fill: the time barrier, on the last known price
        assert h.portfolio.qty(BTC) == 0 and "time_limit" in barrier_rows(h)[1][1]


def test_barrier_values_are_validated() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Barrier()
    with pytest.raises(ValueError, match="take_profit_bps"):
        Barrier(take_profit_bps=D("0"))
    with pytest.raises(ValueError, match="time_limit_s"):
        Barrier(time_limit_s=0)
    b = Barrier(take_profit_bps=D("10"))
    from bot.domain.intent import Intent

    plain = Intent("i", 0, "s", BTC, Side.BUY, D("1"))
    with_barrier = Intent("i", 0, "s", BTC, Side.BUY, D("1"), barrier=b)
    assert "barrier" not in plain.canonical()  # intents without a barrier hash as before
    assert with_barrier.canonical()["barrier"] == {"take_profit_bps": "10", "stop_loss_bps": None, "time_limit_s": None}


def quote(h_params: dict | None = None) -> QuoteStrategy:
    params = {"order_qty": "0.002", "spread_bps": "20", "k": "0", "inventory_cap": "0.04", "min_requote_ms": "0"}
    params.update(h_params or {})
    return QuoteStrategy("q", params, (BTC,))


def quotes(h: Harness) -> dict[str, tuple[D | None, D]]:
    return {o.tag: (o.limit_price, o.qty) for o in h.oms.live.values()}


async def test_quote_strategy_widens_for_a_scheduled_event_then_re_tightens(tmp_path: Path) -> None:
    ev = EventLimits(widen_factor=D("3"), widen_min_bps=D("20"),
                     calendar=(ScheduledEvent("FOMC", T0 + 60 * S, 10 * S, 10 * S, frozenset(), QuoteMode.WIDEN),))
    async with Harness(limits(events=ev), [quote()], tmp_path=tmp_path) as h:
        await h.px("59999.99", "60000.01")
        assert quotes(h) == {"bid": (D("59940.00"), D("0.002")), "ask": (D("60060.00"), D("0.002"))}  # mid -+ 10 bps
        for _ in range(50):  # 50 s: the window opens at 50 s
            await h.px("59999.99", "60000.01", advance_ms=1000)
        assert h.audit.transitions("event")[-1]["to_state"] == "WIDEN"
        assert quotes(h) == {"bid": (D("59820.00"), D("0.002")), "ask": (D("60180.00"), D("0.002"))}  # 3 x: -+ 30 bps
        assert not [r for r in h.audit.of("risk_verdict") if not r["approved"]]  # wide enough: nothing refused
        for _ in range(20):
            await h.px("59999.99", "60000.01", advance_ms=1000)
        assert h.audit.transitions("event")[-1]["to_state"] == "NORMAL"
        assert quotes(h) == {"bid": (D("59940.00"), D("0.002")), "ask": (D("60060.00"), D("0.002"))}


async def test_quote_strategy_pulls_on_a_jump_and_a_kill(tmp_path: Path) -> None:
    ev = EventLimits(jump_sigma=5, jump_window_s=5, jump_min_move_bps=10, jump_min_samples=20, jump_halflife_s=60, cooldown_s=30)
    async with Harness(limits(events=ev), [quote()], tmp_path=tmp_path) as h:
        for i in range(30):
            b = "60000" if i % 2 else "60006"
            await h.px(b, str(D(b) + D("0.02")), advance_ms=1000)
        assert set(quotes(h)) == {"bid", "ask"}
        await h.px("60100", "60100.02", advance_ms=1000)  # about 16 bps in a second on a ~1 bps market: a jump
        assert h.audit.transitions("event")[-1]["to_state"] == "PULL"
        assert quotes(h) == {}  # the strategy cancelled its quotes and placed none
        assert not [r for r in h.audit.of("risk_verdict") if not r["approved"]]  # it listened: nothing had to be refused
        await h.px("60100", "60100.02", advance_ms=30_000)
        assert set(quotes(h)) == {"bid", "ask"}  # re-tightened after the cooldown


async def test_quote_strategy_sizes_down_under_the_drawdown_throttle(tmp_path: Path) -> None:
    dd = DrawdownLimits(throttle_at=D("0.02"), release_at=D("0.01"), throttle_scale=D("0.5"), kill_at=D("0.5"))
    async with Harness(limits(account_value=D("100"), drawdown=dd), [quote()], tmp_path=tmp_path) as h:
        await h.px("59999.99", "60000.01")
        assert {q for _, q in quotes(h).values()} == {D("0.002")}
        # another strategy is long 0.004 at 60000 and the drop to 59500 also fills the quote's bid at 59940:
        # equity 100 - 2.00 - 0.88 = 97.12 -> drawdown 2.88 % >= throttle_at 2 %
        h.portfolio.apply_fill(Fill("x1", "c", None, "sim", BTC, Side.BUY, D("0.004"), D("60000"), D("0"), "USDT", D("0"), False, 0, strategy_id="other"))
        await h.px("59499.99", "59500.01", advance_ms=1000)
        await h.idle(advance_ms=100)
        assert h.audit.transitions("throttle")[-1]["to_state"] == "ON" and "2.8800%" in h.audit.transitions("throttle")[-1]["reason"]
        advice = h.runtime.advice("q", BTC)
        assert advice.size_scale == D("0.5") and advice.mode is QuoteMode.NORMAL
        await h.px("59499.99", "59500.01", advance_ms=1000)
        assert {q for _, q in quotes(h).values()} == {D("0.001")}  # requoted at half size
