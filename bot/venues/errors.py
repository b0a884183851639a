"""From ccxt's exceptions to the error taxonomy (spec section 11).

The venue's own error code (Binance: ``{"code": -2010, ...}`` in the message) decides first, the ccxt
exception class second: ccxt's class alone is ambiguous (measured against ccxt 4.5.90, see the table in
``tests/fakes/binance_server.py``): a read-only key's -2015 comes out as ``DDoSProtection`` once the ccxt
instance has made a successful private call; a 429 is ``DDoSProtection``, which is *not* a
``RateLimitExceeded``; "unknown status" (-1007) and a real timeout are both ``RequestTimeout``.

The mapping depends on the call: a network failure during a *submit* means the order may exist
(``UNKNOWN_ORDER_STATUS``, resolved by a lookup, never by resubmitting); the same failure during a read is
plain ``VENUE_UNAVAILABLE`` and may be retried.

Messages are cleaned before they leave: query strings (timestamps and signatures of signed GETs) are cut
from URLs, and the client's own key material is masked if a venue ever echoes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import ccxt.async_support as ccxt

from bot.domain.errors import ErrorCode
from bot.domain.venue import VenueError

_CODE_RE = re.compile(r'"code"\s*:\s*(-?\d+)')
_MSG_RE = re.compile(r'"msg"\s*:\s*"((?:[^"\\]|\\.)*)"')
_URL_QUERY_RE = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")

# Binance venue codes whose meaning does not depend on the call (https://developers.binance.com, errors)
_BINANCE_CODES: dict[int, ErrorCode] = {
    -1003: ErrorCode.RATE_LIMITED,  # too much request weight
    -1015: ErrorCode.RATE_LIMITED,  # too many new orders
    -1002: ErrorCode.AUTHENTICATION_FAILED,  # unauthorized
    -1022: ErrorCode.AUTHENTICATION_FAILED,  # signature not valid
    -2014: ErrorCode.AUTHENTICATION_FAILED,  # API-key format invalid
    -2015: ErrorCode.AUTHENTICATION_FAILED,  # invalid API-key, IP, or permissions for action
    -1021: ErrorCode.CLOCK_DRIFT,  # timestamp outside recvWindow / ahead of the server
    -1001: ErrorCode.VENUE_UNAVAILABLE,  # internal error; disconnected
    -1008: ErrorCode.VENUE_UNAVAILABLE,  # server busy
    -1013: ErrorCode.INVALID_ORDER,  # filter failure (PRICE_FILTER, LOT_SIZE, NOTIONAL...)
    -1100: ErrorCode.INVALID_ORDER,
    -1102: ErrorCode.INVALID_ORDER,
    -1106: ErrorCode.INVALID_ORDER,
    -1111: ErrorCode.INVALID_ORDER,  # precision over the maximum
    -1112: ErrorCode.INVALID_ORDER,
    -1115: ErrorCode.INVALID_ORDER,  # invalid timeInForce
    -1116: ErrorCode.INVALID_ORDER,  # invalid orderType
    -1117: ErrorCode.INVALID_ORDER,  # invalid side
    -1121: ErrorCode.INVALID_ORDER,  # invalid symbol
    -2011: ErrorCode.ORDER_REJECTED,  # cancel rejected: unknown order
}


class OrderNotFoundError(VenueError):
    """The venue does not know the order (Binance -2011 on cancel, -2013 on query)."""


def venue_code(message: str) -> int | None:
    match = _CODE_RE.search(message)
    return int(match.group(1)) if match else None


def venue_message(message: str) -> str:
    match = _MSG_RE.search(message)
    if match is None:
        return message
    try:
        return json.loads(f'"{match.group(1)}"')
    except ValueError:
        return match.group(1)


def clean_message(message: str, secrets: Iterable[str] = ()) -> str:
    """Cut query strings from URLs and mask any secret value; bounded length."""
    text = _URL_QUERY_RE.sub(r"\1?…", message)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text[:500]


def parse_retry_after(headers: Mapping[str, str] | None, now: datetime | None = None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    if not headers:
        return None
    value = None
    for key, item in headers.items():
        if key.lower() == "retry-after":
            value = item
            break
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return seconds


def map_ccxt_error(
    exc: BaseException,
    *,
    submit: bool = False,
    retry_after_s: float | None = None,
    secrets: Iterable[str] = (),
    body: str = "",
) -> VenueError:
    """The VenueError for an exception raised by a ccxt call. ``submit`` marks an order submission; ``body``
    is the venue's answer when there was one (ccxt's message does not always keep the venue's code)."""
    raw = str(exc)
    code = venue_code(raw)
    if code is None and body:
        code = venue_code(body[:2000])
    text = clean_message(raw or type(exc).__name__, secrets)
    vcode = str(code) if code is not None else None
    result = _classify(exc, code, raw, submit)
    if isinstance(exc, ccxt.OrderNotFound) or code in (-2011, -2013):
        return OrderNotFoundError(ErrorCode.ORDER_REJECTED, f"unknown order: {text}", venue_code=vcode)
    if result is ErrorCode.RATE_LIMITED:
        return VenueError(result, f"rate limited by the venue: {text}", retry_after_s=retry_after_s, venue_code=vcode)
    if result is ErrorCode.UNKNOWN_ORDER_STATUS:
        return VenueError(result, f"submit outcome unknown, the order may exist (look it up by client id): {text}", venue_code=vcode)
    return VenueError(result, text, retry_after_s=retry_after_s if result is ErrorCode.VENUE_UNAVAILABLE else None, venue_code=vcode)


