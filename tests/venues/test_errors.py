"""Every error class mapped to its taxonomy code; Retry-After honoured; a submit is never retried blindly."""

from __future__ import annotations

import random
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest

from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.order import OrderStatus
from bot.domain.venue import OrderRequest, VenueError
from bot.venues.errors import clean_message, map_ccxt_error, parse_retry_after
from bot.venues.retry import Backoff, RetryPolicy, retry_idempotent
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import READ_SECRET, TRADE_SECRET, Harness, SleepRecorder

D = Decimal


def buy(coid: str, qty: str = "0.1", price: str = "99") -> OrderRequest:
    return OrderRequest(coid, "BTC/USDT", Side.BUY, D(qty), OrderType.LIMIT, D(price), TimeInForce.GTC)


async def expect(code: ErrorCode, coro) -> VenueError:  # type: ignore[no-untyped-def]
    with pytest.raises(VenueError) as raised:
        await coro
    assert raised.value.code is code, raised.value
    return raised.value


# ---------------------------------------------------------------------------- through ccxt and the fake
async def test_insufficient_balance(fake: FakeBinance, harness: Harness) -> None:
    err = await expect(ErrorCode.INSUFFICIENT_BALANCE, harness.venue.place_order(buy("ib-1", qty="20")))
    assert err.venue_code == "-2010"


