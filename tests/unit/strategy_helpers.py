"""A strategy context without an engine: market state, portfolio and open orders set by the test."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bot.domain.fill import Fill
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import Side
from bot.domain.market import Tick
from bot.domain.order import Order
from bot.domain.position import Portfolio
from bot.engine.market_state import MarketState
from bot.engine.strategy import Strategy, StrategyContext

MINUTE = 60_000_000_000
BTC = Instrument(
    "BTC/USDT", "sim", "BTCUSDT", "BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal("0.00001"), Decimal("5"),
    fees=FeeModel(Decimal("0.001"), Decimal("0.001")),
)


class Harness:
    def __init__(self, strategy: Strategy, instruments: Mapping[str, Instrument] | None = None) -> None:
        self.strategy = strategy
        self.market = MarketState()
        self.portfolio = Portfolio()
        self.orders: list[Order] = []
        self._n = 0
        self.ctx = StrategyContext(
            strategy.strategy_id, self.market, self.portfolio, self._live, instruments or {"BTC/USDT": BTC}, self._next_id, strategy.params
        )
        self.seq = 0

    def _live(self, strategy_id: str | None, asset: str | None) -> list[Order]:
        return [o for o in self.orders if asset is None or o.asset == asset]

    def _next_id(self) -> str:
        self._n += 1
        return f"t-{self._n}"

    def set_inventory(self, qty: str, asset: str = "BTC/USDT", price: str = "60000") -> None:
        pos = self.portfolio.strategy_position(self.strategy.strategy_id, asset)
        delta = Decimal(qty) - pos.qty
        if delta:
            pos.apply(delta, Decimal(price))

    def tick(self, bid: str, ask: str, ts_ns: int, *, asset: str = "BTC/USDT", size: str = "1") -> list[Any]:
        self.seq += 1
        t = Tick(asset, Decimal(bid), Decimal(size), Decimal(ask), Decimal(size), ts_ns, ts_ns, self.seq, "sim")
        self.market.update(t, ts_ns)
        self.ctx.event_ns = ts_ns
        self.ctx.tick = t
        return self.strategy.on_tick(self.ctx)

    def fill(self, side: Side, qty: str, price: str, asset: str = "BTC/USDT") -> list[Any]:
        self.seq += 1
        f = Fill(f"f{self.seq}", "c", "v", "sim", asset, side, Decimal(qty), Decimal(price), Decimal(0), "USDT", Decimal(0), True, 0,
                 "i", self.strategy.strategy_id)
        self.portfolio.apply_fill(f)
        return self.strategy.on_fill(self.ctx, f)