def _classify(exc: BaseException, code: int | None, raw: str, submit: bool) -> ErrorCode:
    if code == -1007:  # "Send status unknown; execution status unknown"
        return ErrorCode.UNKNOWN_ORDER_STATUS if submit else ErrorCode.VENUE_UNAVAILABLE
    if code == -2010:  # new order rejected: the message says why
        insufficient = isinstance(exc, ccxt.InsufficientFunds) or "insufficient balance" in raw.lower()
        return ErrorCode.INSUFFICIENT_BALANCE if insufficient else ErrorCode.ORDER_REJECTED
    if code is not None and code in _BINANCE_CODES:
        return _BINANCE_CODES[code]
    if isinstance(exc, ccxt.InsufficientFunds):
        return ErrorCode.INSUFFICIENT_BALANCE
    if isinstance(exc, (ccxt.RateLimitExceeded, ccxt.DDoSProtection)):  # siblings in ccxt 4.5.90: both
        return ErrorCode.RATE_LIMITED
    if isinstance(exc, ccxt.InvalidNonce):
        return ErrorCode.CLOCK_DRIFT
    if isinstance(exc, ccxt.AuthenticationError):
        return ErrorCode.AUTHENTICATION_FAILED
    if isinstance(exc, ccxt.OrderNotFound):
        return ErrorCode.ORDER_REJECTED
    if isinstance(exc, (ccxt.InvalidOrder, ccxt.BadRequest, ccxt.ArgumentsRequired)):
        return ErrorCode.INVALID_ORDER
    if isinstance(exc, ccxt.RequestTimeout):
        return ErrorCode.UNKNOWN_ORDER_STATUS if submit else ErrorCode.VENUE_UNAVAILABLE
    if isinstance(exc, (ccxt.NetworkError, ccxt.OperationFailed)):
        # connection refused, 5xx, maintenance, bad response: for a submit the request may have arrived
        return ErrorCode.VENUE_UNAVAILABLE
    if isinstance(exc, ccxt.ExchangeError):
        return ErrorCode.ORDER_REJECTED
    # not a ccxt error (a bug, a transport error ccxt did not wrap): unknown is unsafe
    return ErrorCode.UNKNOWN_ORDER_STATUS if submit else ErrorCode.VENUE_UNAVAILABLE


RETRYABLE = frozenset({ErrorCode.VENUE_UNAVAILABLE, ErrorCode.RATE_LIMITED})