async def test_duplicate_client_order_id_is_rejected_not_resent(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(buy("dup-1"))
    err = await expect(ErrorCode.ORDER_REJECTED, harness.venue.place_order(buy("dup-1")))
    assert "Duplicate order" in err.message and err.venue_code == "-2010"
    assert len(fake.requests_for("POST", "order")) == 2


async def test_venue_side_invalid_order_and_post_only_that_would_take(fake: FakeBinance, harness: Harness) -> None:
    fake.fail_next("order", status=400, code=-1013, msg="Filter failure: PRICE_FILTER", method="POST")
    await expect(ErrorCode.INVALID_ORDER, harness.venue.place_order(buy("inv-1")))
    maker = OrderRequest("pm-1", "BTC/USDT", Side.BUY, D("0.1"), OrderType.LIMIT_MAKER, D("100.01"), TimeInForce.GTC)
    await expect(ErrorCode.ORDER_REJECTED, harness.venue.place_order(maker))  # -2010 would take


async def test_rate_limit_on_a_read_waits_out_retry_after_then_succeeds(fake: FakeBinance, harness: Harness) -> None:
    fake.rate_limit_next("account", retry_after=7)  # 429 -1003 -> ccxt DDoSProtection
    balances = await harness.venue.get_balances()
    assert balances["USDT"].free == D("1000")
    assert 7 in harness.sleeps.delays  # the venue's Retry-After, not a shorter backoff
    assert [r.status for r in fake.requests_for("GET", "account")][-2:] == [429, 200]


async def test_rate_limit_on_a_submit_is_not_retried_and_closes_the_order_gate(fake: FakeBinance, harness: Harness) -> None:
    fake.rate_limit_next("order", retry_after=30, method="POST")
    err = await expect(ErrorCode.RATE_LIMITED, harness.venue.place_order(buy("rl-1")))
    assert err.retry_after_s == 30 and err.venue_code == "-1003"
    assert len(fake.requests_for("POST", "order")) == 1
    gated = await expect(ErrorCode.RATE_LIMITED, harness.venue.place_order(buy("rl-2")))
    assert 29 < gated.retry_after_s <= 30 and "gate" in gated.message
    assert len(fake.requests_for("POST", "order")) == 1  # refused here, not sent
    assert any(a[0] == "warning" and a[1].startswith("rate-limit") for a in harness.alerts.items)


async def test_a_long_retry_after_is_not_waited_inline(fake: FakeBinance, harness: Harness) -> None:
    fake.rate_limit_next("account", retry_after=600)  # above max_retry_after_s (60)
    err = await expect(ErrorCode.RATE_LIMITED, harness.venue.get_balances())
    assert err.retry_after_s == 600 and 600 not in harness.sleeps.delays


async def test_timeout_on_submit_is_unknown_status_sent_once_and_found_by_client_id(fake: FakeBinance, harness: Harness) -> None:
    harness.venue.read.exchange.timeout = 3000
    fake.timeout_next("order", method="POST", execute=True)  # placed, the answer never comes
    trade = await harness.venue._trade_client()
    trade.exchange.timeout = 200  # ms: the client gives up
    await expect(ErrorCode.UNKNOWN_ORDER_STATUS, harness.venue.place_order(buy("to-1")))
    assert len(fake.requests_for("POST", "order")) == 1  # never retried blindly
    found = await harness.venue.fetch_order("BTC/USDT", "to-1")  # the OMS's resolution path
    assert found is not None and found.status is OrderStatus.ACCEPTED and found.client_order_id == "to-1"
    assert await harness.venue.fetch_order("BTC/USDT", "never-sent") is None
    fake.release_held()


async def test_unknown_status_503_on_submit(fake: FakeBinance, harness: Harness) -> None:
    fake.submit_unknown_status_next()
    err = await expect(ErrorCode.UNKNOWN_ORDER_STATUS, harness.venue.place_order(buy("us-1")))
    assert err.venue_code == "-1007"
    assert len(fake.requests_for("POST", "order")) == 1
    assert (await harness.venue.fetch_order("BTC/USDT", "us-1")).status is OrderStatus.ACCEPTED  # type: ignore[union-attr]


async def test_exchange_not_available_on_submit_and_on_reads(fake: FakeBinance, harness: Harness) -> None:
    fake.fail_next("order", status=502, code=None, msg="<html>502 Bad Gateway</html>", method="POST")
    await expect(ErrorCode.VENUE_UNAVAILABLE, harness.venue.place_order(buy("na-1")))
    assert len(fake.requests_for("POST", "order")) == 1
    # a read: 500 -1001 twice, then it works (retried with backoff and jitter)
    fake.fail_next("openOrders", times=2)
    assert list(await harness.venue.get_open_orders("BTC/USDT")) == []
    assert [r.status for r in fake.requests_for("GET", "openOrders")] == [500, 500, 200]
    ceilings = [Backoff(0.2, 5.0).ceiling(n) for n in range(2)]
    assert len(harness.sleeps.delays) == 2 and all(0 <= d <= c for d, c in zip(harness.sleeps.delays, ceilings))
    # more failures than attempts: the error comes out
    fake.fail_next("openOrders", times=3)
    await expect(ErrorCode.VENUE_UNAVAILABLE, harness.venue.get_open_orders("BTC/USDT"))


async def test_clock_skew_is_clock_drift(fake: FakeBinance, harness: Harness) -> None:
    fake.fail_next("account", status=400, code=-1021, msg="Timestamp for this request is outside of the recvWindow.", times=3)
    await expect(ErrorCode.CLOCK_DRIFT, harness.venue.get_balances())
    assert len(fake.requests_for("GET", "account")) == 2  # one at connect + one: not retried


async def test_cancel_of_an_order_the_venue_no_longer_has(fake: FakeBinance, harness: Harness) -> None:
    report = await harness.venue.place_order(buy("gone-1"))
    fake.fill("gone-1")
    after = await harness.venue.cancel_order("BTC/USDT", "gone-1", report.venue_order_id)
    assert after.status is OrderStatus.FILLED and after.code is ErrorCode.ORDER_REJECTED and "already FILLED" in after.reason
    await expect(ErrorCode.ORDER_REJECTED, harness.venue.cancel_order("BTC/USDT", "never-placed"))


async def test_cancel_is_idempotent_and_retried(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(buy("c-1"))
    fake.fail_next("order", method="DELETE")  # 500 -1001, then the retry cancels
    report = await harness.venue.cancel_order("BTC/USDT", "c-1")
    assert report.status is OrderStatus.CANCELED and report.client_order_id == "c-1" and report.latency_ns
    assert [r.status for r in fake.requests_for("DELETE", "order")] == [500, 200]


# ---------------------------------------------------------------------------- the mapping table itself
@pytest.mark.parametrize(
    ("exc", "submit", "code"),
    [
        (ccxt.InsufficientFunds('binance {"code":-2010,"msg":"Account has insufficient balance for requested action."}'), True, ErrorCode.INSUFFICIENT_BALANCE),
        (ccxt.InsufficientFunds("no money"), True, ErrorCode.INSUFFICIENT_BALANCE),
        (ccxt.RateLimitExceeded("slow down"), False, ErrorCode.RATE_LIMITED),
        (ccxt.DDoSProtection('binance {"code":-1003,"msg":"Too much request weight used"}'), False, ErrorCode.RATE_LIMITED),
        (ccxt.DDoSProtection("418 I'm a teapot"), True, ErrorCode.RATE_LIMITED),
        (ccxt.DDoSProtection('binance {"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'), True, ErrorCode.AUTHENTICATION_FAILED),
        (ccxt.AuthenticationError('binance {"code":-1022,"msg":"Signature for this request is not valid."}'), False, ErrorCode.AUTHENTICATION_FAILED),
        (ccxt.PermissionDenied("no"), True, ErrorCode.AUTHENTICATION_FAILED),
        (ccxt.NetworkError("reset"), False, ErrorCode.VENUE_UNAVAILABLE),
        (ccxt.NetworkError("reset"), True, ErrorCode.VENUE_UNAVAILABLE),
        (ccxt.ExchangeNotAvailable("502"), True, ErrorCode.VENUE_UNAVAILABLE),
        (ccxt.OnMaintenance("system maintenance"), False, ErrorCode.VENUE_UNAVAILABLE),
        (ccxt.OperationFailed('binance {"code":-1001,"msg":"Internal error"}'), False, ErrorCode.VENUE_UNAVAILABLE),
        (ccxt.RequestTimeout("binance POST https://api.binance.com/api/v3/order"), False, ErrorCode.VENUE_UNAVAILABLE),
        (ccxt.RequestTimeout("binance POST https://api.binance.com/api/v3/order"), True, ErrorCode.UNKNOWN_ORDER_STATUS),
        (ccxt.RequestTimeout('binance {"code":-1007,"msg":"Timeout waiting for response"}'), True, ErrorCode.UNKNOWN_ORDER_STATUS),
        (ccxt.InvalidOrder('binance {"code":-1013,"msg":"Filter failure: LOT_SIZE"}'), True, ErrorCode.INVALID_ORDER),
        (ccxt.BadRequest('binance {"code":-1013,"msg":"Filter failure: NOTIONAL"}'), True, ErrorCode.INVALID_ORDER),
        (ccxt.BadSymbol("no such market"), True, ErrorCode.INVALID_ORDER),
        (ccxt.InvalidOrder('binance {"code":-2010,"msg":"Duplicate order sent."}'), True, ErrorCode.ORDER_REJECTED),
        (ccxt.OrderNotFound('binance {"code":-2011,"msg":"Unknown order sent."}'), False, ErrorCode.ORDER_REJECTED),
        (ccxt.InvalidNonce('binance {"code":-1021,"msg":"Timestamp outside of the recvWindow"}'), True, ErrorCode.CLOCK_DRIFT),
        (ccxt.ExchangeError("something else"), True, ErrorCode.ORDER_REJECTED),
        (RuntimeError("a bug under ccxt"), True, ErrorCode.UNKNOWN_ORDER_STATUS),
        (RuntimeError("a bug under ccxt"), False, ErrorCode.VENUE_UNAVAILABLE),
    ],
)
def test_mapping(exc: BaseException, submit: bool, code: ErrorCode) -> None:
    assert map_ccxt_error(exc, submit=submit).code is code


def test_rate_limit_classes_are_siblings_in_this_ccxt_and_both_map() -> None:
    assert not issubclass(ccxt.DDoSProtection, ccxt.RateLimitExceeded) and not issubclass(ccxt.RateLimitExceeded, ccxt.DDoSProtection)
    for cls in (ccxt.DDoSProtection, ccxt.RateLimitExceeded):
        err = map_ccxt_error(cls("x"), retry_after_s=3)
        assert err.code is ErrorCode.RATE_LIMITED and err.retry_after_s == 3


def test_messages_carry_no_query_string_and_no_key_material() -> None:
    raw = f"binance GET https://api.binance.com/api/v3/account?timestamp=1&signature=abcdef {TRADE_SECRET} {READ_SECRET}"
    err = map_ccxt_error(ccxt.RequestTimeout(raw), secrets=(TRADE_SECRET, READ_SECRET))
    assert "signature" not in err.message and TRADE_SECRET not in err.message and READ_SECRET not in err.message
    assert "https://api.binance.com/api/v3/account?…" in err.message
    assert clean_message("x" * 2000).__len__() == 500


def test_parse_retry_after() -> None:
    assert parse_retry_after({"Retry-After": "7"}) == 7
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"Other": "1"}) is None and parse_retry_after(None) is None
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"Retry-After": "Thu, 01 Jan 2026 00:00:10 GMT"}, now=now) == 10
    assert parse_retry_after({"Retry-After": "Wed, 31 Dec 2025 23:00:00 GMT"}, now=now) == 0.0


async def test_retry_only_for_retryable_codes() -> None:
    sleeps = SleepRecorder()
    policy = RetryPolicy(3, Backoff(0.1, 1.0), max_retry_after_s=10)
    calls = 0

    async def rejected() -> None:
        nonlocal calls
        calls += 1
        raise VenueError(ErrorCode.INVALID_ORDER, "no")

    with pytest.raises(VenueError):
        await retry_idempotent("x", rejected, policy, rng=random.Random(1), sleep=sleeps)
    assert calls == 1 and sleeps.delays == []


def test_backoff_full_jitter_bounds() -> None:
    backoff = Backoff(0.25, 30.0)
    rng = random.Random(7)
    for attempt in range(12):
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= backoff.ceiling(attempt) for d in delays)
        assert len(set(delays)) > 150  # jittered, not a fixed schedule
    assert backoff.ceiling(0) == 0.25 and backoff.ceiling(3) == 2.0 and backoff.ceiling(20) == 30.0
