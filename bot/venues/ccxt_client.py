"""Two ccxt clients with two keys, kept apart by construction (spec 15).

- ``ReadClient`` (the read key, or no key for public data): markets, time, balances, open orders, order
  lookups, trades, the user-data stream's listen key. It has no method that trades.
- ``TradeClient`` (the trade key only): create, cancel, cancel-all, cancel-all-after. It has no method that
  reads what the read key can read; its markets are handed over from the read client, so ccxt never sends a
  read with the trade key. It refuses to be built from anything but a ``KeyScope.TRADE`` credential.

``CcxtCall`` is what both share: every call is timed into the metrics, and every ccxt exception becomes a
``VenueError`` with the taxonomy code, the venue's Retry-After (captured per call from the response
headers, safe under concurrency: a context variable, not ccxt's ``last_response_headers``) and a message with
no query string and no key material.
"""

from __future__ import annotations

import asyncio
import contextvars
import decimal
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

import ccxt.async_support as ccxt

from bot.domain.credentials import Credentials, KeyScope
from bot.domain.errors import ErrorCode
from bot.domain.ports import Clock
from bot.domain.venue import VenueError
from bot.venues.errors import OrderNotFoundError, map_ccxt_error, parse_retry_after
from bot.venues.metrics import VenueMetrics
from bot.venues.retry import RetryPolicy, Sleep, retry_idempotent

log = logging.getLogger(__name__)
T = TypeVar("T")

# (headers, body) of the last HTTP response of the current task's call
_response: contextvars.ContextVar[tuple[Mapping[str, str], str] | None] = contextvars.ContextVar("venue_response", default=None)


class CcxtCall:
    """One ccxt exchange instance with error mapping, header capture and timing."""

    def __init__(self, exchange: Any, *, role: str, metrics: VenueMetrics, clock: Clock, secrets: tuple[str, ...] = ()) -> None:
        self.exchange = exchange
        self.role = role
        self._metrics = metrics
        self._clock = clock
        self._secrets = secrets
        original = exchange.on_rest_response

        def capture(code: Any, reason: Any, url: Any, method: Any, headers: Any, body: Any, *rest: Any) -> Any:
            _response.set((headers, body if isinstance(body, str) else ""))
            return original(code, reason, url, method, headers, body, *rest)

        exchange.on_rest_response = capture

    async def __call__(self, endpoint: str, fn: Callable[..., Awaitable[T]], *args: Any, submit: bool = False, **kwargs: Any) -> T:
        _response.set(None)
        start = self._clock.monotonic_ns()
        try:
            # ccxt's decimal_to_precision mutates the current decimal context in place (rounding HALF_UP,
            # Underflow trapped): give every call its own context so our arithmetic never changes under us.
            with decimal.localcontext():
                return await fn(*args, **kwargs)
        except VenueError:
            raise
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # every ccxt error (and anything ccxt failed to wrap) is mapped
            response = _response.get()
            headers, body = response if response is not None else (None, "")
            err = map_ccxt_error(exc, submit=submit, retry_after_s=parse_retry_after(headers), secrets=self._secrets, body=body)
            self._metrics.errors[err.code.value] += 1
            log.warning("%s %s %s failed: %s (%s)", self.exchange.id, self.role, endpoint, err.code, type(exc).__name__)
            raise err from None  # the ccxt exception text may carry URLs with query strings: not chained
        finally:
            self._metrics.request(f"{self.role}:{endpoint}", self._clock.monotonic_ns() - start)

    async def close(self) -> None:
        try:
            await self.exchange.close()
        except Exception:  # closing must never fail a shutdown
            log.exception("closing the %s client failed", self.role)


class ExchangeFactory(Protocol):
    def __call__(self, credentials: Credentials | None) -> Any:
        """A configured ccxt.async_support exchange (numbers as strings) with these credentials (or none)."""


def _secrets_of(credentials: Credentials | None) -> tuple[str, ...]:
    if credentials is None:
        return ()
    values = [credentials.api_key.get_secret_value(), credentials.secret.get_secret_value()]
    if credentials.passphrase is not None:
        values.append(credentials.passphrase.get_secret_value())
    return tuple(values)


