"""A fake Binance SPOT exchange on 127.0.0.1: REST ``/api/v3`` and WebSocket streams.

An unmodified ``ccxt.async_support.binance`` talks to it through
:func:`ccxt_config`; plain ``websockets`` clients read its streams. Matching,
balances and orders live in :mod:`tests.fakes.binance_matching` (see its
docstring for the fill model); this module is the venue around it: HTTP,
authentication, Binance's error answers, WebSocket streams and fault injection.

Quick start::

    async with FakeBinance() as fake:
        fake.add_key("k", "s", can_trade=True)
        fake.set_balance("USDT", "1000")
        fake.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        exchange = ccxt.async_support.binance(ccxt_config(fake, "k", "s"))
        exchange.number = str
        try:
            await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99.00",
                                        params={"newClientOrderId": "x"})
            fake.run_path([("98.00", "98.50")])          # the ask crosses 99.00: filled
            assert fake.order("x").status == "FILLED"
        finally:
            await exchange.close()

Public API of :class:`FakeBinance` (``symbol`` is ``"BTCUSDT"`` or ``"BTC/USDT"``;
amounts and prices are ``str`` or ``Decimal``; ``account`` defaults to ``"main"``)

Lifecycle
    ``FakeBinance(symbols=DEFAULT_SYMBOLS, *, commission="0.001", host="127.0.0.1", port=0)``
    ``await start()`` / ``await stop()`` / ``async with FakeBinance() as fake``
    ``base_url`` (``http://127.0.0.1:PORT``), ``ws_url`` (``ws://127.0.0.1:PORT``)
    ``clock_offset_ms`` (int, added to the server clock), ``server_time_ms()``
    ``maker_commission`` / ``taker_commission`` (Decimal, default 0.001, settable)
Accounts
    ``add_key(api_key, secret, can_trade=True, account="main")`` (keys of one account
    share its balances and orders, as on Binance)
    ``set_balance(asset, free, locked=None, account="main")`` (silent: no stream event)
    ``balance(asset, account="main") -> (free, locked)``
Book and price path
    ``set_book(symbol, bid, bid_qty, ask, ask_qty)`` one level a side (``None`` = empty side)
    ``set_depth(symbol, bids, asks)`` several levels: lists of ``(price, qty)``
    ``load_path(points, symbol=None)`` queue points; ``step(symbol=None) -> bool`` applies the
    next queued point (of every symbol with one queued when ``symbol`` is None)
    ``run_path(points, symbol=None) -> int`` applies points now, in order. A point is
    ``(bid, ask)`` (quantities of the last ``set_book``) or ``(bid, bid_qty, ask, ask_qty)``.
    ``symbol=None`` means the first configured symbol.
Inspection
    ``requests`` (list of :class:`RecordedRequest`: method, path, params without
    ``signature``, api_key, time_ms, status, code), ``requests_for(method, path)``
    ``orders``, ``trades``, ``order(ref, account=None)`` (``ref``: order id or client id),
    ``open_orders(symbol=None, account="main")``, ``listen_keys``, ``ws_clients``
Waiting (never sleep: these wake on state changes; ``timeout`` is a safety bound)
    ``await wait_for_request(method, path, count=1, timeout=5) -> RecordedRequest``
    ``await wait_for_ws_clients(n, kind=None, timeout=5)`` (kind ``"market"``/``"user"``)
    ``await wait_until(predicate, timeout=5)``
    ``await wait_streams_flushed(timeout=5)`` every queued WS message has been written
Fault injection (``path`` is ``"/api/v3/order"``, the short ``"order"``, or ``"*"``;
``method=None`` matches any method; faults are used up in the order they were added)
    ``fail_next(path, status=500, code=-1001, msg=..., retry_after=None, times=1, method=None)``
        answer with that error instead of processing the request (``code=None``: the body is
        ``msg`` as text/plain, like a proxy's error page). ``retry_after`` sets ``Retry-After``.
    ``rate_limit_next(path="*", retry_after=1, times=1, method=None)`` 429 -1003 + Retry-After.
    ``timeout_next(path, times=1, method=None, execute=False)`` hold the request on an
        asyncio.Event until the client gives up; ``execute=True`` processes it first (the order
        IS placed) and withholds the answer. ``release_held()`` and ``stop()`` release held
        requests; they then get 503 -1007 (they are answered to nobody).
    ``submit_unknown_status_next(times=1, path="/api/v3/order", method="POST")`` process the
        request (the order IS placed), answer 503 -1007 "... Send status unknown; execution
        status unknown."
    ``await drop_streams(abrupt=False)`` close every WS connection (close code 1001, or
        ``abrupt=True``: abort the TCP connection without a close frame).
    ``pause_streams(buffer=False)`` / ``resume_streams()`` connections stay open, nothing is
        sent; messages meanwhile are dropped (``buffer=False``: clients see a gap in ``u``)
        or delivered on resume (``buffer=True``). ``dropped_messages`` counts drops.
    ``stall_streams()`` half-open connections: the server stops reading from every open WS
        connection (a client's ping is never answered) and sends nothing (like ``pause_streams``);
        nothing is closed. A client with a ping timeout notices; ``resume_streams()`` ends it.
    ``gap_next_stream_update(symbol=None, size=1)`` the next book update id skips ``size`` ids
        (a sequence gap in bookTicker ``u`` and depth ``U``/``u``).
    ``duplicate_next_execution_report(times=1)`` the next executionReport(s) are sent twice.
    ``expire_listen_key(listen_key=None)`` send ``listenKeyExpired`` and close its streams.
Venue-side actions
    ``fill(order, qty=None, price=None) -> Trade`` fill an open order now (maker, own price)
    ``silent_fill(order, qty=None, price=None) -> Trade`` the same without any user-data
        event (no executionReport, no outboundAccountPosition); REST shows it.
    ``exchange_cancel(order) -> Order`` venue-side cancel: executionReport x=CANCELED with
        ``C`` = the order's client id and a venue-generated ``c``.
    ``exchange_expire(order) -> Order`` the same with EXPIRED.

REST endpoints (under ``/api/v3``)
    public: GET ping, time, exchangeInfo, ticker/24hr, ticker/bookTicker, ticker/price, depth
    API key only: POST/PUT/DELETE userDataStream
    signed (USER_DATA): GET account, order, openOrders, allOrders, myTrades
    signed, under ``/sapi/v1``: GET account/apiRestrictions (the key's permissions:
    ``enableSpotAndMarginTrading`` is the key's ``can_trade``; reading on, withdrawals off)
    signed (TRADE, needs ``can_trade``): POST order, DELETE order, DELETE openOrders
    Anything else answers 404 text/plain "fake-binance: no route ...", so stray calls show.

Authentication, in this order: ``X-MBX-APIKEY`` missing -> 401 -2014 "API-key format
invalid."; unknown key -> 401 -2015; ``signature`` missing -> 400 -1102; wrong signature
(HMAC-SHA256 of the raw query string followed by the raw body, ``signature`` removed)
-> 400 -1022; ``timestamp`` missing -> 400 -1102; ``recvWindow`` > 60000 -> 400 -1131;
timestamp 1000 ms ahead of the server clock or older than ``recvWindow`` (default 5000)
-> 400 -1021; read-only key on a TRADE endpoint -> 401 -2015.

Order errors: see ``binance_matching`` (-2010 duplicate / insufficient balance / would
take, -2011 unknown on cancel, -2013 unknown on query, -1013 "Filter failure: PRICE_FILTER"
/ LOT_SIZE / NOTIONAL, -1121 invalid symbol, -1102/-1106/-1100 bad parameters). DELETE
openOrders with nothing open answers -2011 like Binance.

WebSocket (same port)
    ``/ws/<stream>``, ``/stream?streams=<a>/<b>`` (combined: ``{"stream":..,"data":..}``),
    ``/ws`` (then ``{"method":"SUBSCRIBE","params":[..],"id":1}``; also UNSUBSCRIBE,
    LIST_SUBSCRIPTIONS). Market streams: ``<symbol>@bookTicker`` ({u,s,b,B,a,A}),
    ``<symbol>@depth5|10|20`` ({lastUpdateId,bids,asks}), ``<symbol>@depth`` (diff:
    {e:"depthUpdate",E,s,U,u,b,a}); an optional ``@100ms`` suffix is accepted. A stream is
    sent on each book change (``set_book``, path steps, our orders taking liquidity), never
    a snapshot on connect. ``/ws/<listenKey>`` (or a listen key inside ``/stream``) is the
    user-data stream: ``executionReport`` and ``outboundAccountPosition`` events (one
    listen key per account: POST returns the active one). ``/ws/<name>`` where the name is
    neither a stream nor a live listen key connects with no subscription, as on Binance
    (ccxt.pro connects to ``/ws/<n>`` and subscribes); a name with ``@`` that is not a
    stream of a configured symbol is refused (HTTP 400). Pings are answered by aiohttp.

ccxt 4.5.90 exceptions observed against this fake (``test_binance_server.py`` pins each one)
    ====================================================  =======================================
    fake's answer                                         ccxt raises (base classes)
    ====================================================  =======================================
    400 -2010 "Duplicate order sent."                     InvalidOrder (ExchangeError)
    400 -2010 "Account has insufficient balance..."       InsufficientFunds (ExchangeError; NOT an
                                                          InvalidOrder; matched on the exact msg)
    400 -2010 "Order would immediately match and take."   OrderImmediatelyFillable (InvalidOrder)
    400 -2011 "Unknown order sent." (cancel, cancel-all)  OrderNotFound (InvalidOrder)
    400 -2013 "Order does not exist." (query)             OrderNotFound (InvalidOrder)
    400 -1013 "Filter failure: PRICE_FILTER" / LOT_SIZE   InvalidOrder (ccxt matches the body text)
    400 -1013 "Filter failure: NOTIONAL"                  BadRequest (ExchangeError; NOT InvalidOrder)
    400 -1022 bad signature                               AuthenticationError
    401 -2015 unknown key                                 AuthenticationError
    401 -2015 read-only key on a TRADE endpoint           AuthenticationError, but DDoSProtection
                                                          once that ccxt instance has made any
                                                          successful private call
    400 -1021 clock skew                                  InvalidNonce (NetworkError)
    400 -1125 unknown listenKey                           AuthenticationError
    429 -1003 + Retry-After                               DDoSProtection (NetworkError; NOT a
                                                          RateLimitExceeded); the header is in
                                                          ``exchange.last_response_headers``
    503 -1007 unknown status (order placed)               RequestTimeout (NetworkError)
    held request, client timeout                          RequestTimeout (NetworkError)
    500 -1001 (``fail_next`` default)                     OperationFailed (NOT an ExchangeError,
                                                          NOT a NetworkError)
    502 with a text/plain body (``code=None``)            ExchangeNotAvailable (NetworkError)
    404 stray endpoint (e.g. sapi)                        ExchangeNotAvailable (NetworkError)
    ====================================================  =======================================
    So "the order may or may not exist" comes out as RequestTimeout in both forms (-1007 and a
    real timeout); a retry policy keyed on NetworkError would also retry 429s, clock skew and
    stray-endpoint 404s.

Other ccxt facts seen here: ``fetch_order_book`` levels are floats even with
``exchange.number = str`` (use ``public_get_depth`` for exact strings); ccxt truncates
``quoteOrderQty`` to the price precision before sending; ``cancel_order()['clientOrderId']``
is the cancel's own id (the original is ``info['origClientOrderId']``); the listen-key calls
are ``public_post_userdatastream`` / ``public_put_...`` / ``public_delete_...``;
``await exchange.close()`` sleeps ``exchange.timeout_on_exit`` (250 ms) unless you set it to 0.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import parse_qsl, urlsplit

from aiohttp import WSMsgType, web

from .binance_matching import (
    DEFAULT_SYMBOLS,
    BinanceError,
    Book,
    MatchingEngine,
    Order,
    SymbolSpec,
    Trade,
    as_decimal,
    mandatory_param_error,
)

__all__ = ["FakeBinance", "RecordedRequest", "SymbolSpec", "ccxt_config"]

UNKNOWN_STATUS = (503, -1007, "Timeout waiting for response from backend server. "
                              "Send status unknown; execution status unknown.")
INTERNAL_ERROR_MSG = "Internal error; unable to process your request. Please try again."
RATE_LIMIT_MSG = ("Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
                  "Please use WebSocket Streams for live updates to avoid polling the API.")
INVALID_KEY = (401, -2015, "Invalid API-key, IP, or permissions for action.")

# security of each route: NONE (public), KEY (X-MBX-APIKEY only), SIGNED, TRADE (signed + can_trade)
NONE, KEY, SIGNED, TRADE = "NONE", "KEY", "SIGNED", "TRADE"

_DECIMAL_RE = re.compile(r"^[0-9]{1,20}(\.[0-9]{1,20})?$")
_INT_RE = re.compile(r"^-?[0-9]{1,20}$")
_STREAM_RE = re.compile(r"^([a-z0-9]+)@(bookticker|depth(5|10|20)?)(@(100|1000)ms)?$", re.IGNORECASE)


# --------------------------------------------------------------------------- helpers
def fmt(value: Decimal | None, places: int = 8) -> str:
    """Binance's fixed-point rendering ("0.10000000"); never drops digits."""
    if value is None:
        value = Decimal(0)
    if value == value.quantize(Decimal(1).scaleb(-places)):
        return format(value.quantize(Decimal(1).scaleb(-places)), "f")
    return format(value, "f")


