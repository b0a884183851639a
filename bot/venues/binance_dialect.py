"""What is Binance-specific in the ccxt adapter: endpoints, ccxt configuration, order parameters, statuses.

Everything else in ``CcxtVenue`` goes through ccxt's unified API; a second venue supplies its own dialect
(same attributes) and, if it has one, its own user-data stream (see docs/venues.md).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from bot.config import VenueSettings
from bot.domain.credentials import Credentials
from bot.domain.errors import ErrorCode
from bot.domain.instrument import FeeModel
from bot.domain.intent import OrderType, TimeInForce
from bot.domain.order import OrderStatus
from bot.domain.venue import OrderRequest, VenueError
from bot.venues.instruments import optional_decimal

PUBLIC_REST = "https://api.binance.com"
PUBLIC_WS = "wss://stream.binance.com:9443"
TESTNET_REST = "https://testnet.binance.vision"
TESTNET_WS = "wss://stream.testnet.binance.vision"

_STATUS = {
    "NEW": OrderStatus.ACCEPTED,
    "PENDING_NEW": OrderStatus.PENDING_SUBMIT,  # order-list legs not yet working
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "PENDING_CANCEL": OrderStatus.PENDING_CANCEL,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,  # self-trade prevention
}
_TYPES = {"LIMIT": OrderType.LIMIT, "LIMIT_MAKER": OrderType.LIMIT_MAKER, "MARKET": OrderType.MARKET}


def endpoints(settings: VenueSettings) -> tuple[str, str]:
    """(REST base, WebSocket base). ``sandbox`` with the public defaults selects the public spot testnet;
    explicitly configured URLs always win."""
    rest, ws = settings.rest_url.rstrip("/"), settings.ws_url.rstrip("/")
    if settings.sandbox:
        if rest == PUBLIC_REST:
            rest = TESTNET_REST
        if ws == PUBLIC_WS:
            ws = TESTNET_WS
    return rest, ws


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def ccxt_config(settings: VenueSettings, credentials: Credentials | None) -> dict[str, Any]:
    """The constructor dict for ccxt's binance: every REST URL on the configured host (a stray call to a
    section we did not mean to use then fails visibly there instead of leaving for another host), spot only,
    no currency or margin endpoints at load time, our recvWindow, our own time correction."""
    rest, _ = endpoints(settings)
    config: dict[str, Any] = {
        "enableRateLimit": settings.enable_rate_limit,
        "timeout": settings.request_timeout_ms,
        "options": _deep_merge(
            {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
                "recvWindow": settings.recv_window_ms,
                "adjustForTimeDifference": False,  # ClockSync measures and sets timeDifference
                "timeDifference": 0,
            },
            settings.ccxt_options,
        ),
    }
    if rest != PUBLIC_REST:
        urls = ccxt.binance().describe()["urls"]["api"]

        def rewrite(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: rewrite(v) for k, v in node.items()}
            if isinstance(node, str) and urlsplit(node).scheme in ("http", "https"):
                return rest + urlsplit(node).path
            return node

        api = rewrite({k: v for k, v in urls.items() if k != "ws"})
        config["urls"] = {"api": api, "test": api}
    if credentials is not None:
        config["apiKey"] = credentials.api_key.get_secret_value()
        config["secret"] = credentials.secret.get_secret_value()
    return config


def make_exchange_factory(settings: VenueSettings) -> Any:
    """An ExchangeFactory: a fresh ccxt.async_support.binance per key, numbers as strings."""
    rest, _ = endpoints(settings)

    def factory(credentials: Credentials | None) -> Any:
        exchange = ccxt_async.binance(ccxt_config(settings, credentials))
        exchange.number = str
        if rest.startswith("http://"):
            exchange.timeout_on_exit = 0  # the 250 ms grace is for TLS transports
        return exchange

    return factory


class BinanceDialect:
    name = "binance"
    has_fill_sequence = False  # trade ids increase per symbol but are shared by all users: not contiguous

    def order_params(self, request: OrderRequest) -> tuple[str, dict[str, Any]]:
        """(ccxt order type, params) for a request. Our client id always goes with it."""
        params: dict[str, Any] = {"newClientOrderId": request.client_order_id}
        if request.order_type is OrderType.MARKET:
            return "market", params
        if request.order_type is OrderType.LIMIT_MAKER:
            if request.tif is not TimeInForce.GTC:
                raise VenueError(ErrorCode.INVALID_ORDER, f"post-only (LIMIT_MAKER) orders rest until cancelled: tif {request.tif.value} is not possible")
            params["postOnly"] = True
            return "limit", params
        params["timeInForce"] = request.tif.value
        return "limit", params

    def lookup_params(self, client_order_id: str) -> dict[str, Any]:
        return {"origClientOrderId": client_order_id}

    def cancel_ref(self, client_order_id: str, venue_order_id: str | None) -> tuple[str | None, dict[str, Any]]:
        """Binance: orderId wins when both are sent; without it, the original client id."""
        if venue_order_id:
            return venue_order_id, {}
        return None, {"origClientOrderId": client_order_id}

    def trades_since_params(self, last_trade_id: int | None) -> dict[str, Any]:
        return {} if last_trade_id is None else {"fromId": last_trade_id + 1}

    def status(self, raw: str | None) -> OrderStatus | None:
        return _STATUS.get(raw or "")

    def order_type(self, raw: str | None) -> OrderType:
        return _TYPES.get(raw or "", OrderType.LIMIT)

    def canceled_client_order_id(self, result: Mapping[str, Any]) -> str | None:
        """ccxt's clientOrderId of a cancel answer is the cancel's own id; the order's is origClientOrderId."""
        return (result.get("info") or {}).get("origClientOrderId")

    def fees_from_account(self, info: Mapping[str, Any]) -> FeeModel | None:
        rates = info.get("commissionRates") if isinstance(info, Mapping) else None
        if not isinstance(rates, Mapping):
            return None
        maker = optional_decimal(rates.get("maker"), field="commissionRates.maker")
        taker = optional_decimal(rates.get("taker"), field="commissionRates.taker")
        if maker is None or taker is None:
            return None
        return FeeModel(maker=maker, taker=taker)

    def response_fills(self, result: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The immediate fills of a FULL submit answer, as Binance sends them."""
        fills = (result.get("info") or {}).get("fills") or []
        return [f for f in fills if isinstance(f, Mapping)]

    @staticmethod
    def decimal(value: Any, field: str) -> Decimal:
        result = optional_decimal(value, field=field)
        if result is None:
            raise ValueError(f"{field}: missing")
        return result
