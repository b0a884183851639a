"""Manual orders: an operator's order parameters become exactly one intent (``/intent manual ...``).

    order = ManualOrder.parse("buy BTC/USDT 0.01 limit 60000")        # or .parse(["buy", "BTC/USDT", ...])
    outcomes = await engine.call(lambda: engine.propose("manual", order))

Grammar (case-insensitive words, exact decimal numbers; nothing is rounded behind the operator's back):

    buy|sell ASSET QTY market
    buy|sell ASSET QTY limit PRICE [gtc|ioc|fok]
    buy|sell ASSET QTY maker PRICE                 (post-only: rejected by the venue if it would take)

The intent goes through the same pipeline as any strategy's: audited, checked by risk, then staged for the
operator's confirmation in LIVE (executed at once against the simulated venue in DRY_RUN). A quantity or
price off the instrument's grid, or below its minimum notional, is refused with the reason, never adjusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.intent import Intent, OrderType, Side, TimeInForce, Urgency
from bot.domain.money import to_decimal
from bot.engine.strategy import Strategy, StrategyContext

USAGE = "usage: buy|sell ASSET QTY market | buy|sell ASSET QTY limit PRICE [gtc|ioc|fok] | buy|sell ASSET QTY maker PRICE"


class ManualOrderError(ValueError):
    """The operator's order cannot be turned into an intent; the message says why (and the usage)."""


@dataclass(frozen=True, slots=True)
class ManualOrder:
    side: Side
    asset: str
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    tif: TimeInForce = TimeInForce.GTC

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ManualOrderError(f"quantity must be positive, got {self.qty}")
        if self.order_type is OrderType.MARKET:
            if self.limit_price is not None:
                raise ManualOrderError("a market order takes no price")
            if self.tif is not TimeInForce.GTC:
                raise ManualOrderError("a market order takes no time in force")
        else:
            if self.limit_price is None or self.limit_price <= 0:
                raise ManualOrderError(f"a {self.order_type.value.lower()} order needs a positive price")
            if self.order_type is OrderType.LIMIT_MAKER and self.tif is not TimeInForce.GTC:
                raise ManualOrderError("a maker (post-only) order rests: it takes no time in force")

    @classmethod
    def parse(cls, text: str | Sequence[str]) -> ManualOrder:
        words = text.split() if isinstance(text, str) else [w for part in text for w in str(part).split()]
        if len(words) < 4:
            raise ManualOrderError(f"too few words ({len(words)}); {USAGE}")
        side_word, asset_word, qty_word, kind, *rest = words
        side = {"buy": Side.BUY, "sell": Side.SELL}.get(side_word.lower())
        if side is None:
            raise ManualOrderError(f"expected buy or sell, got {side_word!r}; {USAGE}")
        asset = asset_word.upper()
        if asset.count("/") != 1 or not all(asset.split("/")):
            raise ManualOrderError(f"asset {asset_word!r} must look like BASE/QUOTE, e.g. BTC/USDT")
        qty = _number(qty_word, "quantity")
        kind = kind.lower()
        if kind == "market":
            if rest:
                raise ManualOrderError(f"unexpected {' '.join(rest)!r} after 'market'; {USAGE}")
            return cls(side, asset, qty, OrderType.MARKET)
        if kind not in ("limit", "maker"):
            raise ManualOrderError(f"expected market, limit or maker, got {kind!r}; {USAGE}")
        if not rest:
            raise ManualOrderError(f"a {kind} order needs a price; {USAGE}")
        price = _number(rest[0], "price")
        tif = TimeInForce.GTC
        if len(rest) > 1:
            if kind == "maker" or len(rest) > 2:
                raise ManualOrderError(f"unexpected {' '.join(rest[1:])!r}; {USAGE}")
            try:
                tif = TimeInForce(rest[1].upper())
            except ValueError:
                raise ManualOrderError(f"time in force must be gtc, ioc or fok, got {rest[1]!r}") from None
        return cls(side, asset, qty, OrderType.LIMIT if kind == "limit" else OrderType.LIMIT_MAKER, price, tif)

    def text(self) -> str:
        """The canonical form, parseable by ``parse``: "buy BTC/USDT 0.01 limit 60000 gtc"."""
        head = f"{self.side.value.lower()} {self.asset} {format(self.qty, 'f')}"
        if self.order_type is OrderType.MARKET:
            return f"{head} market"
        if self.order_type is OrderType.LIMIT_MAKER:
            return f"{head} maker {format(self.limit_price, 'f')}"
        return f"{head} limit {format(self.limit_price, 'f')} {self.tif.value.lower()}"


def _number(word: str, what: str) -> Decimal:
    try:
        value = to_decimal(word, field=what)
    except ValueError as exc:
        raise ManualOrderError(str(exc)) from None
    if value <= 0:
        raise ManualOrderError(f"{what} must be positive, got {word}")
    return value


class ManualStrategy(Strategy):
    """Emits nothing on market data; turns each operator request into one intent."""

    name = "manual"
    wants_ticks = False

    def __init__(self, strategy_id: str, params: object, assets: Sequence[str]) -> None:
        super().__init__(strategy_id, params or {}, assets)  # type: ignore[arg-type]
        if self.params:
            raise ValueError(f"manual: takes no parameters, got {sorted(self.params)}")

    def on_tick(self, ctx: StrategyContext) -> list[Intent]:
        return []

    def on_request(self, ctx: StrategyContext, request: object) -> list[Intent]:
        order = request if isinstance(request, ManualOrder) else ManualOrder.parse(request)  # type: ignore[arg-type]
        if order.asset not in self.assets:
            raise ManualOrderError(f"{order.asset} is not traded by {self.strategy_id} (assets: {', '.join(self.assets)})")
        inst = ctx.instrument(order.asset)
        failure = inst.check_order(order.qty, order.limit_price)
        if failure is not None:
            raise ManualOrderError(f"{failure.message} (nothing was rounded: correct the order and send it again)")
        if order.order_type is OrderType.MARKET:
            last = ctx.last(order.asset)
            if last is None:
                raise ManualOrderError(f"no market data for {order.asset} yet: a market order has no reference price")
            notional = inst.notional(order.qty, last.mid)
            if notional < inst.min_notional:
                raise ManualOrderError(f"notional {notional} at the mid is below the minimum {inst.min_notional}")
        return [
            ctx.place(
                order.asset, order.side, order.qty, price=order.limit_price, order_type=order.order_type, tif=order.tif,
                urgency=Urgency.HIGH if order.order_type is OrderType.MARKET else Urgency.NORMAL,
                risk_tags=("manual",), rationale=f"operator: {order.text()}", tag="manual",
            )
        ]
