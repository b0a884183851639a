"""The strategy interface (spec 5). Strategies see a read-only context and return intents; nothing more."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from itertools import islice
from decimal import Decimal
from typing import Any, ClassVar, NamedTuple

from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.intent import Barrier, Intent, IntentKind, OrderType, Side, TimeInForce, Urgency
from bot.domain.market import Book, Tick
from bot.domain.money import ZERO
from bot.domain.order import Order, OrderStatus
from bot.domain.position import Portfolio
from bot.engine.market_state import MarketState
from bot.risk.advice import NORMAL, Advice


class OpenOrder(NamedTuple):
    """A read-only view of one of the strategy's live orders."""

    client_order_id: str
    asset: str
    side: Side
    qty: Decimal
    remaining: Decimal
    limit_price: Decimal | None
    status: OrderStatus
    tag: str


class StrategyContext:
    """What a strategy may look at. It offers no way to reach a venue, the store or the control plane.

    Everything it returns is a value (Decimal, NamedTuple, tuple, frozen Instrument): changing it changes
    nothing in the engine. Intents it builds are only proposals: the engine audits them, the risk engine checks
    them and the gate admits them; the strategy never sees the OMS or the venue.
    """

    __slots__ = ("strategy_id", "_market", "_portfolio", "_orders", "_instruments", "_next_id", "event_ns", "params", "tick", "_advice")

    def __init__(
        self,
        strategy_id: str,
        market: MarketState,
        portfolio: Portfolio,
        orders: Callable[[str, str | None], list[Order]],
        instruments: Mapping[str, Instrument],
        next_id: Callable[[], str],
        params: Mapping[str, Any],
    ) -> None:
        self.strategy_id = strategy_id
        self._market = market
        self._portfolio = portfolio
        self._orders = orders
        self._instruments = instruments
        self._next_id = next_id
        self.event_ns = 0  # time of the event being handled (the injected clock of the strategy)
        self.params = params
        self.tick: Tick | None = None  # the tick being handled in on_tick
        self._advice: Callable[[str, str], Advice] | None = None  # set by the risk runtime

    def set_advice_source(self, source: Callable[[str, str], Advice]) -> None:
        self._advice = source

    # --- what risk advises (read-only; risk enforces it anyway) ----------------------------
    def advice(self, asset: str) -> Advice:
        """Quote mode (NORMAL / WIDEN / PULL), spread multiplier and size scale for this strategy and asset."""
        return self._advice(self.strategy_id, asset) if self._advice is not None else NORMAL

    # --- time and market ---------------------------------------------------------------
    def now_ns(self) -> int:
        return self.event_ns

    def last(self, asset: str) -> Tick | None:
        return self._market.last.get(asset)

    def book(self, asset: str) -> Book | None:
        return self._market.books.get(asset)

    def history(self, asset: str, n: int | None = None) -> Sequence[Tick]:
        """The recent ticks of ``asset``, oldest first (at most the market state's history length); the last
        ``n`` only when given. A copy: changing it changes nothing."""
        hist = self._market.history.get(asset)
        if not hist:
            return ()
        if n is None or n >= len(hist):
            return tuple(hist)
        if n <= 0:
            return ()
        return tuple(islice(hist, len(hist) - n, None))

    def instrument(self, asset: str) -> Instrument:
        return self._instruments[asset]

    # --- own state -----------------------------------------------------------------------
    def position(self, asset: str) -> Decimal:
        pos = self._portfolio.by_strategy.get((self.strategy_id, asset))
        return pos.qty if pos is not None else ZERO

    def open_orders(self, asset: str | None = None) -> list[OpenOrder]:
        return [
            OpenOrder(o.client_order_id, o.asset, o.side, o.qty, o.qty - o.filled_qty, o.limit_price, o.status, o.tag)
            for o in self._orders(self.strategy_id, asset)
        ]

    # --- building intents ----------------------------------------------------------------
    def place(
        self,
        asset: str,
        side: Side,
        qty: Decimal,
        *,
        price: Decimal | None = None,
        order_type: OrderType = OrderType.LIMIT,
        tif: TimeInForce = TimeInForce.GTC,
        urgency: Urgency = Urgency.NORMAL,
        risk_tags: tuple[str, ...] = (),
        rationale: str = "",
        tag: str = "",
        reduce_only: bool = False,
        barrier: Barrier | None = None,
    ) -> Intent:
        return Intent(
            id=self._next_id(),
            ts_ns=self.event_ns,
            strategy_id=self.strategy_id,
            asset=asset,
            side=side,
            qty=qty,
            order_type=order_type,
            limit_price=price,
            tif=tif,
            urgency=urgency,
            risk_tags=risk_tags,
            rationale=rationale,
            tag=tag,
            reduce_only=reduce_only,
            barrier=barrier,
        )

    def cancel(self, order: OpenOrder, rationale: str = "") -> Intent:
        return Intent(
            id=self._next_id(),
            ts_ns=self.event_ns,
            strategy_id=self.strategy_id,
            asset=order.asset,
            side=order.side,
            qty=order.remaining,
            limit_price=order.limit_price,
            kind=IntentKind.CANCEL,
            target=order.client_order_id,
            rationale=rationale,
            tag=order.tag,
        )


class Strategy:
    """Base class of strategy plug-ins (entry-point group ``bot.strategies``).

    Subclasses set ``name`` and implement ``on_tick``; ``params`` come from configuration and are validated
    in ``__init__`` (raise ValueError with the parameter's name on a bad value).
    """

    name: ClassVar[str] = ""
    wants_ticks: ClassVar[bool] = True  # False: on_tick is never called (a strategy driven by requests only)

    def __init__(self, strategy_id: str, params: Mapping[str, Any], assets: Sequence[str]) -> None:
        self.strategy_id = strategy_id
        self.params = dict(params)
        self.assets = tuple(assets)

    def on_start(self, ctx: StrategyContext) -> list[Intent]:
        return []

    def on_tick(self, ctx: StrategyContext) -> list[Intent]:
        """Called for every tick of one of the strategy's assets; ``ctx.tick`` is that tick."""
        raise NotImplementedError

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> list[Intent]:
        return []

    def on_request(self, ctx: StrategyContext, request: object) -> list[Intent]:
        """An operator's request (``Engine.propose``), e.g. the manual strategy's order. Raise ValueError with a
        message for the operator to refuse it; the default refuses every request."""
        raise ValueError(f"strategy {self.strategy_id} ({self.name}) does not take operator requests")

    def on_stop(self, ctx: StrategyContext) -> list[Intent]:
        return []
