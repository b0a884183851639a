"""Backtest statistics against hand-worked numbers: drawdown over the account value, Sharpe, slippage, fill ratio."""

from __future__ import annotations

import math
from decimal import Decimal as D

from bot.domain.fill import Fill
from bot.domain.intent import Intent, OrderType, Side, TimeInForce
from bot.domain.market import Tick
from bot.domain.order import Order, OrderStatus
from bot.engine.backtest_stats import StatsCollector

SEC = 1_000_000_000
T0 = 1_767_225_600 * SEC


def tick(ts: int) -> Tick:
    return Tick("X/USD", D("99.99"), D("1"), D("100.01"), D("1"), ts, ts, 1, "sim")


def order(coid: str, side: Side, qty: str, status: OrderStatus = OrderStatus.ACCEPTED) -> Order:
    return Order(coid, "i", "s", "sim", "X/USD", side, D(qty), OrderType.LIMIT, D("100"), TimeInForce.GTC, 0, status=status)


def fill(coid: str, side: Side, qty: str, price: str, fee: str, maker: bool) -> Fill:
    return Fill(coid + "f", coid, "v", "sim", "X/USD", side, D(qty), D(price), D(fee), "USD", D(fee), maker, 0)


def test_drawdown_is_measured_against_the_account_value_not_the_peak_pnl() -> None:
    pnl = iter([D(0), D(10), D(4), D(12), D(-3), D(5)])
    c = StatsCollector(lambda: next(pnl), lambda a: D(100), lambda: D(10_000))
    for i in range(6):
        c.on_tick(tick(T0 + i * SEC))
    s = c.stats
    # peak 12 then -3: the largest fall is 15 USD = 0.15 % of a 10,000 USD account (not 125 % of the peak PnL)
    assert s.max_drawdown == D(15) and s.peak_pnl == D(12) and s.max_drawdown_pct == 0.15
    assert s.account_value == D(10_000)


def test_sharpe_from_minute_returns_annualised_24_7() -> None:
    values = [D(0), D(10), D(5), D(20)]
    pnl = iter(values)
    c = StatsCollector(lambda: next(pnl), lambda a: None, lambda: D(10_000), sample_ns=60 * SEC)
    for i in range(4):
        c.on_tick(tick(T0 + i * 60 * SEC))
    returns = [0.001, -0.0005, 0.0015]  # PnL changes over the 10,000 account
    mean = sum(returns) / 3
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)
    sharpe = c.stats.sharpe()
    assert sharpe is not None and math.isclose(sharpe, mean / std * math.sqrt(525_600))
    flat = iter([D(0)] * 5)
    c2 = StatsCollector(lambda: next(flat), lambda a: None, lambda: D(10_000), sample_ns=60 * SEC)
    for i in range(5):
        c2.on_tick(tick(T0 + i * 60 * SEC))
    assert c2.stats.sharpe() is None  # no variation: no Sharpe rather than a division by zero


def test_slippage_fill_ratio_and_fees() -> None:
    c = StatsCollector(lambda: D(0), lambda a: D("100"), lambda: D(10_000))
    buy, sell, idle = order("b", Side.BUY, "2"), order("s", Side.SELL, "1"), order("n", Side.BUY, "1")
    for o in (buy, sell, idle):
        c.on_submit(Intent("i", 0, "s", "X/USD", o.side, o.qty), o)  # arrival mid 100 for all three
    c.on_fill(fill("b", Side.BUY, "1", "100.5", "0.2", False), buy)  # taker: paid 0.5 per unit
    buy.status = OrderStatus.FILLED
    c.on_fill(fill("b2", Side.BUY, "1", "100.3", "0.2", False), buy)
    c.on_fill(fill("s", Side.SELL, "1", "100.1", "0.05", True), sell)  # maker: earned 0.1 selling above the mid
    s = c.stats
    assert (s.orders, s.fills, s.orders_filled) == (3, 3, 2)
    assert s.fill_ratio == 2 / 3 and s.qty_fill_ratio == 0.75  # 3 of 4 units
    assert s.fees == D("0.45")
    assert s.taker_cost == D("0.8") and s.taker_notional == D("200")  # 0.5 + 0.3 on 200 of arrival notional
    assert s.maker_cost == D("-0.1") and s.slippage_cost == D("0.7")
    assert s.slippage_bps(s.taker_cost, s.taker_notional) == 40.0 and s.slippage_bps(s.maker_cost, s.maker_notional) == -10.0
