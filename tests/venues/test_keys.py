"""Two keys kept apart: the read key never trades, the trade client exists only with a trade key."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from bot.domain.credentials import Credentials, KeyScope
from bot.domain.errors import ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.venue import OrderRequest, VenueError
from bot.engine.clock import WallClock
from bot.venues.binance import build_binance
from bot.venues.binance_dialect import make_exchange_factory
from bot.venues.ccxt_client import ReadClient, TradeClient
from bot.venues.metrics import VenueMetrics
from bot.venues.retry import Backoff, RetryPolicy
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import READ, READ_KEY, READ_SECRET, TRADE, TRADE_KEY, make_harness, venue_settings

D = Decimal
ORDER = OrderRequest("k-1", "BTC/USDT", Side.BUY, D("0.1"), OrderType.LIMIT, D("99"), TimeInForce.GTC)
RETRY = RetryPolicy(1, Backoff(0.1, 1.0), 10)


async def test_read_only_key_is_refused_on_trade_by_the_venue(fake: FakeBinance) -> None:
    """A key given to us as the trade key but read-only at the venue: -2015, AUTHENTICATION_FAILED, no order."""
    h = make_harness(fake)
    h.arm(Credentials("binance", KeyScope.TRADE, SecretStr(READ_KEY), SecretStr(READ_SECRET)))
    await h.live.start()
    try:
        for _ in range(2):  # ccxt raises AuthenticationError, later DDoSProtection for the same -2015: both map
            with pytest.raises(VenueError) as raised:
                await h.venue.place_order(ORDER)
            assert raised.value.code is ErrorCode.AUTHENTICATION_FAILED and raised.value.venue_code == "-2015"
        assert [r.status for r in fake.requests_for("POST", "order")] == [401, 401]
        assert fake.orders == []
    finally:
        await h.live.stop()


async def test_a_read_key_offered_as_the_trade_key_is_refused_before_sending(fake: FakeBinance) -> None:
    h = make_harness(fake)
    h.arm(READ)
    await h.live.start()
    try:
        with pytest.raises(VenueError) as raised:
            await h.venue.place_order(ORDER)
        assert raised.value.code is ErrorCode.AUTHENTICATION_FAILED and "not a trade key" in raised.value.message
        assert fake.requests_for("POST", "order") == [] and not h.venue.has_trade_client
    finally:
        await h.live.stop()


async def test_no_trade_client_without_a_trade_key(fake: FakeBinance) -> None:
    built: list[KeyScope | None] = []
    factory = make_exchange_factory(venue_settings(fake).venue)

    def counting(credentials: Credentials | None) -> Any:
        built.append(None if credentials is None else credentials.scope)
        return factory(credentials)

    key: dict[str, Credentials | None] = {"current": None}
    live = build_binance(
        venue_settings(fake), read_credentials=READ, trade_credentials=lambda: key["current"], clock=WallClock(), exchange_factory=counting
    )
    live.venue.set_report_sink(lambda report: None)
    await live.start()
    try:
        with pytest.raises(VenueError) as raised:
            await live.venue.place_order(ORDER)
        assert raised.value.code is ErrorCode.NOT_ARMED
        with pytest.raises(VenueError) as raised:
            await live.venue.cancel_order("BTC/USDT", "k-1")
        assert raised.value.code is ErrorCode.NOT_ARMED
        assert built == [KeyScope.READ] and fake.requests_for("POST", "order") == []
        assert not any(r.api_key == TRADE_KEY for r in fake.requests)

        key["current"] = TRADE  # armed: the key holder supplies the trade key
        await live.venue.place_order(ORDER)
        assert built == [KeyScope.READ, KeyScope.TRADE] and live.venue.has_trade_client

        key["current"] = None  # disarmed: the client is dropped at the next use
        with pytest.raises(VenueError) as raised:
            await live.venue.place_order(OrderRequest("k-2", "BTC/USDT", Side.BUY, D("0.1"), OrderType.LIMIT, D("99"), TimeInForce.GTC))
        assert raised.value.code is ErrorCode.NOT_ARMED and not live.venue.has_trade_client
        assert len(fake.requests_for("POST", "order")) == 1
    finally:
        key["current"] = TRADE
        await live.stop()


async def test_clients_refuse_the_wrong_scope(fake: FakeBinance) -> None:
    factory = make_exchange_factory(venue_settings(fake).venue)
    common = {"metrics": VenueMetrics(), "clock": WallClock(), "retry": RETRY}
    with pytest.raises(ValueError, match="trade key"):
        TradeClient(factory, READ, markets={"BTC/USDT": {}}, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="read key"):
        ReadClient(factory, TRADE, **common)  # type: ignore[arg-type]
    assert not any(hasattr(ReadClient, name) for name in ("create_order", "cancel_order", "cancel_all_orders"))
    assert not any(hasattr(TradeClient, name) for name in ("fetch_balance", "fetch_order", "fetch_open_orders", "fetch_my_trades", "load_markets"))


async def test_public_only_read_client_has_no_private_reads(fake: FakeBinance) -> None:
    h = make_harness(fake, read=None)
    await h.venue.load_instruments()
    try:
        assert h.venue.instruments["BTC/USDT"].tick_size == D("0.01")
        with pytest.raises(VenueError) as raised:
            await h.venue.get_balances()
        assert raised.value.code is ErrorCode.AUTHENTICATION_FAILED
    finally:
        await h.venue.close()


async def test_the_trade_client_is_rebuilt_when_the_key_changes(fake: FakeBinance) -> None:
    fake.add_key("trade-key-2", "trade-secret-2", can_trade=True)
    h = make_harness(fake)
    await h.live.start()
    try:
        await h.venue.place_order(ORDER)
        first = h.venue._trade
        h.arm(Credentials("binance", KeyScope.TRADE, SecretStr("trade-key-2"), SecretStr("trade-secret-2")))
        await h.venue.cancel_order("BTC/USDT", "k-1")
        assert h.venue._trade is not first
        assert [r.api_key for r in fake.requests if r.method in ("POST", "DELETE") and r.path == "/api/v3/order"] == [TRADE_KEY, "trade-key-2"]
    finally:
        await h.live.stop()


async def test_key_permissions_tell_the_read_key_from_the_trade_key(fake: FakeBinance) -> None:
    from bot.venues.binance import fetch_key_permissions

    settings = venue_settings(fake)
    read = await fetch_key_permissions(settings, READ)
    trade = await fetch_key_permissions(settings, TRADE)
    assert (read.can_read, read.can_trade, read.can_withdraw) == (True, False, False)
    assert (trade.can_read, trade.can_trade) == (True, True)
    assert read.fingerprint == READ.fingerprint() and READ_KEY not in repr(read)
    assert [r.api_key for r in fake.requests_for("GET", "/sapi/v1/account/apiRestrictions")] == [READ_KEY, TRADE_KEY]


async def test_start_fails_cleanly_when_the_venue_lacks_an_asset(fake: FakeBinance) -> None:
    from bot.config import MarketSettings, Settings

    settings = venue_settings(fake)
    settings = Settings(market=MarketSettings(assets=("BTC/USDT", "DOGE/USDT")), venue=settings.venue)
    live = build_binance(settings, read_credentials=READ, trade_credentials=lambda: None, clock=WallClock())
    with pytest.raises(VenueError) as raised:
        await live.start()
    assert raised.value.code is ErrorCode.INVALID_ORDER and "DOGE/USDT" in raised.value.message
    assert fake.ws_clients == [] and not live.started
