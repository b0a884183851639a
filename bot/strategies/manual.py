"""Manual orders: an operator's order parameters become exactly one intent (``/intent manual ...``).

    order = ManualOrder.parse("buy BTC/USDT 0.01 limit 60000")        # or .parse(["buy", "BTC/USDT", ...])
    outcomes = await engine.call(lambda: engine.propose("manual", order))

The one grammar of a manual order, here and in Telegram's ``/intent manual ...`` (case-insensitive words, exact
decimal numbers):

    buy|sell ASSET QTY market                              (never rests: time in force IOC)
    buy|sell ASSET QTY limit PRICE [gtc|ioc|fok|tif=...]
    buy|sell ASSET QTY maker|limit_maker|post PRICE        (post-only: rejected by the venue if it would take)

``on_request`` turns an order into exactly one intent, which goes through the same pipeline as any strategy's:
audited, checked by risk, then staged for the operator's confirmation in LIVE (executed at once against the
simulated venue in DRY_RUN). A quantity or price off the instrument's grid, or below its minimum notional, is
refused with the reason, never adjusted here: the Telegram command rounds to the grid first and shows the operator
what it rounded in the preview that has to be confirmed (docs/telegram.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.domain.instrument import Instrument
from bot.domain.intent import Intent, OrderType, Side, TimeInForce, Urgency
from bot.domain.money import to_decimal
from bot.engine.strategy import Strategy, StrategyContext

USAGE = "usage: buy|sell ASSET QTY market | buy|sell ASSET QTY limit PRICE [gtc|ioc|fok] | buy|sell ASSET QTY maker PRICE"
MANUAL = "manual"  # the strategy id the service runs it under (Telegram's /intent manual)
_ASSET = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$")
_KINDS = {"limit": OrderType.LIMIT, "maker": OrderType.LIMIT_MAKER, "limit_maker": OrderType.LIMIT_MAKER, "post": OrderType.LIMIT_MAKER}


class ManualOrderError(ValueError):
    """The operator's order cannot be turned into an intent; the message says why (and the usage)."""


@dataclass(frozen=True, slots=True)
class ManualOrder:
    side: Side
    asset: str
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None = None
    tif: TimeInForce | None = None  # None: GTC for a limit or maker order, IOC for a market order

    def __post_init__(self) -> None:
        if self.qty <= 0:
            raise ManualOrderError(f"quantity must be positive, got {self.qty}")
        if self.tif is None:
            object.__setattr__(self, "tif", TimeInForce.IOC if self.order_type is OrderType.MARKET else TimeInForce.GTC)
        if self.order_type is OrderType.MARKET:
            if self.limit_price is not None:
                raise ManualOrderError("a market order takes no price")
            if self.tif is not TimeInForce.IOC:
                raise ManualOrderError("a market order never rests: it takes no time in force")
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
            raise ManualOrderError(f"side must be buy or sell, got {side_word!r}; {USAGE}")
        asset = asset_word.upper()
        if not _ASSET.match(asset):
            raise ManualOrderError(f"asset {asset_word!r} must look like BASE/QUOTE, e.g. BTC/USDT")
        qty = _number(qty_word, "quantity")
        kind = kind.lower()
        if kind == "market":
            if rest:
                raise ManualOrderError(f"unexpected {' '.join(rest)!r} after 'market'; {USAGE}")
            return cls(side, asset, qty, OrderType.MARKET)
        order_type = _KINDS.get(kind)
        if order_type is None:
            raise ManualOrderError(f"order type must be market, limit or maker, got {kind!r}; {USAGE}")
        if not rest:
            raise ManualOrderError(f"a {kind} order needs a price; {USAGE}")
        price = _number(rest[0], "price")
        tif = TimeInForce.GTC
        if len(rest) > 1:
            if order_type is OrderType.LIMIT_MAKER or len(rest) > 2:
                raise ManualOrderError(f"unexpected {' '.join(rest[1:])!r}; {USAGE}")
            word = rest[1]
            if "=" in word:
                key, _, word = word.partition("=")
                if key.lower() != "tif":
                    raise ManualOrderError(f"unexpected {rest[1]!r}; {USAGE}")
            try:
                tif = TimeInForce(word.upper())
            except ValueError:
                raise ManualOrderError(f"time in force must be gtc, ioc or fok, got {word!r}") from None
        return cls(side, asset, qty, order_type, price, tif)

    def rounded(self, inst: Instrument) -> ManualOrder:
        """The order on the instrument's grid: quantity down to the lot, price to the tick on the passive side (a
        buy down, a sell up: never more aggressive). For a caller that shows the operator the result to confirm."""
        qty = inst.round_qty(self.qty)
        price = inst.round_price(self.limit_price, is_buy=self.side is Side.BUY) if self.limit_price is not None else None
        if qty == self.qty and price == self.limit_price:
            return self
        if qty <= 0:
            raise ManualOrderError(f"quantity {format(self.qty, 'f')} is below one lot ({format(inst.lot_size, 'f')})")
        if price is not None and price <= 0:
            raise ManualOrderError(f"price {format(self.limit_price, 'f')} is below one tick ({format(inst.tick_size, 'f')})")
        return ManualOrder(self.side, self.asset, qty, self.order_type, price, self.tif)

    def text(self) -> str:
        """The canonical form, parseable by ``parse``: "buy BTC/USDT 0.01 limit 60000 gtc"."""
        head = f"{self.side.value.lower()} {self.asset} {format(self.qty, 'f')}"
        if self.order_type is OrderType.MARKET:
            return f"{head} market"  # IOC is implied
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
    if value.adjusted() > 15 or value.adjusted() < -18 or len(value.as_tuple().digits) > 30:
        raise ManualOrderError(f"{what} {word!r} is not a plausible number (out of range)")
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