def _norm_symbol(symbol: str) -> str:
    return symbol.replace("/", "").replace("-", "").upper()


def _norm_path(path: str) -> str:
    if path == "*" or path.startswith("/"):
        return path
    return "/api/v3/" + path


def _strip_signature(raw: str) -> str:
    return "&".join(part for part in raw.split("&") if part and part.split("=", 1)[0] != "signature")


def ccxt_config(fake: "FakeBinance", api_key: str | None = None, secret: str | None = None) -> dict:
    """Constructor dict for ``ccxt.async_support.binance`` that keeps every call on loopback.

    * ``urls``: every REST section of ccxt's binance (``public``/``private`` -> ``/api/v3``,
      ``sapi*``, ``fapi*``, ``dapi*``, ``eapi*``, ``papi*``, ``v1``...) and, when ccxt.pro is
      importable, every WebSocket URL, for the live, ``test`` and ``demo`` URL sets, are
      rewritten to the fake with their original path, so a stray call is a visible 404
      instead of leaving the host.
    * ``options``: ``defaultType`` spot, ``fetchMarkets.types`` [spot], ``fetchCurrencies``
      False (else ``load_markets`` sends a signed sapi call when keys are set),
      ``fetchMargins`` False (else it calls sapi margin/allPairs).
    * ``enableRateLimit`` False (the fake answers instantly; rate limits are injected).

    Nothing else was necessary. Worth knowing (not set here): ``options.recvWindow`` is
    10000 in ccxt (the fake enforces whatever is sent); ``options.adjustForTimeDifference``
    True makes ``load_markets`` fetch ``/time`` and follow ``fake.clock_offset_ms``;
    ``options.fetchOpenOrders.warnWithoutSymbol`` must be False to call
    ``fetch_open_orders()`` without a symbol.
    """
    import ccxt  # local import: ccxt is only needed by tests that use it

    urls = ccxt.binance().describe()["urls"]
    try:
        import ccxt.pro

        ws_urls = ccxt.pro.binance().describe()["urls"]
    except ImportError:  # pragma: no cover - ccxt.pro ships with ccxt
        ws_urls = {}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: rewrite(value) for key, value in node.items()}
        if isinstance(node, str):
            parts = urlsplit(node)
            if parts.scheme in ("http", "https"):
                return fake.base_url + parts.path
            if parts.scheme in ("ws", "wss"):
                return fake.ws_url + parts.path
        return node

    rewritten: dict[str, Any] = {}
    for section in ("api", "test", "demo"):
        merged = dict(urls.get(section, {}))
        ws = ws_urls.get(section, {}).get("ws") if isinstance(ws_urls.get(section), dict) else None
        if ws is not None:
            merged["ws"] = ws
        rewritten[section] = rewrite(merged)
    config: dict[str, Any] = {
        "urls": rewritten,
        "enableRateLimit": False,
        "options": {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        },
    }
    if api_key is not None:
        config["apiKey"] = api_key
    if secret is not None:
        config["secret"] = secret
    return config