class ReadClient:
    """Reads with the read key. Idempotent calls are retried with backoff and jitter."""

    def __init__(
        self,
        factory: ExchangeFactory,
        credentials: Credentials | None,
        *,
        metrics: VenueMetrics,
        clock: Clock,
        retry: RetryPolicy,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if credentials is not None and credentials.scope is not KeyScope.READ:
            raise ValueError(f"the read client takes a read key, not {credentials.scope.value} key {credentials.fingerprint()}")
        self.credentials = credentials
        self.call = CcxtCall(factory(credentials), role="read", metrics=metrics, clock=clock, secrets=_secrets_of(credentials))
        self.exchange = self.call.exchange
        self._retry = retry
        self._rng = rng or random.Random()
        self._sleep = sleep

    async def _read(self, endpoint: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return await retry_idempotent(endpoint, lambda: self.call(endpoint, fn, *args, **kwargs), self._retry, rng=self._rng, sleep=self._sleep)

    # --- public
    async def load_markets(self) -> dict[str, Any]:
        return await self._read("load_markets", self.exchange.load_markets, True)

    async def fetch_time_ms(self) -> int:
        return int(await self._read("fetch_time", self.exchange.fetch_time))

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        return await self._read("fetch_ticker", self.exchange.fetch_ticker, symbol)

    # --- private (read key)
    def _need_key(self) -> None:
        if self.credentials is None:
            raise VenueError(ErrorCode.AUTHENTICATION_FAILED, "no read key configured: private reads are not available")

    async def fetch_balance(self) -> dict[str, Any]:
        self._need_key()
        return await self._read("fetch_balance", self.exchange.fetch_balance)

    async def fetch_open_orders(self, symbol: str) -> list[dict[str, Any]]:
        self._need_key()
        return await self._read("fetch_open_orders", self.exchange.fetch_open_orders, symbol)

    async def fetch_order(self, symbol: str, order_id: str | None, params: dict[str, Any]) -> dict[str, Any] | None:
        """None when the venue has no such order."""
        self._need_key()
        try:
            return await self._read("fetch_order", self.exchange.fetch_order, order_id, symbol, params)
        except OrderNotFoundError:
            return None

    async def fetch_my_trades(self, symbol: str, params: dict[str, Any], limit: int | None = None) -> list[dict[str, Any]]:
        self._need_key()
        return await self._read("fetch_my_trades", self.exchange.fetch_my_trades, symbol, None, limit, params)

    async def raw(self, endpoint: str, method_name: str, params: dict[str, Any]) -> Any:
        """A venue-specific read endpoint (listen keys, key permissions): ccxt's implicit API method."""
        self._need_key()
        return await self._read(endpoint, getattr(self.exchange, method_name), params)

    async def close(self) -> None:
        await self.call.close()


class TradeClient:
    """Create and cancel with the trade key. A submit is never retried; cancels are (idempotent)."""

    def __init__(
        self,
        factory: ExchangeFactory,
        credentials: Credentials,
        *,
        markets: Mapping[str, Any],
        metrics: VenueMetrics,
        clock: Clock,
        retry: RetryPolicy,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not isinstance(credentials, Credentials) or credentials.scope is not KeyScope.TRADE:
            raise ValueError("the trade client is built only from a trade key (KeyScope.TRADE)")
        if not markets:
            raise ValueError("the trade client needs the markets loaded by the read client")
        self.fingerprint = credentials.fingerprint()
        exchange = factory(credentials)
        exchange.set_markets(dict(markets))  # no load_markets with the trade key
        self.call = CcxtCall(exchange, role="trade", metrics=metrics, clock=clock, secrets=_secrets_of(credentials))
        self.exchange = exchange
        self._retry = retry
        self._rng = rng or random.Random()
        self._sleep = sleep

    @property
    def supports_cancel_all_after(self) -> bool:
        return bool(self.exchange.has.get("cancelAllOrdersAfter"))

    def set_time_difference(self, time_difference_ms: int) -> None:
        self.exchange.options["timeDifference"] = time_difference_ms

    async def create_order(self, symbol: str, type_: str, side: str, amount: str, price: str | None, params: dict[str, Any]) -> dict[str, Any]:
        return await self.call("create_order", self.exchange.create_order, symbol, type_, side, amount, price, params, submit=True)

    async def cancel_order(self, symbol: str, order_id: str | None, params: dict[str, Any]) -> dict[str, Any]:
        return await retry_idempotent(
            "cancel_order",
            lambda: self.call("cancel_order", self.exchange.cancel_order, order_id, symbol, params),
            self._retry,
            rng=self._rng,
            sleep=self._sleep,
        )

    async def cancel_all_orders(self, symbol: str) -> list[dict[str, Any]]:
        return await retry_idempotent(
            "cancel_all_orders",
            lambda: self.call("cancel_all_orders", self.exchange.cancel_all_orders, symbol),
            self._retry,
            rng=self._rng,
            sleep=self._sleep,
        )

    async def cancel_all_orders_after(self, timeout_ms: int) -> Any:
        return await self.call("cancel_all_orders_after", self.exchange.cancel_all_orders_after, timeout_ms)

    async def close(self) -> None:
        await self.call.close()
