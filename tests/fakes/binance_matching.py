"""A small, deterministic spot matching engine for the fake Binance server.

Pure state, no I/O, no asyncio: every public method runs to completion
synchronously, so a test can call it and then look at the result at once.
The server (``binance_server.py``) parses HTTP parameters, calls this engine
and turns the notifications it receives through an :class:`EngineListener`
into REST answers and WebSocket events.

Model
-----
* The public book of each symbol is *scripted*: the test sets the price levels
  (usually one level per side, see ``FakeBinance.set_book``). The levels stand
  for other participants; our own resting orders are not shown in the book.
* An incoming order that crosses the book takes liquidity at the book's prices
  (taker, ``isMaker`` false), level by level, never more than the displayed
  quantity. What the order takes is removed from the displayed level until the
  book is scripted again.
* A resting LIMIT order fills when the book moves through it: a BUY at ``p``
  fills while the best ask is ``<= p`` (touching counts), a SELL while the best
  bid is ``>= p``. It fills at its own price (maker), bounded by the displayed
  quantity at or better than ``p``. Orders are served by price, then time.
* MARKET orders take the book; what the book cannot fill EXPIRES. IOC LIMIT
  orders fill what crosses and EXPIRE the rest; FOK LIMIT orders fill
  completely or EXPIRE without a trade; LIMIT_MAKER orders that would cross are
  rejected (-2010 "Order would immediately match and take.").
* Balances: a resting LIMIT order locks its funds (BUY: price*qty of the quote
  asset, SELL: qty of the base asset). A fill moves both assets and charges the
  commission in the asset received (BUY: base, SELL: quote), rounded to
  8 decimals. Cancel/expiry unlocks what is left.
* Every number is a :class:`decimal.Decimal`; floats never enter.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Callable, Iterable, Protocol

ZERO = Decimal(0)
COMMISSION_QUANTUM = Decimal("0.00000001")

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET")
TIME_IN_FORCES = ("GTC", "IOC", "FOK")


class BinanceError(Exception):
    """An error answer in Binance's shape: HTTP status, negative code, message."""

    def __init__(self, status: int, code: int, msg: str, *, retry_after: int | None = None):
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg
        self.retry_after = retry_after