# --------------------------------------------------------------------------- records
@dataclass
class RecordedRequest:
    """One REST request as the fake saw it (``params`` merged query+body, no signature)."""

    method: str
    path: str
    params: dict[str, str]
    api_key: str | None
    time_ms: int
    status: int | None = None  # HTTP status answered (None while held)
    code: int | None = None  # Binance error code answered, if any


@dataclass
class ApiKey:
    api_key: str
    secret: str
    can_trade: bool
    account: str


@dataclass
class _Fault:
    kind: str  # "error" | "hold" | "unknown_status"
    method: str | None
    path: str
    remaining: int
    status: int = 500
    code: int | None = -1001
    msg: str = INTERNAL_ERROR_MSG
    retry_after: int | None = None
    execute: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and self.path in ("*", path)


@dataclass(frozen=True)
class _Stream:
    name: str  # as the client spelled it (used as "stream" in combined payloads)
    symbol: str
    kind: str  # "bookTicker" | "depthN" (partial) | "depth" (diff)
    levels: int = 0


def _parse_stream(name: str) -> _Stream | None:
    match = _STREAM_RE.match(name)
    if match is None:
        return None
    symbol, kind, levels = match.group(1).upper(), match.group(2).lower(), match.group(3)
    if kind == "bookticker":
        return _Stream(name, symbol, "bookTicker")
    if levels:
        return _Stream(name, symbol, "depthN", int(levels))
    return _Stream(name, symbol, "depth")


@dataclass(eq=False)
class StreamClient:
    """One WebSocket connection."""

    ws: web.WebSocketResponse
    request: web.Request
    path: str
    combined: bool
    streams: dict[str, _Stream] = field(default_factory=dict)
    listen_keys: set[str] = field(default_factory=set)
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    writer: asyncio.Task | None = None
    sent: int = 0
    stalled: bool = False

    @property
    def kind(self) -> str:
        return "user" if self.listen_keys else "market"


class _EngineEvents:
    """Forwards the engine's notifications to the server (keeps them off its public API)."""

    def __init__(self, server: "FakeBinance"):
        self._server = server

    def on_order_update(self, order, exec_type, trade, cancel_client_order_id) -> None:
        self._server._emit_execution_report(order, exec_type, trade, cancel_client_order_id)

    def on_balances(self, account, assets) -> None:
        self._server._emit_account_position(account, assets)

    def on_book(self, symbol, previous, book) -> None:
        self._server._emit_book(symbol, previous, book)


