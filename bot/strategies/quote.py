"""Market-making quotes (reference card 01): bid = mid - spread/2 - skew, ask = mid + spread/2 - skew,
skew = k * inventory / cap (long -> both quotes lower, to encourage selling).

Quotes never cross the book, are rounded to the tick (bids down, asks up), and the side that would grow
inventory past the cap is not quoted. Quotes are replaced (cancel + place) when the desired price moves by
at least ``requote_ticks`` ticks, at most once per ``min_requote_ms`` of event time.

Risk advice (``ctx.advice``): in PULL the strategy cancels its quotes and places none; in WIDEN it multiplies
its spread by ``spread_mult``; ``size_scale`` (the drawdown throttle) scales its order size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.domain.intent import Intent, OrderType, Side
from bot.domain.money import ceil_to_step, floor_to_step, to_decimal
from bot.engine.strategy import Strategy, StrategyContext
from bot.risk.advice import QuoteMode


class QuoteStrategy(Strategy):
    name = "quote"

    def __init__(self, strategy_id: str, params: Mapping[str, Any], assets: Sequence[str]) -> None:
        super().__init__(strategy_id, params, assets)
        p = dict(params)
        self.order_qty = _positive(p.pop("order_qty", "0.001"), "order_qty")
        self.spread_bps = _positive(p.pop("spread_bps", "10"), "spread_bps")
        self.k = to_decimal(p.pop("k", "0.3"), field="k")
        self.inventory_cap = _positive(p.pop("inventory_cap", "0.01"), "inventory_cap")
        self.requote_ticks = int(p.pop("requote_ticks", 1))
        self.min_requote_ns = int(p.pop("min_requote_ms", 1000)) * 1_000_000
        if p:
            raise ValueError(f"quote: unknown parameter(s) {sorted(p)}")
        if not 0 <= self.k <= 1:
            raise ValueError("quote: k must be between 0 and 1")
        self._last_quote_ns: dict[str, int] = {}

    def desired(
        self, mid: Decimal, inventory: Decimal, tick: Decimal, best_bid: Decimal, best_ask: Decimal,
        spread_mult: Decimal = Decimal(1), qty: Decimal | None = None,
    ) -> tuple[Decimal | None, Decimal | None]:
        spread = mid * self.spread_bps * spread_mult / Decimal(10_000)
        qty = self.order_qty if qty is None else qty
        skew = self.k * (inventory / self.inventory_cap) * spread
        bid = floor_to_step(mid - spread / 2 - skew, tick)
        ask = ceil_to_step(mid + spread / 2 - skew, tick)
        bid = min(bid, best_bid)  # never cross: a bid above the best bid would take the ask side's place
        ask = max(ask, best_ask)
        if bid >= best_ask:
            bid = best_ask - tick
        if ask <= best_bid:
            ask = best_bid + tick
        can_buy = inventory + qty <= self.inventory_cap
        can_sell = inventory - qty >= -self.inventory_cap
        return (bid if can_buy else None), (ask if can_sell else None)

    def on_tick(self, ctx: StrategyContext) -> list[Intent]:
        tick = ctx.tick
        assert tick is not None
        advice = ctx.advice(tick.asset)
        inst = ctx.instrument(tick.asset)
        qty = inst.round_qty(self.order_qty * advice.size_scale) if advice.size_scale != 1 else self.order_qty
        if advice.mode is QuoteMode.PULL or qty <= 0:
            return [ctx.cancel(o, rationale=f"pull quotes: {advice.reason}") for o in ctx.open_orders(tick.asset) if o.tag in ("bid", "ask")]
        last = self._last_quote_ns.get(tick.asset)
        if last is not None and tick.ts_local_ns - last < self.min_requote_ns:
            return []
        bid, ask = self.desired(tick.mid, ctx.position(tick.asset), inst.tick_size, tick.bid, tick.ask, advice.spread_mult, qty)
        out: list[Intent] = []
        threshold = inst.tick_size * self.requote_ticks
        for side, price in ((Side.BUY, bid), (Side.SELL, ask)):
            tag = "bid" if side is Side.BUY else "ask"
            current = [o for o in ctx.open_orders(tick.asset) if o.tag == tag]
            keep = price is not None and any(o.limit_price is not None and abs(o.limit_price - price) < threshold for o in current)
            if keep:
                continue
            out.extend(ctx.cancel(o, rationale=f"requote {tag}") for o in current)
            if price is not None:
                out.append(
                    ctx.place(
                        tick.asset, side, qty, price=price, order_type=OrderType.LIMIT, tag=tag, risk_tags=("quote",),
                        rationale=f"{tag} {price} mid={tick.mid} inv={ctx.position(tick.asset)}"
                        + (f" {advice.mode.value} {advice.reason}" if advice.mode is not QuoteMode.NORMAL else ""),
                    )
                )
        if out:
            self._last_quote_ns[tick.asset] = tick.ts_local_ns
        return out


def _positive(value: object, name: str) -> Decimal:
    d = to_decimal(value, field=f"quote.{name}")
    if d <= 0:
        raise ValueError(f"quote: {name} must be positive, got {d}")
    return d