def mandatory_param_error(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


INSUFFICIENT_BALANCE = (400, -2010, "Account has insufficient balance for requested action.")
DUPLICATE_ORDER = (400, -2010, "Duplicate order sent.")
WOULD_TAKE = (400, -2010, "Order would immediately match and take.")
UNKNOWN_ORDER = (400, -2011, "Unknown order sent.")
NO_SUCH_ORDER = (400, -2013, "Order does not exist.")


def as_decimal(value: Decimal | str | int) -> Decimal:
    """Decimal from a Decimal, str or int. Floats are refused on purpose."""
    if isinstance(value, float):
        raise TypeError("pass prices and quantities as str or Decimal, never float")
    return value if isinstance(value, Decimal) else Decimal(value)


@dataclass(frozen=True)
class SymbolSpec:
    """One spot market and its exchange filters."""

    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal | None = None  # defaults to step_size
    max_qty: Decimal = Decimal("9000")
    min_price: Decimal | None = None  # defaults to tick_size
    max_price: Decimal = Decimal("1000000")
    min_notional: Decimal = Decimal("5")
    max_notional: Decimal = Decimal("9000000")
    notional_filter: str = "NOTIONAL"  # or "MIN_NOTIONAL" (the older filter name)
    base_precision: int = 8
    quote_precision: int = 8

    def __post_init__(self) -> None:
        for name in ("tick_size", "step_size", "min_qty", "max_qty", "min_price",
                     "max_price", "min_notional", "max_notional"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_decimal(value))
        if self.min_qty is None:
            object.__setattr__(self, "min_qty", self.step_size)
        if self.min_price is None:
            object.__setattr__(self, "min_price", self.tick_size)
        if self.notional_filter not in ("NOTIONAL", "MIN_NOTIONAL"):
            raise ValueError("notional_filter must be NOTIONAL or MIN_NOTIONAL")

    @property
    def symbol(self) -> str:
        return self.base + self.quote

    @property
    def unified(self) -> str:
        return f"{self.base}/{self.quote}"


DEFAULT_SYMBOLS = (
    SymbolSpec("BTC", "USDT", tick_size=Decimal("0.01"), step_size=Decimal("0.00001"),
               min_notional=Decimal("5")),
    SymbolSpec("ETH", "USDT", tick_size=Decimal("0.01"), step_size=Decimal("0.0001"),
               min_notional=Decimal("5")),
)


@dataclass
class Trade:
    trade_id: int
    order_id: int
    account: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool


@dataclass
class Order:
    order_id: int
    account: str
    symbol: str
    client_order_id: str
    side: str  # BUY / SELL
    type: str  # LIMIT / LIMIT_MAKER / MARKET
    time_in_force: str | None
    price: Decimal | None
    orig_qty: Decimal
    time: int
    orig_quote_order_qty: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    working_time: int = -1
    trades: list[Trade] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass
class Book:
    """Displayed levels: bids best (highest) first, asks best (lowest) first."""

    bids: list[list[Decimal]] = field(default_factory=list)
    asks: list[list[Decimal]] = field(default_factory=list)
    update_id: int = 1000

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        return (self.bids[0][0], self.bids[0][1]) if self.bids else None

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        return (self.asks[0][0], self.asks[0][1]) if self.asks else None

    def mid(self) -> Decimal | None:
        if self.bids and self.asks:
            return (self.bids[0][0] + self.asks[0][0]) / 2
        if self.bids:
            return self.bids[0][0]
        if self.asks:
            return self.asks[0][0]
        return None

    def snapshot(self) -> tuple[tuple[tuple[Decimal, Decimal], ...], tuple[tuple[Decimal, Decimal], ...]]:
        return (tuple((p, q) for p, q in self.bids), tuple((p, q) for p, q in self.asks))


@dataclass
class Balance:
    free: Decimal = ZERO
    locked: Decimal = ZERO


class EngineListener(Protocol):
    """What the engine tells the outside world, synchronously, as it happens."""

    def on_order_update(self, order: Order, exec_type: str, trade: Trade | None,
                        cancel_client_order_id: str | None) -> None: ...

    def on_balances(self, account: str, assets: set[str]) -> None: ...

    def on_book(self, symbol: str, previous: tuple, book: Book) -> None: ...


class NullListener:
    def on_order_update(self, order, exec_type, trade, cancel_client_order_id) -> None:
        pass

    def on_balances(self, account, assets) -> None:
        pass

    def on_book(self, symbol, previous, book) -> None:
        pass


class MatchingEngine:
    """Orders, trades, balances and scripted books of all accounts."""

    def __init__(self, symbols: Iterable[SymbolSpec] = DEFAULT_SYMBOLS, *,
                 clock: Callable[[], int], listener: EngineListener | None = None,
                 maker_commission: Decimal | str = "0.001",
                 taker_commission: Decimal | str = "0.001"):
        self.specs: dict[str, SymbolSpec] = {}
        self.books: dict[str, Book] = {}
        for spec in symbols:
            self.add_symbol(spec)
        self.clock = clock
        self.listener: EngineListener = listener or NullListener()
        self.maker_commission = as_decimal(maker_commission)
        self.taker_commission = as_decimal(taker_commission)
        self.orders: dict[int, Order] = {}
        self.trades: list[Trade] = []
        self.balances: dict[str, dict[str, Balance]] = {}
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._touched: dict[str, set[str]] = {}
        self._pending_update_gap: dict[str, int] = {}
        self.last_price: dict[str, Decimal] = {}

    # ----------------------------------------------------------------- symbols
    def add_symbol(self, spec: SymbolSpec) -> None:
        self.specs[spec.symbol] = spec
        self.books.setdefault(spec.symbol, Book())

    def spec(self, symbol: str) -> SymbolSpec:
        try:
            return self.specs[symbol]
        except KeyError:
            raise BinanceError(400, -1121, "Invalid symbol.") from None

    # ---------------------------------------------------------------- balances
    def balance(self, account: str, asset: str) -> Balance:
        return self.balances.setdefault(account, {}).setdefault(asset, Balance())

    def set_balance(self, account: str, asset: str, free: Decimal, locked: Decimal | None = None) -> None:
        bal = self.balance(account, asset)
        bal.free = as_decimal(free)
        if locked is not None:
            bal.locked = as_decimal(locked)

    def _touch(self, account: str, *assets: str) -> None:
        self._touched.setdefault(account, set()).update(assets)

    def _flush_balances(self) -> None:
        touched, self._touched = self._touched, {}
        for account, assets in touched.items():
            self.listener.on_balances(account, assets)

    # ------------------------------------------------------------------ books
    def gap_next_update(self, symbol: str, size: int = 1) -> None:
        """The next book update id of ``symbol`` skips ``size`` ids."""
        self._pending_update_gap[symbol] = self._pending_update_gap.get(symbol, 0) + size

    def set_levels(self, symbol: str, bids: Iterable[tuple], asks: Iterable[tuple]) -> None:
        """Replace the displayed book, then fill resting orders it crosses."""
        self.spec(symbol)
        book = self.books[symbol]
        previous = book.snapshot()
        book.bids = sorted(([as_decimal(p), as_decimal(q)] for p, q in bids if as_decimal(q) > 0),
                           key=lambda lv: -lv[0])
        book.asks = sorted(([as_decimal(p), as_decimal(q)] for p, q in asks if as_decimal(q) > 0),
                           key=lambda lv: lv[0])
        self._match_resting(symbol)
        self._publish_book(symbol, previous)
        self._flush_balances()

    def _publish_book(self, symbol: str, previous: tuple) -> None:
        book = self.books[symbol]
        book.update_id += 1 + self._pending_update_gap.pop(symbol, 0)
        self.listener.on_book(symbol, previous, book)

    def _match_resting(self, symbol: str) -> None:
        book = self.books[symbol]
        resting = [o for o in self.orders.values() if o.symbol == symbol and o.is_open]
        buys = sorted((o for o in resting if o.side == "BUY"), key=lambda o: (-o.price, o.order_id))
        sells = sorted((o for o in resting if o.side == "SELL"), key=lambda o: (o.price, o.order_id))
        for order in buys:
            self._take(order, book.asks, lambda level_price, o=order: level_price <= o.price,
                       maker=True)
        for order in sells:
            self._take(order, book.bids, lambda level_price, o=order: level_price >= o.price,
                       maker=True)

    def _take(self, order: Order, levels: list[list[Decimal]], crosses: Callable[[Decimal], bool],
              *, maker: bool) -> None:
        """Fill ``order`` against ``levels`` while they cross, consuming them."""
        while levels and order.remaining > 0 and crosses(levels[0][0]):
            level = levels[0]
            qty = min(level[1], order.remaining)
            self._fill(order, qty, order.price if maker else level[0], is_maker=maker)
            level[1] -= qty
            if level[1] <= 0:
                levels.pop(0)

    # ------------------------------------------------------------------ orders
    def open_orders(self, account: str, symbol: str | None = None) -> list[Order]:
        return [o for o in self.orders.values()
                if o.account == account and o.is_open and (symbol is None or o.symbol == symbol)]

    def find_order(self, account: str, symbol: str, *, order_id: int | None = None,
                   client_order_id: str | None = None) -> Order:
        """The order by id, or the latest one with that client id; -2013 if none."""
        self.spec(symbol)
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None or order.account != account or order.symbol != symbol:
                raise BinanceError(*NO_SUCH_ORDER)
            if client_order_id is not None and order.client_order_id != client_order_id:
                raise BinanceError(*NO_SUCH_ORDER)
            return order
        for order in reversed(list(self.orders.values())):
            if (order.account == account and order.symbol == symbol
                    and order.client_order_id == client_order_id):
                return order
        raise BinanceError(*NO_SUCH_ORDER)

    def place(self, account: str, symbol: str, side: str, type_: str, *,
              quantity: Decimal | None, price: Decimal | None, time_in_force: str | None,
              client_order_id: str, quote_order_qty: Decimal | None = None) -> Order:
        """Validate, accept and match a new order; return it (with its taker trades)."""
        spec = self.spec(symbol)
        book = self.books[symbol]
        self._check_order_shape(type_, quantity, price, time_in_force, quote_order_qty)
        if any(o.client_order_id == client_order_id for o in self.open_orders(account, symbol)):
            raise BinanceError(*DUPLICATE_ORDER)
        self._check_filters(spec, book, type_, quantity, price, quote_order_qty)
        if type_ == "LIMIT_MAKER":
            best = book.best_ask() if side == "BUY" else book.best_bid()
            if best is not None and (price >= best[0] if side == "BUY" else price <= best[0]):
                raise BinanceError(*WOULD_TAKE)
        self._check_funds(account, spec, book, side, type_, quantity, price, quote_order_qty)

        now = self.clock()
        order = Order(
            order_id=next(self._order_ids), account=account, symbol=symbol,
            client_order_id=client_order_id, side=side, type=type_,
            time_in_force=time_in_force if type_ == "LIMIT" else "GTC",  # as Binance reports them
            price=price if type_ != "MARKET" else ZERO,
            orig_qty=quantity if quantity is not None else ZERO,
            orig_quote_order_qty=quote_order_qty or ZERO,
            time=now, update_time=now, working_time=now,
        )
        self.orders[order.order_id] = order
        if type_ != "MARKET":
            self._lock(order, order.orig_qty)
        self.listener.on_order_update(order, "NEW", None, None)

        previous = book.snapshot()
        levels = book.asks if side == "BUY" else book.bids
        if type_ == "MARKET":
            if quote_order_qty is not None:
                # the quantity is what the quote amount buys (or raises) on the displayed book
                order.orig_qty = _walk_qty_for_quote(levels, quote_order_qty, spec.step_size)
            self._take(order, levels, lambda _p: True, maker=False)
            if order.remaining > 0 or order.orig_qty == 0:
                self._expire(order)
        elif type_ == "LIMIT":
            crosses = ((lambda p: p <= order.price) if side == "BUY" else (lambda p: p >= order.price))
            if time_in_force == "FOK" and _fillable(levels, crosses) < order.orig_qty:
                self._expire(order)
            else:
                self._take(order, levels, crosses, maker=False)
                if order.remaining > 0 and time_in_force in ("IOC", "FOK"):
                    self._expire(order)
        if book.snapshot() != previous:
            self._publish_book(symbol, previous)
        self._flush_balances()
        return order

    def cancel(self, account: str, symbol: str, *, order_id: int | None = None,
               client_order_id: str | None = None, cancel_client_order_id: str | None = None) -> Order:
        """Cancel an open order; -2011 if it is unknown or no longer open."""
        try:
            order = self.find_order(account, symbol, order_id=order_id, client_order_id=client_order_id)
        except BinanceError:
            raise BinanceError(*UNKNOWN_ORDER) from None
        if not order.is_open:
            raise BinanceError(*UNKNOWN_ORDER)
        self.terminate(order, "CANCELED", cancel_client_order_id=cancel_client_order_id)
        return order

    def terminate(self, order: Order, status: str = "CANCELED", *,
                  cancel_client_order_id: str | None = None) -> None:
        """End an open order (CANCELED or EXPIRED), unlocking what it still holds."""
        if not order.is_open:
            raise ValueError(f"order {order.order_id} is {order.status}, not open")
        if order.type != "MARKET":
            self._unlock(order, order.remaining)
        order.status = status
        order.update_time = self.clock()
        exec_type = "CANCELED" if status == "CANCELED" else "EXPIRED"
        self.listener.on_order_update(order, exec_type, None, cancel_client_order_id)
        self._flush_balances()

    def fill(self, order: Order, qty: Decimal | None = None, price: Decimal | None = None) -> Trade:
        """Venue-side fill of an open order, regardless of the book (maker)."""
        if not order.is_open:
            raise ValueError(f"order {order.order_id} is {order.status}, not open")
        qty = order.remaining if qty is None else as_decimal(qty)
        if not 0 < qty <= order.remaining:
            raise ValueError(f"fill qty {qty} outside (0, {order.remaining}]")
        trade = self._fill(order, qty, order.price if price is None else as_decimal(price), is_maker=True)
        self._flush_balances()
        return trade

    # --------------------------------------------------------------- internals
    def _check_order_shape(self, type_: str, quantity, price, time_in_force, quote_order_qty) -> None:
        if type_ not in ORDER_TYPES:
            raise BinanceError(400, -1116, "Invalid orderType.")
        if type_ in ("LIMIT", "LIMIT_MAKER"):
            if time_in_force is None and type_ == "LIMIT":
                raise mandatory_param_error("timeInForce")
            if quantity is None:
                raise mandatory_param_error("quantity")
            if price is None:
                raise mandatory_param_error("price")
            if quote_order_qty is not None:
                raise BinanceError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
            if type_ == "LIMIT_MAKER" and time_in_force is not None:
                raise BinanceError(400, -1106, "Parameter 'timeInForce' sent when not required.")
        else:
            if time_in_force is not None:
                raise BinanceError(400, -1106, "Parameter 'timeInForce' sent when not required.")
            if price is not None:
                raise BinanceError(400, -1106, "Parameter 'price' sent when not required.")
            if (quantity is None) == (quote_order_qty is None):
                raise BinanceError(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        if time_in_force is not None and time_in_force not in TIME_IN_FORCES:
            raise BinanceError(400, -1115, "Invalid timeInForce.")

    def _check_filters(self, spec: SymbolSpec, book: Book, type_: str, quantity, price, quote_order_qty) -> None:
        if price is not None:
            if price < spec.min_price or price > spec.max_price or (price - spec.min_price) % spec.tick_size:
                raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if quantity is not None:
            if quantity < spec.min_qty or quantity > spec.max_qty or (quantity - spec.min_qty) % spec.step_size:
                raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if quote_order_qty is not None:
            notional = quote_order_qty
        elif type_ == "MARKET":
            reference = book.mid() or self.last_price.get(spec.symbol)
            notional = quantity * reference if reference is not None else None
        else:
            notional = quantity * price
        if notional is not None:
            if notional < spec.min_notional or (type_ != "MARKET" and notional > spec.max_notional):
                raise BinanceError(400, -1013, f"Filter failure: {spec.notional_filter}")

    def _check_funds(self, account: str, spec: SymbolSpec, book: Book, side: str, type_: str,
                     quantity, price, quote_order_qty) -> None:
        if side == "BUY":
            if type_ != "MARKET":
                need = price * quantity
            elif quote_order_qty is not None:
                need = quote_order_qty
            else:
                need = _walk_cost(book.asks, quantity)
            have = self.balance(account, spec.quote).free
        else:
            if quantity is not None:
                need = quantity
            else:  # SELL by quote amount: the base it takes to raise it
                need = _walk_qty_for_quote(book.bids, quote_order_qty, spec.step_size)
            have = self.balance(account, spec.base).free
        if need > have:
            raise BinanceError(*INSUFFICIENT_BALANCE)

    def _lock(self, order: Order, qty: Decimal) -> None:
        spec = self.specs[order.symbol]
        asset, amount = (spec.quote, order.price * qty) if order.side == "BUY" else (spec.base, qty)
        bal = self.balance(order.account, asset)
        bal.free -= amount
        bal.locked += amount
        self._touch(order.account, asset)

    def _unlock(self, order: Order, qty: Decimal) -> None:
        spec = self.specs[order.symbol]
        asset, amount = (spec.quote, order.price * qty) if order.side == "BUY" else (spec.base, qty)
        bal = self.balance(order.account, asset)
        bal.free += amount
        bal.locked -= amount
        self._touch(order.account, asset)

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, is_maker: bool) -> Trade:
        spec = self.specs[order.symbol]
        rate = self.maker_commission if is_maker else self.taker_commission
        quote_qty = price * qty
        base_bal = self.balance(order.account, spec.base)
        quote_bal = self.balance(order.account, spec.quote)
        if order.type != "MARKET":
            self._unlock(order, qty)  # the locked part of this fill goes back to free first
        if order.side == "BUY":
            commission = (qty * rate).quantize(COMMISSION_QUANTUM, ROUND_HALF_UP)
            commission_asset = spec.base
            quote_bal.free -= quote_qty
            base_bal.free += qty - commission
        else:
            commission = (quote_qty * rate).quantize(COMMISSION_QUANTUM, ROUND_HALF_UP)
            commission_asset = spec.quote
            base_bal.free -= qty
            quote_bal.free += quote_qty - commission
        self._touch(order.account, spec.base, spec.quote)
        now = self.clock()
        trade = Trade(trade_id=next(self._trade_ids), order_id=order.order_id, account=order.account,
                      symbol=order.symbol, side=order.side, price=price, qty=qty, quote_qty=quote_qty,
                      commission=commission, commission_asset=commission_asset, time=now,
                      is_maker=is_maker)
        self.trades.append(trade)
        order.trades.append(trade)
        order.executed_qty += qty
        order.cum_quote += quote_qty
        order.update_time = now
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        self.last_price[order.symbol] = price
        self.listener.on_order_update(order, "TRADE", trade, None)
        return trade

    def _expire(self, order: Order) -> None:
        if order.type != "MARKET":
            self._unlock(order, order.remaining)
        order.status = "EXPIRED"
        order.update_time = self.clock()
        self.listener.on_order_update(order, "EXPIRED", None, None)


def _floor(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def _fillable(levels: list[list[Decimal]], crosses: Callable[[Decimal], bool]) -> Decimal:
    return sum((q for p, q in levels if crosses(p)), ZERO)


def _walk_cost(levels: list[list[Decimal]], qty: Decimal) -> Decimal:
    cost, left = ZERO, qty
    for price, available in levels:
        take = min(available, left)
        cost += take * price
        left -= take
        if left <= 0:
            break
    return cost


def _walk_qty_for_quote(levels: list[list[Decimal]], quote: Decimal, step: Decimal) -> Decimal:
    qty, left = ZERO, quote
    for price, available in levels:
        take = min(available, _floor(left / price, step))
        qty += take
        left -= take * price
        if take < available:
            break
    return qty