# --------------------------------------------------------------------------- the server
class FakeBinance:
    """A local Binance spot venue; see the module docstring for the whole API."""

    def __init__(self, symbols: Iterable[SymbolSpec] = DEFAULT_SYMBOLS, *,
                 commission: Decimal | str = "0.001", host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self.port = port
        self.clock_offset_ms = 0
        self.engine = MatchingEngine(symbols, clock=self.server_time_ms, listener=_EngineEvents(self),
                                     maker_commission=commission, taker_commission=commission)
        self.requests: list[RecordedRequest] = []
        self.dropped_messages = 0
        self._keys: dict[str, ApiKey] = {}
        self._listen_keys: dict[str, str] = {}  # listen key -> account
        self._faults: list[_Fault] = []
        self._held: list[asyncio.Event] = []
        self._clients: list[StreamClient] = []
        self._paths: dict[str, list[tuple]] = {}
        self._scripted_qty: dict[str, tuple[str, str]] = {}
        self._stats: dict[str, dict[str, Decimal]] = {}
        self._pause: str | None = None  # None | "drop" | "buffer"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._duplicate_reports = 0
        self._silent = False
        self._cancel_ids = itertools.count(1)
        self._execution_ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> "FakeBinance":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is None:
            return
        self._stopping = True
        self.release_held()
        self._flowing.set()
        await self.drop_streams()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._runner.cleanup()
        self._runner = None

    async def __aenter__(self) -> "FakeBinance":
        return await self.start()

    async def __aexit__(self, *exc_info) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def server_time_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    @property
    def maker_commission(self) -> Decimal:
        return self.engine.maker_commission

    @maker_commission.setter
    def maker_commission(self, value: Decimal | str) -> None:
        self.engine.maker_commission = as_decimal(value)

    @property
    def taker_commission(self) -> Decimal:
        return self.engine.taker_commission

    @taker_commission.setter
    def taker_commission(self, value: Decimal | str) -> None:
        self.engine.taker_commission = as_decimal(value)

    # ------------------------------------------------------------------ accounts
    def add_key(self, api_key: str, secret: str, can_trade: bool = True, account: str = "main") -> None:
        self._keys[api_key] = ApiKey(api_key, secret, can_trade, account)

    def set_balance(self, asset: str, free: Decimal | str, locked: Decimal | str | None = None,
                    account: str = "main") -> None:
        self.engine.set_balance(account, asset, as_decimal(free),
                                None if locked is None else as_decimal(locked))

    def balance(self, asset: str, account: str = "main") -> tuple[Decimal, Decimal]:
        bal = self.engine.balance(account, asset)
        return bal.free, bal.locked

    # ------------------------------------------------------------------ book and path
    def _symbol(self, symbol: str | None) -> str:
        if symbol is None:
            return next(iter(self.engine.specs))
        symbol = _norm_symbol(symbol)
        if symbol not in self.engine.specs:
            raise KeyError(f"unknown symbol {symbol}; configured: {list(self.engine.specs)}")
        return symbol

    def set_book(self, symbol: str, bid: Decimal | str | None, bid_qty: Decimal | str | None,
                 ask: Decimal | str | None, ask_qty: Decimal | str | None) -> None:
        symbol = self._symbol(symbol)
        self._scripted_qty[symbol] = (str(bid_qty or "1"), str(ask_qty or "1"))
        bids = [(bid, bid_qty)] if bid is not None else []
        asks = [(ask, ask_qty)] if ask is not None else []
        self.set_depth(symbol, bids, asks)

    def set_depth(self, symbol: str, bids: Sequence[tuple], asks: Sequence[tuple]) -> None:
        symbol = self._symbol(symbol)
        self.engine.set_levels(symbol, bids, asks)
        self._changed_now()

    def load_path(self, points: Iterable[tuple], symbol: str | None = None) -> None:
        self._paths.setdefault(self._symbol(symbol), []).extend(points)

    def step(self, symbol: str | None = None) -> bool:
        symbols = [self._symbol(symbol)] if symbol is not None else list(self._paths)
        applied = False
        for sym in symbols:
            queue = self._paths.get(sym)
            if queue:
                self._apply_point(sym, queue.pop(0))
                applied = True
        return applied

    def run_path(self, points: Iterable[tuple], symbol: str | None = None) -> int:
        symbol = self._symbol(symbol)
        count = 0
        for point in points:
            self._apply_point(symbol, point)
            count += 1
        return count

    def _apply_point(self, symbol: str, point: tuple) -> None:
        if len(point) == 2:
            bid_qty, ask_qty = self._scripted_qty.get(symbol, ("1", "1"))
            self.set_book(symbol, point[0], bid_qty, point[1], ask_qty)
        elif len(point) == 4:
            self.set_book(symbol, *point)
        else:
            raise ValueError(f"a path point is (bid, ask) or (bid, bid_qty, ask, ask_qty), not {point!r}")

    # ------------------------------------------------------------------ inspection
    @property
    def orders(self) -> list[Order]:
        return list(self.engine.orders.values())

    @property
    def trades(self) -> list[Trade]:
        return list(self.engine.trades)

    @property
    def listen_keys(self) -> dict[str, str]:
        return dict(self._listen_keys)

    @property
    def ws_clients(self) -> list[StreamClient]:
        return list(self._clients)

    def order(self, ref: int | str | Order, account: str | None = None) -> Order:
        """An order by exchange id (int) or client order id (str, the latest such order)."""
        if isinstance(ref, Order):
            return ref
        for order in reversed(list(self.engine.orders.values())):
            if account is not None and order.account != account:
                continue
            if (isinstance(ref, int) and order.order_id == ref) or order.client_order_id == ref:
                return order
        raise KeyError(f"no order {ref!r}")

    def open_orders(self, symbol: str | None = None, account: str = "main") -> list[Order]:
        return self.engine.open_orders(account, None if symbol is None else self._symbol(symbol))

    def requests_for(self, method: str, path: str) -> list[RecordedRequest]:
        path = _norm_path(path)
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    # ------------------------------------------------------------------ waiting
    def _changed_now(self) -> None:
        """Wake every waiter; they re-check their predicate."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                result = predicate()
                if result:
                    return result
                await self._changed.wait()

    async def wait_for_request(self, method: str, path: str, count: int = 1,
                               timeout: float = 5.0) -> RecordedRequest:
        """The ``count``-th request to ``method path`` once it has been answered (or held)."""
        def found():
            matching = self.requests_for(method, path)
            return matching[count - 1] if len(matching) >= count else None
        return await self.wait_until(found, timeout)

    async def wait_for_ws_clients(self, n: int, kind: str | None = None, timeout: float = 5.0) -> None:
        await self.wait_until(
            lambda: len([c for c in self._clients if kind is None or c.kind == kind]) >= n, timeout)

    async def wait_streams_flushed(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            for client in list(self._clients):
                await client.queue.join()

    # ------------------------------------------------------------------ faults
    def fail_next(self, path: str, status: int = 500, code: int | None = -1001,
                  msg: str = INTERNAL_ERROR_MSG, retry_after: int | None = None, times: int = 1,
                  method: str | None = None) -> None:
        self._faults.append(_Fault("error", method and method.upper(), _norm_path(path), times,
                                   status, code, msg, retry_after))

    def rate_limit_next(self, path: str = "*", retry_after: int = 1, times: int = 1,
                        method: str | None = None) -> None:
        self.fail_next(path, 429, -1003, RATE_LIMIT_MSG, retry_after, times, method)

    def timeout_next(self, path: str, times: int = 1, method: str | None = None,
                     execute: bool = False) -> None:
        self._faults.append(_Fault("hold", method and method.upper(), _norm_path(path), times,
                                   execute=execute))

    def submit_unknown_status_next(self, times: int = 1, path: str = "/api/v3/order",
                                   method: str = "POST") -> None:
        self._faults.append(_Fault("unknown_status", method.upper(), _norm_path(path), times,
                                   *UNKNOWN_STATUS, execute=True))

    def release_held(self) -> None:
        held, self._held = self._held, []
        for event in held:
            event.set()

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------------ venue-side actions
    def fill(self, order: int | str | Order, qty: Decimal | str | None = None,
             price: Decimal | str | None = None) -> Trade:
        trade = self.engine.fill(self._open_order(order), None if qty is None else as_decimal(qty),
                                 None if price is None else as_decimal(price))
        self._changed_now()
        return trade

    def silent_fill(self, order: int | str | Order, qty: Decimal | str | None = None,
                    price: Decimal | str | None = None) -> Trade:
        self._silent = True
        try:
            return self.fill(order, qty, price)
        finally:
            self._silent = False

    def exchange_cancel(self, order: int | str | Order) -> Order:
        target = self._open_order(order)
        self.engine.terminate(target, "CANCELED", cancel_client_order_id=self._venue_client_id())
        self._changed_now()
        return target

    def exchange_expire(self, order: int | str | Order) -> Order:
        target = self._open_order(order)
        self.engine.terminate(target, "EXPIRED")
        self._changed_now()
        return target

    def _open_order(self, ref: int | str | Order) -> Order:
        if isinstance(ref, Order):
            return ref
        for order in self.engine.orders.values():
            if order.is_open and (order.order_id == ref or order.client_order_id == ref):
                return order
        raise KeyError(f"no open order {ref!r}")

    def _venue_client_id(self) -> str:
        return f"fake-cancel-{next(self._cancel_ids)}"

    # ------------------------------------------------------------------ stream control
    def pause_streams(self, buffer: bool = False) -> None:
        self._pause = "buffer" if buffer else "drop"
        if buffer:
            self._flowing.clear()

    def resume_streams(self) -> None:
        self._pause = None
        self._flowing.set()
        for client in self._clients:
            transport = client.request.transport
            if transport is not None and client.stalled:
                client.stalled = False
                transport.resume_reading()

    def stall_streams(self) -> None:
        """Half-open connections: stop reading (pings unanswered) and sending; close nothing."""
        self.pause_streams()
        for client in self._clients:
            transport = client.request.transport
            if transport is not None and not client.stalled:
                client.stalled = True
                transport.pause_reading()

    def duplicate_next_execution_report(self, times: int = 1) -> None:
        self._duplicate_reports += times

    def gap_next_stream_update(self, symbol: str | None = None, size: int = 1) -> None:
        self.engine.gap_next_update(self._symbol(symbol), size)

    async def drop_streams(self, abrupt: bool = False) -> None:
        clients = list(self._clients)
        for client in clients:
            if abrupt and client.request.transport is not None:
                client.request.transport.abort()
            else:
                await client.ws.close(code=1001, message=b"fake-binance: streams dropped")
        await self.wait_until(lambda: not any(c in self._clients for c in clients), timeout=10)

    def expire_listen_key(self, listen_key: str | None = None) -> None:
        keys = [listen_key] if listen_key is not None else list(self._listen_keys)
        for key in keys:
            self._listen_keys.pop(key, None)
            event = {"e": "listenKeyExpired", "E": self.server_time_ms(), "listenKey": key}
            for client in self._clients:
                if key in client.listen_keys:
                    self._enqueue(client, key, event)
                    client.listen_keys.discard(key)
                    self._background(self._close_after_flush(client))

    def _background(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_after_flush(self, client: StreamClient) -> None:
        await client.queue.join()
        await client.ws.close(code=1000, message=b"listenKeyExpired")

    # ------------------------------------------------------------------ stream events
    def _enqueue(self, client: StreamClient, stream: str, payload: dict, *, control: bool = False) -> None:
        if self._pause == "drop" and not control:
            self.dropped_messages += 1
            return
        data = {"stream": stream, "data": payload} if client.combined and not control else payload
        client.queue.put_nowait(json.dumps(data))

    def _emit_book(self, symbol: str, previous: tuple, book: Book) -> None:
        self._note_price(symbol, book.mid())
        now = self.server_time_ms()
        for client in self._clients:
            for stream in client.streams.values():
                if stream.symbol != symbol:
                    continue
                if stream.kind == "bookTicker":
                    best_bid, best_ask = book.best_bid(), book.best_ask()
                    payload = {"u": book.update_id, "s": symbol,
                               "b": fmt(best_bid and best_bid[0]), "B": fmt(best_bid and best_bid[1]),
                               "a": fmt(best_ask and best_ask[0]), "A": fmt(best_ask and best_ask[1])}
                elif stream.kind == "depthN":
                    payload = {"lastUpdateId": book.update_id,
                               "bids": [[fmt(p), fmt(q)] for p, q in book.bids[:stream.levels]],
                               "asks": [[fmt(p), fmt(q)] for p, q in book.asks[:stream.levels]]}
                else:
                    prev_bids, prev_asks = previous
                    payload = {"e": "depthUpdate", "E": now, "s": symbol,
                               "U": book.update_id, "u": book.update_id,
                               "b": _level_diff(prev_bids, book.bids, reverse=True),
                               "a": _level_diff(prev_asks, book.asks, reverse=False)}
                self._enqueue(client, stream.name, payload)

    def _send_user_event(self, account: str, payload: dict) -> None:
        for client in self._clients:
            for key in client.listen_keys:
                if self._listen_keys.get(key) == account:
                    self._enqueue(client, key, payload)

    def _emit_execution_report(self, order: Order, exec_type: str, trade: Trade | None,
                               cancel_client_order_id: str | None) -> None:
        if self._silent:
            return
        now = self.server_time_ms()
        is_cancel = exec_type == "CANCELED"
        report = {
            "e": "executionReport", "E": now, "s": order.symbol,
            "c": (cancel_client_order_id or self._venue_client_id()) if is_cancel else order.client_order_id,
            "S": order.side, "o": order.type, "f": order.time_in_force,
            "q": fmt(order.orig_qty), "p": fmt(order.price), "P": fmt(None), "F": fmt(None), "g": -1,
            "C": order.client_order_id if is_cancel else "",
            "x": exec_type, "X": order.status, "r": "NONE", "i": order.order_id,
            "l": fmt(trade.qty if trade else None), "z": fmt(order.executed_qty),
            "L": fmt(trade.price if trade else None), "n": fmt(trade.commission if trade else None),
            "N": trade.commission_asset if trade else None,
            "T": trade.time if trade else order.update_time, "t": trade.trade_id if trade else -1,
            "I": next(self._execution_ids), "w": order.is_open, "m": bool(trade and trade.is_maker), "M": bool(trade),
            "O": order.time, "Z": fmt(order.cum_quote), "Y": fmt(trade.quote_qty if trade else None),
            "Q": fmt(order.orig_quote_order_qty), "W": order.working_time, "V": "EXPIRE_MAKER",
        }
        self._send_user_event(order.account, report)
        if self._duplicate_reports > 0:
            self._duplicate_reports -= 1
            self._send_user_event(order.account, report)
        self._changed_now()

    def _emit_account_position(self, account: str, assets: set[str]) -> None:
        if self._silent:
            return
        now = self.server_time_ms()
        balances = [{"a": asset, "f": fmt(self.engine.balance(account, asset).free),
                     "l": fmt(self.engine.balance(account, asset).locked)} for asset in sorted(assets)]
        self._send_user_event(account, {"e": "outboundAccountPosition", "E": now, "u": now, "B": balances})

    def _note_price(self, symbol: str, price: Decimal | None) -> None:
        if price is None:
            return
        stats = self._stats.setdefault(symbol, {"open": price, "high": price, "low": price})
        stats["high"] = max(stats["high"], price)
        stats["low"] = min(stats["low"], price)

    # ------------------------------------------------------------------ HTTP dispatch
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if request.method == "GET" and (path == "/ws" or path.startswith("/ws/") or path == "/stream") \
                and request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws_handler(request)
        return await self._rest(request)

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        raw_query = request.rel_url.raw_query_string
        raw_body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))  # the query string wins
        api_key = request.headers.get("X-MBX-APIKEY")
        record = RecordedRequest(method, path, {k: v for k, v in params.items() if k != "signature"},
                                 api_key, self.server_time_ms())

        fault = self._take_fault(method, path)
        if fault is not None and fault.kind == "error":
            return self._answer(record, error=BinanceError(fault.status, fault.code, fault.msg,
                                                            retry_after=fault.retry_after))
        if fault is not None and fault.kind == "hold" and not fault.execute:
            return await self._hold(record)

        route = _ROUTES.get((method, path))
        if route is None:
            record.status = 404
            self._log(record)
            return web.Response(status=404, text=f"fake-binance: no route for {method} {path}")
        handler_name, security = route
        result, error = None, None
        try:
            key = self._authenticate(request, security, params, raw_query, raw_body)
            result = getattr(self, handler_name)(params, key)
        except BinanceError as exc:
            error = exc
        if fault is not None:  # executed; the answer is withheld (hold) or replaced (-1007)
            return await self._after_execution(record, fault)
        return self._answer(record, result=result, error=error)

    async def _after_execution(self, record: RecordedRequest, fault: _Fault) -> web.StreamResponse:
        self._changed_now()
        if fault.kind == "hold":
            return await self._hold(record)
        return self._answer(record, error=BinanceError(*UNKNOWN_STATUS))

    async def _hold(self, record: RecordedRequest) -> web.StreamResponse:
        """Answer nothing until release_held()/stop(); then 503 -1007 (the client is gone)."""
        event = asyncio.Event()
        self._held.append(event)
        self._log(record)
        if not self._stopping:
            await event.wait()
        return self._answer(record, error=BinanceError(*UNKNOWN_STATUS), log=False)

    def _answer(self, record: RecordedRequest, *, result: Any = None, error: BinanceError | None = None,
                log: bool = True) -> web.Response:
        if error is None:
            record.status = 200
            response = web.json_response(result, dumps=json.dumps)
        else:
            record.status, record.code = error.status, error.code
            headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
            if error.code is None:
                response = web.Response(status=error.status, text=error.msg, headers=headers)
            else:
                response = web.json_response({"code": error.code, "msg": error.msg},
                                             status=error.status, headers=headers)
        if log:
            self._log(record)
        return response

    def _log(self, record: RecordedRequest) -> None:
        self.requests.append(record)
        self._changed_now()

    def _authenticate(self, request: web.Request, security: str, params: dict[str, str],
                      raw_query: str, raw_body: str) -> ApiKey | None:
        if security == NONE:
            return None
        api_key = request.headers.get("X-MBX-APIKEY")
        if not api_key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        key = self._keys.get(api_key)
        if key is None:
            raise BinanceError(*INVALID_KEY)
        if security == KEY:
            return key
        signature = _param(request.rel_url.query, "signature") or _param(
            dict(parse_qsl(raw_body, keep_blank_values=True)), "signature")
        if not signature:
            raise mandatory_param_error("signature")
        payload = _strip_signature(raw_query) + _strip_signature(raw_body)
        expected = hmac.new(key.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        timestamp = _int_param(params, "timestamp", required=True)
        recv_window = _int_param(params, "recvWindow") or 5000
        if recv_window > 60000:
            raise BinanceError(400, -1131, "recvWindow must be less than 60000")
        now = self.server_time_ms()
        if timestamp >= now + 1000:
            raise BinanceError(400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - timestamp > recv_window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        if security == TRADE and not key.can_trade:
            raise BinanceError(*INVALID_KEY)
        return key

    # ------------------------------------------------------------------ public REST
    def _h_ping(self, params, key) -> dict:
        return {}

    def _h_time(self, params, key) -> dict:
        return {"serverTime": self.server_time_ms()}

    def _h_exchange_info(self, params, key) -> dict:
        symbols = _symbols_param(params)
        specs = [self.engine.spec(s) for s in symbols] if symbols else list(self.engine.specs.values())
        return {
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(spec) for spec in specs],
        }

    def _h_ticker_24hr(self, params, key) -> Any:
        return self._per_symbol(params, self._ticker_24hr)

    def _h_book_ticker(self, params, key) -> Any:
        return self._per_symbol(params, self._book_ticker)

    def _h_ticker_price(self, params, key) -> Any:
        def price(symbol: str) -> dict:
            return {"symbol": symbol, "price": fmt(self._last_price(symbol))}
        return self._per_symbol(params, price)

    def _per_symbol(self, params, render: Callable[[str], dict]) -> Any:
        if "symbol" in params:
            return render(self.engine.spec(params["symbol"]).symbol)
        symbols = _symbols_param(params) or list(self.engine.specs)
        return [render(self.engine.spec(s).symbol) for s in symbols]

    def _last_price(self, symbol: str) -> Decimal | None:
        return self.engine.last_price.get(symbol) or self.engine.books[symbol].mid()

    def _book_ticker(self, symbol: str) -> dict:
        book = self.engine.books[symbol]
        bid, ask = book.best_bid(), book.best_ask()
        return {"symbol": symbol, "bidPrice": fmt(bid and bid[0]), "bidQty": fmt(bid and bid[1]),
                "askPrice": fmt(ask and ask[0]), "askQty": fmt(ask and ask[1])}

    def _ticker_24hr(self, symbol: str) -> dict:
        now = self.server_time_ms()
        last = self._last_price(symbol) or Decimal(0)
        stats = self._stats.get(symbol, {"open": last, "high": last, "low": last})
        trades = [t for t in self.engine.trades if t.symbol == symbol]
        volume = sum((t.qty for t in trades), Decimal(0))
        quote_volume = sum((t.quote_qty for t in trades), Decimal(0))
        change = last - stats["open"]
        percent = (change / stats["open"] * 100).quantize(Decimal("0.001")) if stats["open"] else Decimal(0)
        return {
            "symbol": symbol, "priceChange": fmt(change), "priceChangePercent": format(percent, "f"),
            "weightedAvgPrice": fmt((quote_volume / volume) if volume else last),
            "prevClosePrice": fmt(stats["open"]), "lastPrice": fmt(last),
            "lastQty": fmt(trades[-1].qty if trades else None),
            **{k: v for k, v in self._book_ticker(symbol).items() if k != "symbol"},
            "openPrice": fmt(stats["open"]), "highPrice": fmt(max(stats["high"], last)),
            "lowPrice": fmt(min(stats["low"], last)), "volume": fmt(volume), "quoteVolume": fmt(quote_volume),
            "openTime": now - 86_400_000, "closeTime": now,
            "firstId": trades[0].trade_id if trades else -1, "lastId": trades[-1].trade_id if trades else -1,
            "count": len(trades),
        }

    def _h_depth(self, params, key) -> dict:
        symbol = self.engine.spec(_required(params, "symbol")).symbol
        limit = _int_param(params, "limit") or 100
        book = self.engine.books[symbol]
        return {"lastUpdateId": book.update_id,
                "bids": [[fmt(p), fmt(q)] for p, q in book.bids[:limit]],
                "asks": [[fmt(p), fmt(q)] for p, q in book.asks[:limit]]}

    # ------------------------------------------------------------------ user data stream
    def _h_listen_key_create(self, params, key: ApiKey) -> dict:
        for listen_key, account in self._listen_keys.items():
            if account == key.account:
                return {"listenKey": listen_key}
        listen_key = secrets.token_hex(30)
        self._listen_keys[listen_key] = key.account
        return {"listenKey": listen_key}

    def _h_listen_key_keepalive(self, params, key: ApiKey) -> dict:
        self._known_listen_key(params, key)
        return {}

    def _h_listen_key_close(self, params, key: ApiKey) -> dict:
        listen_key = self._known_listen_key(params, key)
        del self._listen_keys[listen_key]
        for client in self._clients:
            if listen_key in client.listen_keys:
                client.listen_keys.discard(listen_key)
                self._background(client.ws.close(code=1000, message=b"listenKey closed"))
        return {}

    def _known_listen_key(self, params, key: ApiKey) -> str:
        listen_key = _required(params, "listenKey")
        if self._listen_keys.get(listen_key) != key.account:
            raise BinanceError(400, -1125, "This listenKey does not exist.")
        return listen_key

    # ------------------------------------------------------------------ signed REST
    def _h_api_restrictions(self, params, key: ApiKey) -> dict:
        return {"ipRestrict": False, "createTime": 1_700_000_000_000, "enableReading": True,
                "enableSpotAndMarginTrading": key.can_trade, "enableWithdrawals": False,
                "enableInternalTransfer": False, "enableMargin": False, "enableFutures": False,
                "permitsUniversalTransfer": False, "enableVanillaOptions": False,
                "enableFixApiTrade": False, "enableFixReadOnly": False,
                "enablePortfolioMarginTrading": False}

    def _h_account(self, params, key: ApiKey) -> dict:
        balances = self.engine.balances.get(key.account, {})
        assets = set(balances)
        for spec in self.engine.specs.values():
            assets.update((spec.base, spec.quote))
        rows = [{"asset": a, "free": fmt(self.engine.balance(key.account, a).free),
                 "locked": fmt(self.engine.balance(key.account, a).locked)} for a in sorted(assets)]
        if params.get("omitZeroBalances") == "true":
            rows = [r for r in rows if Decimal(r["free"]) or Decimal(r["locked"])]
        rate = fmt(self.engine.taker_commission)
        return {
            "makerCommission": int(self.engine.maker_commission * 10000),
            "takerCommission": int(self.engine.taker_commission * 10000),
            "buyerCommission": 0, "sellerCommission": 0,
            "commissionRates": {"maker": fmt(self.engine.maker_commission), "taker": rate,
                                "buyer": fmt(None), "seller": fmt(None)},
            "canTrade": key.can_trade, "canWithdraw": False, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False,
            "updateTime": self.server_time_ms(), "accountType": "SPOT", "balances": rows,
            "permissions": ["SPOT"], "uid": 1,
        }

    def _h_new_order(self, params, key: ApiKey) -> dict:
        symbol = self.engine.spec(_required(params, "symbol")).symbol
        side = _required(params, "side")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1117, "Invalid side.")
        type_ = _required(params, "type")
        client_order_id = params.get("newClientOrderId") or f"fake-{secrets.token_hex(8)}"
        order = self.engine.place(
            key.account, symbol, side, type_,
            quantity=_decimal_param(params, "quantity"), price=_decimal_param(params, "price"),
            time_in_force=params.get("timeInForce"), client_order_id=client_order_id,
            quote_order_qty=_decimal_param(params, "quoteOrderQty"))
        self._changed_now()
        default_resp = "FULL" if type_ in ("LIMIT", "MARKET") else "ACK"
        resp_type = params.get("newOrderRespType", default_resp)
        if resp_type not in ("ACK", "RESULT", "FULL"):
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'newOrderRespType'.")
        return _order_json(order, resp_type)

    def _h_query_order(self, params, key: ApiKey) -> dict:
        symbol, order_id, client_id = self._order_ref(params)
        order = self.engine.find_order(key.account, symbol, order_id=order_id, client_order_id=client_id)
        return _order_json(order, "QUERY")

    def _h_cancel_order(self, params, key: ApiKey) -> dict:
        symbol, order_id, client_id = self._order_ref(params)
        cancel_id = params.get("newClientOrderId") or self._venue_client_id()
        order = self.engine.cancel(key.account, symbol, order_id=order_id, client_order_id=client_id,
                                   cancel_client_order_id=cancel_id)
        self._changed_now()
        return _order_json(order, "CANCEL", cancel_client_order_id=cancel_id)

    def _h_open_orders(self, params, key: ApiKey) -> list:
        symbol = self.engine.spec(params["symbol"]).symbol if "symbol" in params else None
        return [_order_json(o, "QUERY") for o in self.engine.open_orders(key.account, symbol)]

    def _h_cancel_open_orders(self, params, key: ApiKey) -> list:
        symbol = self.engine.spec(_required(params, "symbol")).symbol
        orders = self.engine.open_orders(key.account, symbol)
        if not orders:
            raise BinanceError(400, -2011, "Unknown order sent.")
        answers = []
        for order in orders:
            cancel_id = self._venue_client_id()
            self.engine.terminate(order, "CANCELED", cancel_client_order_id=cancel_id)
            answers.append(_order_json(order, "CANCEL", cancel_client_order_id=cancel_id))
        self._changed_now()
        return answers

    def _h_all_orders(self, params, key: ApiKey) -> list:
        symbol = self.engine.spec(_required(params, "symbol")).symbol
        orders = [o for o in self.engine.orders.values() if o.account == key.account and o.symbol == symbol]
        from_id = _int_param(params, "orderId")
        if from_id is not None:
            orders = [o for o in orders if o.order_id >= from_id]
        orders = _time_window(orders, params, lambda o: o.time)
        limit = min(_int_param(params, "limit") or 500, 1000)
        orders = orders[:limit] if from_id is not None else orders[-limit:]
        return [_order_json(o, "QUERY") for o in orders]

    def _h_my_trades(self, params, key: ApiKey) -> list:
        symbol = self.engine.spec(_required(params, "symbol")).symbol
        trades = [t for t in self.engine.trades if t.account == key.account and t.symbol == symbol]
        order_id = _int_param(params, "orderId")
        if order_id is not None:
            trades = [t for t in trades if t.order_id == order_id]
        from_id = _int_param(params, "fromId")
        if from_id is not None:
            trades = [t for t in trades if t.trade_id >= from_id]
        trades = _time_window(trades, params, lambda t: t.time)
        limit = min(_int_param(params, "limit") or 500, 1000)
        trades = trades[:limit] if from_id is not None else trades[-limit:]
        return [_trade_json(t) for t in trades]

    def _order_ref(self, params) -> tuple[str, int | None, str | None]:
        symbol = self.engine.spec(_required(params, "symbol")).symbol
        order_id = _int_param(params, "orderId")
        client_id = params.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise BinanceError(400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, "
                                           "but both were empty/null!")
        return symbol, order_id, client_id

    # ------------------------------------------------------------------ WebSocket
    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        streams: dict[str, _Stream] = {}
        listen_keys: set[str] = set()
        combined = request.path == "/stream"
        if combined:
            names = [n for n in request.query.get("streams", "").split("/") if n]
        elif request.path.startswith("/ws/"):
            names = [request.path[len("/ws/"):]]
        else:
            names = []
        for name in names:
            if name in self._listen_keys:
                listen_keys.add(name)
                continue
            stream = _parse_stream(name)
            if stream is not None and stream.symbol in self.engine.specs:
                streams[name] = stream
            elif combined or "@" in name:
                return web.Response(status=400, text=f"fake-binance: invalid stream {name!r}")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        client = StreamClient(ws, request, request.path_qs, combined, streams, listen_keys)
        client.writer = asyncio.create_task(self._ws_writer(client))
        self._clients.append(client)
        self._changed_now()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._ws_command(client, message.data)
        finally:
            self._clients.remove(client)
            client.writer.cancel()
            self._changed_now()
        return ws

    async def _ws_writer(self, client: StreamClient) -> None:
        while True:
            message = await client.queue.get()
            try:
                await self._flowing.wait()
                if not client.ws.closed:
                    await client.ws.send_str(message)
                    client.sent += 1
            except (ConnectionError, RuntimeError):
                pass  # the connection went away; its handler cleans up
            finally:
                client.queue.task_done()

    def _ws_command(self, client: StreamClient, text: str) -> None:
        try:
            command = json.loads(text)
            method, request_id = command["method"], command.get("id")
            params = command.get("params", [])
        except (ValueError, KeyError, TypeError):
            self._enqueue(client, "", {"error": {"code": 3, "msg": "Invalid JSON"}}, control=True)
            return
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            parsed = [_parse_stream(name) for name in params]
            if any(s is None or s.symbol not in self.engine.specs for s in parsed):
                self._enqueue(client, "", {"error": {"code": 2, "msg": "Invalid request: unknown stream"},
                                           "id": request_id}, control=True)
                return
            for stream in parsed:
                if method == "SUBSCRIBE":
                    client.streams[stream.name] = stream
                else:
                    client.streams.pop(stream.name, None)
            self._enqueue(client, "", {"result": None, "id": request_id}, control=True)
        elif method == "LIST_SUBSCRIPTIONS":
            self._enqueue(client, "", {"result": list(client.streams) + sorted(client.listen_keys),
                                       "id": request_id}, control=True)
        else:
            self._enqueue(client, "", {"error": {"code": 2, "msg": f"Invalid request: unknown method {method}"},
                                       "id": request_id}, control=True)
        self._changed_now()


_ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", "/api/v3/ping"): ("_h_ping", NONE),
    ("GET", "/api/v3/time"): ("_h_time", NONE),
    ("GET", "/api/v3/exchangeInfo"): ("_h_exchange_info", NONE),
    ("GET", "/api/v3/ticker/24hr"): ("_h_ticker_24hr", NONE),
    ("GET", "/api/v3/ticker/bookTicker"): ("_h_book_ticker", NONE),
    ("GET", "/api/v3/ticker/price"): ("_h_ticker_price", NONE),
    ("GET", "/api/v3/depth"): ("_h_depth", NONE),
    ("POST", "/api/v3/userDataStream"): ("_h_listen_key_create", KEY),
    ("PUT", "/api/v3/userDataStream"): ("_h_listen_key_keepalive", KEY),
    ("DELETE", "/api/v3/userDataStream"): ("_h_listen_key_close", KEY),
    ("GET", "/api/v3/account"): ("_h_account", SIGNED),
    ("POST", "/api/v3/order"): ("_h_new_order", TRADE),
    ("GET", "/api/v3/order"): ("_h_query_order", SIGNED),
    ("DELETE", "/api/v3/order"): ("_h_cancel_order", TRADE),
    ("GET", "/api/v3/openOrders"): ("_h_open_orders", SIGNED),
    ("DELETE", "/api/v3/openOrders"): ("_h_cancel_open_orders", TRADE),
    ("GET", "/api/v3/allOrders"): ("_h_all_orders", SIGNED),
    ("GET", "/api/v3/myTrades"): ("_h_my_trades", SIGNED),
    ("GET", "/sapi/v1/account/apiRestrictions"): ("_h_api_restrictions", SIGNED),
}


# --------------------------------------------------------------------------- parameters
def _param(mapping, name: str) -> str | None:
    value = mapping.get(name)
    return value if value not in (None, "") else None


def _required(params: dict[str, str], name: str) -> str:
    value = _param(params, name)
    if value is None:
        raise mandatory_param_error(name)
    return value


def _decimal_param(params: dict[str, str], name: str) -> Decimal | None:
    value = _param(params, name)
    if value is None:
        return None
    if not _DECIMAL_RE.match(value):
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    return Decimal(value)


def _int_param(params: dict[str, str], name: str, required: bool = False) -> int | None:
    value = _param(params, name)
    if value is None:
        if required:
            raise mandatory_param_error(name)
        return None
    if not _INT_RE.match(value):
        raise BinanceError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^[0-9]{1,20}$'.")
    return int(value)


def _symbols_param(params: dict[str, str]) -> list[str]:
    if "symbol" in params:
        return [params["symbol"]]
    if "symbols" in params:
        try:
            symbols = json.loads(params["symbols"])
        except ValueError:
            raise BinanceError(400, -1100, "Illegal characters found in parameter 'symbols'.") from None
        return [str(s) for s in symbols]
    return []


def _time_window(items: list, params: dict[str, str], when: Callable[[Any], int]) -> list:
    start, end = _int_param(params, "startTime"), _int_param(params, "endTime")
    return [i for i in items if (start is None or when(i) >= start) and (end is None or when(i) <= end)]


def _level_diff(previous: tuple, current: list, *, reverse: bool) -> list[list[str]]:
    before = dict(previous)
    after = {price: qty for price, qty in current}
    changed = {p: q for p, q in after.items() if before.get(p) != q}
    changed.update({p: Decimal(0) for p in before if p not in after})
    return [[fmt(p), fmt(changed[p])] for p in sorted(changed, reverse=reverse)]


# --------------------------------------------------------------------------- JSON shapes
def _symbol_info(spec: SymbolSpec) -> dict:
    notional = ({"filterType": "NOTIONAL", "minNotional": fmt(spec.min_notional), "applyMinToMarket": True,
                 "maxNotional": fmt(spec.max_notional), "applyMaxToMarket": False, "avgPriceMins": 5}
                if spec.notional_filter == "NOTIONAL" else
                {"filterType": "MIN_NOTIONAL", "minNotional": fmt(spec.min_notional), "applyToMarket": True,
                 "avgPriceMins": 5})
    return {
        "symbol": spec.symbol, "status": "TRADING",
        "baseAsset": spec.base, "baseAssetPrecision": spec.base_precision,
        "quoteAsset": spec.quote, "quotePrecision": spec.quote_precision,
        "quoteAssetPrecision": spec.quote_precision,
        "baseCommissionPrecision": spec.base_precision, "quoteCommissionPrecision": spec.quote_precision,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False, "cancelReplaceAllowed": False,
        "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(spec.min_price), "maxPrice": fmt(spec.max_price),
             "tickSize": fmt(spec.tick_size)},
            {"filterType": "LOT_SIZE", "minQty": fmt(spec.min_qty), "maxQty": fmt(spec.max_qty),
             "stepSize": fmt(spec.step_size)},
            notional,
            {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(None), "maxQty": fmt(spec.max_qty),
             "stepSize": fmt(None)},
        ],
        "permissions": [], "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


def _order_json(order: Order, shape: str, *, cancel_client_order_id: str | None = None) -> dict:
    """An order as Binance renders it: shape ACK / RESULT / FULL (new order), QUERY, CANCEL."""
    out: dict[str, Any] = {"symbol": order.symbol}
    if shape == "CANCEL":
        out["origClientOrderId"] = order.client_order_id
    out.update({"orderId": order.order_id, "orderListId": -1,
                "clientOrderId": cancel_client_order_id if shape == "CANCEL" else order.client_order_id})
    if shape in ("ACK", "RESULT", "FULL", "CANCEL"):
        out["transactTime"] = order.update_time if shape == "CANCEL" else order.time
    if shape == "ACK":
        return out
    out.update({
        "price": fmt(order.price), "origQty": fmt(order.orig_qty), "executedQty": fmt(order.executed_qty),
        "cummulativeQuoteQty": fmt(order.cum_quote), "status": order.status,
        "timeInForce": order.time_in_force, "type": order.type, "side": order.side,
    })
    if shape == "QUERY":
        out.update({"stopPrice": fmt(None), "icebergQty": fmt(None), "time": order.time,
                    "updateTime": order.update_time, "isWorking": True,
                    "workingTime": order.working_time, "origQuoteOrderQty": fmt(order.orig_quote_order_qty)})
    elif shape in ("RESULT", "FULL"):
        out.update({"workingTime": order.working_time, "origQuoteOrderQty": fmt(order.orig_quote_order_qty)})
    out["selfTradePreventionMode"] = "EXPIRE_MAKER"
    if shape == "FULL":
        out["fills"] = [{"price": fmt(t.price), "qty": fmt(t.qty), "commission": fmt(t.commission),
                         "commissionAsset": t.commission_asset, "tradeId": t.trade_id} for t in order.trades]
    return out


def _trade_json(trade: Trade) -> dict:
    return {
        "symbol": trade.symbol, "id": trade.trade_id, "orderId": trade.order_id, "orderListId": -1,
        "price": fmt(trade.price), "qty": fmt(trade.qty), "quoteQty": fmt(trade.quote_qty),
        "commission": fmt(trade.commission), "commissionAsset": trade.commission_asset,
        "time": trade.time, "isBuyer": trade.side == "BUY", "isMaker": trade.is_maker, "isBestMatch": True,
    }

