"""Self-tests of the fake Binance venue, driven through real ccxt and websockets clients.

No test sleeps: they wait on the fake's events (``wait_for_*``) or on a client's
answer, always under ``asyncio.timeout`` as a safety bound. The ccxt exception
classes pinned here are the ones listed in ``binance_server``'s docstring.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import ccxt.async_support as ccxt
import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.binance_matching import BinanceError, MatchingEngine
from tests.fakes.binance_server import FakeBinance, SymbolSpec, ccxt_config

KEY, SECRET = "trade-key", "trade-secret"
RO_KEY, RO_SECRET = "read-key", "read-secret"
D = Decimal
BOUND = 5  # seconds: safety bound of every wait


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
async def fake():
    async with FakeBinance() as venue:
        venue.add_key(KEY, SECRET, can_trade=True)
        venue.add_key(RO_KEY, RO_SECRET, can_trade=False)
        venue.set_balance("USDT", "1000")
        venue.set_balance("BTC", "1")
        venue.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        yield venue


def make_exchange(fake: FakeBinance, key: str | None = KEY, secret: str | None = SECRET, **options):
    config = ccxt_config(fake, key, secret)
    config["options"].update(options)
    exchange = ccxt.binance(config)
    exchange.number = str
    exchange.timeout_on_exit = 0  # close() would sleep 250 ms for TLS transports we do not have
    return exchange


@pytest.fixture
async def exchange(fake):
    exchange = make_exchange(fake)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


@pytest.fixture
async def read_only(fake):
    exchange = make_exchange(fake, RO_KEY, RO_SECRET)
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


async def recv_json(ws) -> dict:
    async with asyncio.timeout(BOUND):
        return json.loads(await ws.recv())


async def listen_key(exchange) -> str:
    return (await exchange.public_post_userdatastream())["listenKey"]


async def next_event(ws, event_type: str) -> dict:
    """The next user-data event of that type (other types are skipped)."""
    while True:
        message = await recv_json(ws)
        if message.get("e") == event_type:
            return message


# ---------------------------------------------------------------------------- config
async def test_ccxt_config_keeps_every_url_on_loopback(fake):
    exchange = make_exchange(fake)
    try:
        def urls(node):
            if isinstance(node, dict):
                for value in node.values():
                    yield from urls(value)
            else:
                yield node
        for section in ("api", "test", "demo"):
            for url in urls(exchange.urls[section]):
                assert url.startswith((fake.base_url + "/", fake.ws_url + "/")), url
        assert exchange.urls["api"]["public"] == fake.base_url + "/api/v3"
        assert exchange.urls["api"]["sapi"] == fake.base_url + "/sapi/v1"
    finally:
        await exchange.close()


async def test_load_markets_reads_only_exchange_info_and_parses_filters(fake, exchange):
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/v3/exchangeInfo")]
    market = exchange.market("BTC/USDT")
    assert market["id"] == "BTCUSDT" and market["spot"] and market["active"]
    assert D(market["precision"]["price"]) == D("0.01")
    assert D(market["precision"]["amount"]) == D("0.00001")
    assert D(market["limits"]["amount"]["min"]) == D("0.00001")
    assert D(market["limits"]["cost"]["min"]) == D("5")
    assert D(exchange.market("ETH/USDT")["precision"]["amount"]) == D("0.0001")


async def test_min_notional_filter_name_is_parsed_too():
    spec = SymbolSpec("SOL", "USDT", tick_size=D("0.001"), step_size=D("0.01"), min_notional=D("10"),
                      notional_filter="MIN_NOTIONAL")
    async with FakeBinance([spec]) as venue:
        exchange = make_exchange(venue, None, None)
        try:
            market = (await exchange.load_markets())["SOL/USDT"]
            assert D(market["limits"]["cost"]["min"]) == D("10")
            assert D(market["precision"]["price"]) == D("0.001")
        finally:
            await exchange.close()


# ---------------------------------------------------------------------------- public data
async def test_fetch_time_follows_the_injected_clock_offset(fake, exchange):
    before = fake.server_time_ms()
    assert before <= await exchange.fetch_time() <= fake.server_time_ms()
    fake.clock_offset_ms = 3_600_000
    assert await exchange.fetch_time() >= before + 3_600_000


async def test_fetch_ticker_and_order_book(fake, exchange):
    ticker = await exchange.fetch_ticker("BTC/USDT")
    assert (D(ticker["bid"]), D(ticker["ask"])) == (D("100.00"), D("100.01"))
    fake.set_depth("BTC/USDT", [("100.00", "1"), ("99.99", "2")], [("100.01", "3")])
    book = await exchange.fetch_order_book("BTC/USDT")
    # surprising but true: ccxt renders order-book levels as floats even with number = str
    assert book["bids"] == [[100.0, 1.0], [99.99, 2.0]] and book["asks"] == [[100.01, 3.0]]
    raw = await exchange.public_get_depth({"symbol": "BTCUSDT", "limit": 1})
    assert raw["bids"] == [["100.00000000", "1.00000000"]]
    assert raw["lastUpdateId"] == fake.engine.books["BTCUSDT"].update_id
    bid_ask = await exchange.public_get_ticker_bookticker({"symbol": "BTCUSDT"})
    assert bid_ask["askQty"] == "3.00000000"


async def test_fetch_balance(fake, exchange):
    balance = await exchange.fetch_balance()
    assert D(balance["USDT"]["free"]) == D("1000") and D(balance["USDT"]["used"]) == 0
    assert D(balance["BTC"]["free"]) == D("1")


# ---------------------------------------------------------------------------- order lifecycle
async def test_limit_order_rests_then_fills_when_the_path_crosses(fake, exchange):
    order = await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99.00",
                                        params={"newClientOrderId": "x"})
    assert order["status"] == "open" and order["clientOrderId"] == "x"
    post = await fake.wait_for_request("POST", "/api/v3/order")
    assert post.params["newClientOrderId"] == "x" and post.params["newOrderRespType"] == "FULL"
    assert "signature" not in post.params
    assert fake.balance("USDT") == (D("990.1"), D("9.9"))  # 0.1 * 99 locked

    open_orders = await exchange.fetch_open_orders("BTC/USDT")
    assert [(o["id"], o["clientOrderId"]) for o in open_orders] == [(order["id"], "x")]

    fake.run_path([("99.50", "99.60"), ("98.90", "99.00")])  # the second ask touches 99.00
    fetched = await exchange.fetch_order(order["id"], "BTC/USDT")
    assert fetched["status"] == "closed" and D(fetched["filled"]) == D("0.1")

    [trade] = await exchange.fetch_my_trades("BTC/USDT")
    assert (D(trade["price"]), D(trade["amount"]), trade["takerOrMaker"]) == (D("99"), D("0.1"), "maker")
    assert trade["order"] == order["id"]
    assert (D(trade["fee"]["cost"]), trade["fee"]["currency"]) == (D("0.0001"), "BTC")

    balance = await exchange.fetch_balance()
    assert D(balance["USDT"]["free"]) == D("990.1") and D(balance["USDT"]["used"]) == 0
    assert D(balance["BTC"]["free"]) == D("1.0999")  # 1 + 0.1 - 0.1% commission


async def test_resting_fill_is_bounded_by_the_displayed_quantity(fake, exchange):
    await exchange.create_order("BTC/USDT", "limit", "sell", "0.5", "101.00",
                                params={"newClientOrderId": "s"})
    fake.set_book("BTC/USDT", "101.00", "0.2", "101.50", "1")
    assert fake.order("s").status == "PARTIALLY_FILLED" and fake.order("s").executed_qty == D("0.2")
    fake.step()  # nothing queued: no change
    fake.load_path([("101.20", "0.3", "101.30", "1")])
    assert fake.step("BTC/USDT") is True and fake.step() is False
    order = await exchange.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "s"})
    assert order["status"] == "closed" and D(order["filled"]) == D("0.5")
    trades = await exchange.fetch_my_trades("BTC/USDT")
    assert [D(t["amount"]) for t in trades] == [D("0.2"), D("0.3")]
    assert [int(t["id"]) for t in trades] == sorted(int(t["id"]) for t in trades)
    assert fake.balance("USDT")[0] == D("1000") + D("50.5") - D("0.0505")


async def test_market_order_takes_the_book_with_full_fills(fake, exchange):
    fake.set_depth("BTC/USDT", [("100.00", "1")], [("100.01", "0.1"), ("100.02", "1")])
    order = await exchange.create_order("BTC/USDT", "market", "buy", "0.3")
    assert order["status"] == "closed"
    fills = order["info"]["fills"]
    assert [(f["price"], f["qty"]) for f in fills] == [("100.01000000", "0.10000000"),
                                                       ("100.02000000", "0.20000000")]
    assert D(order["cost"]) == D("10.001") + D("20.004")
    assert fake.balance("USDT")[0] == D("1000") - D("30.005")
    book = await exchange.public_get_depth({"symbol": "BTCUSDT"})
    assert book["asks"] == [["100.02000000", "0.80000000"]]  # what we took is gone


async def test_market_order_larger_than_the_book_expires_the_rest(fake, exchange):
    order = await exchange.create_order("BTC/USDT", "market", "sell", "1")
    assert order["status"] == "closed"  # all of the displayed 1.0 at 100.00
    fake.set_book("BTC/USDT", "100.00", "0.4", "100.01", "1")
    order = await exchange.create_order("BTC/USDT", "market", "buy", "2")
    assert order["info"]["status"] == "EXPIRED" and order["status"] == "expired"
    assert D(order["filled"]) == D("1")


async def test_market_order_by_quote_amount(fake, exchange):
    order = await exchange.create_order("BTC/USDT", "market", "buy", None,
                                        params={"quoteOrderQty": "50.019"})
    sent = fake.requests_for("POST", "order")[-1].params["quoteOrderQty"]
    assert sent == "50.01"  # ccxt truncates quoteOrderQty to the price precision
    # the fake buys whole steps (0.00001) at 100.01 within the budget
    assert order["status"] == "closed" and D(order["filled"]) == D("0.50004")
    assert D(order["cost"]) == D("0.50004") * D("100.01")


async def test_time_in_force_ioc_fok_and_limit_maker(fake, exchange):
    ioc = await exchange.create_order("BTC/USDT", "limit", "buy", "2", "100.01", params={"timeInForce": "IOC"})
    assert ioc["info"]["status"] == "EXPIRED" and D(ioc["filled"]) == D("1")
    fake.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
    fok = await exchange.create_order("BTC/USDT", "limit", "buy", "2", "100.01", params={"timeInForce": "FOK"})
    assert fok["info"]["status"] == "EXPIRED" and D(fok["filled"]) == 0
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "100.01", params={"postOnly": True})
    maker = await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"postOnly": True})
    assert maker["info"]["type"] == "LIMIT_MAKER" and maker["status"] == "open"


async def test_cancel_order_by_client_id_returns_orig_client_order_id(fake, exchange):
    await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "c1"})
    canceled = await exchange.cancel_order(None, "BTC/USDT", params={"origClientOrderId": "c1"})
    assert canceled["status"] == "canceled"
    assert canceled["info"]["origClientOrderId"] == "c1"
    assert canceled["clientOrderId"] != "c1"  # ccxt reports the cancel request's own id
    assert fake.balance("USDT") == (D("1000"), D("0"))
    assert await exchange.fetch_open_orders("BTC/USDT") == []


async def test_cancel_all_orders_and_all_orders_history(fake, exchange):
    for cid in ("a", "b"):
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": cid})
    canceled = await exchange.cancel_all_orders("BTC/USDT")
    assert sorted(o["info"]["origClientOrderId"] for o in canceled) == ["a", "b"]
    with pytest.raises(ccxt.OrderNotFound):  # -2011: nothing left to cancel
        await exchange.cancel_all_orders("BTC/USDT")
    history = await exchange.fetch_orders("BTC/USDT")
    assert [(o["clientOrderId"], o["status"]) for o in history] == [("a", "canceled"), ("b", "canceled")]


async def test_my_trades_from_id(fake, exchange):
    for _ in range(3):
        await exchange.create_order("BTC/USDT", "market", "buy", "0.1")
    trades = await exchange.fetch_my_trades("BTC/USDT")
    ids = [int(t["id"]) for t in trades]
    assert len(ids) == 3 and ids == sorted(ids)
    later = await exchange.fetch_my_trades("BTC/USDT", params={"fromId": ids[1]})
    assert [int(t["id"]) for t in later] == ids[1:]


# ---------------------------------------------------------------------------- errors as ccxt raises them
async def test_duplicate_client_order_id_of_an_open_order_raises_invalid_order(fake, exchange):
    await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "dup"})
    assert fake.requests_for("POST", "order")[-1].code == -2010
    await exchange.cancel_order(None, "BTC/USDT", params={"origClientOrderId": "dup"})
    again = await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "dup"})
    assert again["status"] == "open"  # a closed order's client id may be reused


async def test_insufficient_balance_raises_insufficient_funds(exchange):
    with pytest.raises(ccxt.InsufficientFunds) as raised:
        await exchange.create_order("BTC/USDT", "limit", "buy", "20", "99")
    assert not isinstance(raised.value, ccxt.InvalidOrder)


async def test_unknown_orders_raise_order_not_found(exchange):
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        await exchange.cancel_order("424242", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound, match="-2013"):
        await exchange.fetch_order("424242", "BTC/USDT")


async def test_filter_failures(fake, exchange):
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):  # ccxt would round; go raw
        await exchange.private_post_order({**order, "quantity": "0.1", "price": "99.001"})
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        await exchange.private_post_order({**order, "quantity": "0.100001", "price": "99"})
    with pytest.raises(ccxt.BadRequest, match="NOTIONAL") as raised:
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.01", "99")
    assert not isinstance(raised.value, ccxt.InvalidOrder)  # -1013 NOTIONAL is only BadRequest
    assert [r.code for r in fake.requests_for("POST", "order")] == [-1013, -1013, -1013]
    assert fake.orders == []


async def test_read_only_key_on_a_trading_endpoint(fake, read_only):
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        await read_only.create_order("BTC/USDT", "limit", "buy", "0.1", "99")
    await read_only.fetch_balance()  # reading is allowed...
    # ...and once a private call has succeeded, ccxt turns -2015 into DDoSProtection
    with pytest.raises(ccxt.DDoSProtection, match="-2015"):
        await read_only.create_order("BTC/USDT", "limit", "buy", "0.1", "99")
    assert [r.status for r in fake.requests_for("POST", "order")] == [401, 401]


async def test_api_restrictions_tell_a_read_key_from_a_trade_key(fake, exchange, read_only):
    assert (await exchange.sapi_get_account_apirestrictions())["enableSpotAndMarginTrading"] is True
    answer = await read_only.sapi_get_account_apirestrictions()
    assert answer["enableSpotAndMarginTrading"] is False and answer["enableReading"] is True
    assert answer["enableWithdrawals"] is False
    assert fake.requests_for("GET", "/sapi/v1/account/apiRestrictions")[-1].api_key == RO_KEY


async def test_bad_signature_and_unknown_key(fake):
    for key, secret, code in ((KEY, "wrong", "-1022"), ("nobody", "x", "-2015")):
        exchange = make_exchange(fake, key, secret)
        try:
            with pytest.raises(ccxt.AuthenticationError, match=code):
                await exchange.fetch_balance()
        finally:
            await exchange.close()


async def test_clock_skew_raises_invalid_nonce_until_ccxt_adjusts(fake):
    fake.clock_offset_ms = -30_000
    exchange = make_exchange(fake)
    try:
        with pytest.raises(ccxt.InvalidNonce, match="-1021"):
            await exchange.fetch_balance()
    finally:
        await exchange.close()
    exchange = make_exchange(fake, adjustForTimeDifference=True)
    try:
        await exchange.load_markets()
        assert D((await exchange.fetch_balance())["USDT"]["free"]) == D("1000")
    finally:
        await exchange.close()


async def test_rate_limit_429_with_retry_after(fake, exchange):
    fake.rate_limit_next("account", retry_after=7)
    with pytest.raises(ccxt.DDoSProtection, match="-1003") as raised:
        await exchange.fetch_balance()
    assert not isinstance(raised.value, ccxt.RateLimitExceeded)  # not a subclass in 4.5.90
    assert exchange.last_response_headers["Retry-After"] == "7"
    await exchange.fetch_balance()  # the fault is used up


async def test_server_errors(fake, exchange):
    fake.fail_next("time")  # 500 -1001
    with pytest.raises(ccxt.OperationFailed, match="-1001") as raised:
        await exchange.fetch_time()
    assert not isinstance(raised.value, (ccxt.ExchangeError, ccxt.NetworkError))
    fake.fail_next("/api/v3/time", status=502, code=None, msg="<html>502 Bad Gateway</html>")
    with pytest.raises(ccxt.ExchangeNotAvailable, match="502"):
        await exchange.fetch_time()
    with pytest.raises(ccxt.ExchangeNotAvailable, match="no route"):  # a stray sapi call: 404
        await exchange.sapi_get_system_status()


async def test_unknown_status_503_the_order_exists(fake, exchange):
    fake.submit_unknown_status_next()
    with pytest.raises(ccxt.RequestTimeout, match="-1007"):
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "u1"})
    assert len(fake.requests_for("POST", "/api/v3/order")) == 1
    order = await exchange.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "u1"})
    assert order["status"] == "open" and order["clientOrderId"] == "u1"


async def test_timeout_hangs_until_the_client_gives_up(fake, exchange):
    exchange.timeout = 200  # ms: the client gives up; the fake never sleeps
    fake.timeout_next("order", method="POST")
    with pytest.raises(ccxt.RequestTimeout):
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "t1"})
    assert fake.orders == []  # held before reaching the matching engine
    fake.timeout_next("order", method="POST", execute=True)
    with pytest.raises(ccxt.RequestTimeout):
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "t2"})
    assert fake.order("t2").status == "NEW"  # placed, answer withheld
    fake.release_held()
    exchange.timeout = 10_000
    assert [o["clientOrderId"] for o in await exchange.fetch_open_orders("BTC/USDT")] == ["t2"]


async def test_request_log_and_wait_for_request(fake, exchange):
    task = asyncio.create_task(exchange.fetch_balance())
    request = await fake.wait_for_request("GET", "account")
    assert request.api_key == KEY and set(request.params) == {"timestamp", "recvWindow"}
    await task
    assert len(fake.requests_for("GET", "/api/v3/account")) == 1


# ---------------------------------------------------------------------------- market streams
async def test_book_ticker_stream_via_websockets(fake):
    async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@bookTicker") as ws:
        await fake.wait_for_ws_clients(1, kind="market")
        fake.run_path([("100.10", "100.20"), ("100.30", "100.40")])
        first, second = await recv_json(ws), await recv_json(ws)
        assert first == {"u": first["u"], "s": "BTCUSDT", "b": "100.10000000", "B": "1.00000000",
                         "a": "100.20000000", "A": "1.00000000"}
        assert second["u"] == first["u"] + 1 and second["b"] == "100.30000000"
        async with asyncio.timeout(BOUND):
            await (await ws.ping())  # pings are answered


async def test_combined_stream_wraps_and_depth_streams(fake):
    url = f"{fake.ws_url}/stream?streams=btcusdt@bookTicker/btcusdt@depth5/btcusdt@depth@100ms"
    async with websockets.connect(url) as ws:
        await fake.wait_for_ws_clients(1)
        fake.set_depth("BTC/USDT", [("100.00", "1"), ("99.00", "2")], [("101.00", "3")])
        messages = {m["stream"]: m["data"] for m in [await recv_json(ws) for _ in range(3)]}
        update_id = fake.engine.books["BTCUSDT"].update_id
        assert messages["btcusdt@bookTicker"]["u"] == update_id
        assert messages["btcusdt@depth5"] == {"lastUpdateId": update_id,
                                              "bids": [["100.00000000", "1.00000000"], ["99.00000000", "2.00000000"]],
                                              "asks": [["101.00000000", "3.00000000"]]}
        diff = messages["btcusdt@depth@100ms"]
        assert (diff["e"], diff["U"], diff["u"]) == ("depthUpdate", update_id, update_id)
        assert diff["b"] == [["99.00000000", "2.00000000"]]  # 100.00 x 1 did not change
        assert diff["a"] == [["100.01000000", "0.00000000"], ["101.00000000", "3.00000000"]]  # removed: qty 0


async def test_subscribe_on_a_bare_connection_and_invalid_streams(fake):
    async with websockets.connect(f"{fake.ws_url}/ws") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 7}))
        assert await recv_json(ws) == {"result": None, "id": 7}
        fake.set_book("ETH/USDT", "2000.00", "1", "2000.01", "1")
        assert (await recv_json(ws))["s"] == "ETHUSDT"
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@nonsense"):
            pass


async def test_ccxt_pro_public_stream_subscribes_on_a_bare_connection(fake):
    import ccxt.pro

    exchange = ccxt.pro.binance(ccxt_config(fake))
    exchange.timeout_on_exit = 0
    try:
        await exchange.load_markets()
        watch = asyncio.create_task(exchange.watch_bids_asks(["BTC/USDT"]))
        await fake.wait_until(lambda: any("btcusdt@bookTicker" in c.streams for c in fake.ws_clients))
        assert [c.path for c in fake.ws_clients] == ["/ws/0"]
        fake.set_book("BTC/USDT", "100.00", "1", "100.02", "1")
        async with asyncio.timeout(BOUND):
            tickers = await watch
        assert tickers["BTC/USDT"]["info"]["a"] == "100.02000000"
    finally:
        await exchange.close()


async def test_stream_sequence_gap(fake):
    async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@bookTicker") as ws:
        await fake.wait_for_ws_clients(1)
        fake.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        first = await recv_json(ws)
        fake.gap_next_stream_update(size=3)
        fake.set_book("BTC/USDT", "100.02", "1", "100.03", "1")
        assert (await recv_json(ws))["u"] == first["u"] + 4


async def test_drop_streams_closes_clients(fake):
    async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@bookTicker") as ws:
        await fake.wait_for_ws_clients(1)
        await fake.drop_streams()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd.code == 1001
    assert fake.ws_clients == []
    async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@bookTicker") as ws:
        await fake.wait_for_ws_clients(1)
        await fake.drop_streams(abrupt=True)
        with pytest.raises(websockets.ConnectionClosedError):
            await recv_json(ws)


async def test_pause_streams_drops_then_resumes(fake):
    async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@bookTicker") as ws:
        await fake.wait_for_ws_clients(1)
        fake.set_book("BTC/USDT", "100.00", "1", "100.01", "1")
        before = await recv_json(ws)
        fake.pause_streams()
        fake.run_path([("100.10", "100.20"), ("100.30", "100.40")])  # never sent
        assert fake.dropped_messages == 2
        fake.resume_streams()
        fake.set_book("BTC/USDT", "100.50", "1", "100.60", "1")
        after = await recv_json(ws)  # the next message is the post-resume one: a gap of 2
        assert after["b"] == "100.50000000" and after["u"] == before["u"] + 3


async def test_stall_streams_leaves_pings_unanswered_until_resumed(fake):
    async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@bookTicker", ping_interval=None) as ws:
        await fake.wait_for_ws_clients(1)
        fake.stall_streams()
        [client] = fake.ws_clients
        assert client.stalled and not client.request.transport.is_reading()  # our ping will not be read
        pong = await ws.ping()
        fake.set_book("BTC/USDT", "100.10", "1", "100.20", "1")  # not sent: the stream is paused
        assert fake.dropped_messages == 1 and not pong.done() and fake.ws_clients
        fake.resume_streams()
        assert client.request.transport.is_reading()
        async with asyncio.timeout(BOUND):
            await pong  # the server reads again and answers
        fake.set_book("BTC/USDT", "100.30", "1", "100.40", "1")
        assert (await recv_json(ws))["b"] == "100.30000000"


async def test_pause_streams_with_buffer_delivers_on_resume(fake):
    async with websockets.connect(f"{fake.ws_url}/ws/btcusdt@bookTicker") as ws:
        await fake.wait_for_ws_clients(1)
        fake.pause_streams(buffer=True)
        fake.run_path([("100.10", "100.20"), ("100.30", "100.40")])
        fake.resume_streams()
        assert [(await recv_json(ws))["b"] for _ in range(2)] == ["100.10000000", "100.30000000"]
        await fake.wait_streams_flushed()


# ---------------------------------------------------------------------------- user-data stream
async def test_user_data_execution_reports_on_fill(fake, exchange):
    key = await listen_key(exchange)
    assert await listen_key(exchange) == key  # one active key per account, like Binance
    await exchange.public_put_userdatastream({"listenKey": key})
    async with websockets.connect(f"{fake.ws_url}/ws/{key}") as ws:
        await fake.wait_for_ws_clients(1, kind="user")
        order = await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "x"})
        new = await next_event(ws, "executionReport")
        assert (new["c"], new["x"], new["X"], new["i"]) == ("x", "NEW", "NEW", int(order["id"]))
        position = await next_event(ws, "outboundAccountPosition")
        assert position["B"] == [{"a": "USDT", "f": "990.10000000", "l": "9.90000000"}]

        fake.run_path([("98.00", "98.50")])
        fill = await next_event(ws, "executionReport")
        assert (fill["x"], fill["X"], fill["l"], fill["z"], fill["L"]) == (
            "TRADE", "FILLED", "0.10000000", "0.10000000", "99.00000000")
        assert (fill["n"], fill["N"], fill["m"]) == ("0.00010000", "BTC", True)
        assert fill["t"] == int((await exchange.fetch_my_trades("BTC/USDT"))[0]["id"])
        position = await next_event(ws, "outboundAccountPosition")
        assert {b["a"]: b["f"] for b in position["B"]} == {"BTC": "1.09990000", "USDT": "990.10000000"}


async def test_cancels_via_rest_and_venue_emit_canceled_reports(fake, exchange):
    key = await listen_key(exchange)
    async with websockets.connect(f"{fake.ws_url}/stream?streams={key}") as ws:
        await fake.wait_for_ws_clients(1, kind="user")
        for cid in ("r", "v"):
            await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": cid})
        await exchange.cancel_order(None, "BTC/USDT", params={"origClientOrderId": "r"})
        fake.exchange_cancel("v")
        reports = []
        while len(reports) < 4:
            message = await recv_json(ws)
            assert message["stream"] == key
            if message["data"]["e"] == "executionReport":
                reports.append(message["data"])
        canceled = [r for r in reports if r["x"] == "CANCELED"]
        assert [(r["C"], r["X"]) for r in canceled] == [("r", "CANCELED"), ("v", "CANCELED")]
        assert all(r["c"] not in ("r", "v") for r in canceled)
    fetched = await exchange.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "v"})
    assert fetched["status"] == "canceled"


async def test_silent_fill_sends_no_event_but_rest_shows_it(fake, exchange):
    key = await listen_key(exchange)
    async with websockets.connect(f"{fake.ws_url}/ws/{key}") as ws:
        await fake.wait_for_ws_clients(1, kind="user")
        for cid in ("quiet", "loud"):
            await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": cid})
        fake.silent_fill("quiet")
        fake.exchange_cancel("loud")  # a marker event after the silent fill
        reports = [await next_event(ws, "executionReport") for _ in range(3)]
        assert [(r["c"] if r["x"] != "CANCELED" else r["C"], r["x"]) for r in reports] == [
            ("quiet", "NEW"), ("loud", "NEW"), ("loud", "CANCELED")]
    order = await exchange.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "quiet"})
    assert order["status"] == "closed"
    assert len(await exchange.fetch_my_trades("BTC/USDT")) == 1


async def test_venue_side_fill_and_expiry(fake, exchange):
    key = await listen_key(exchange)
    async with websockets.connect(f"{fake.ws_url}/ws/{key}") as ws:
        await fake.wait_for_ws_clients(1, kind="user")
        for cid in ("f", "e"):
            await exchange.create_order("BTC/USDT", "limit", "sell", "0.3", "105", params={"newClientOrderId": cid})
        fake.fill("f", qty="0.1")
        fake.exchange_expire("e")
        reports = [await next_event(ws, "executionReport") for _ in range(4)]
        assert [(r["c"], r["x"], r["X"]) for r in reports[2:]] == [
            ("f", "TRADE", "PARTIALLY_FILLED"), ("e", "EXPIRED", "EXPIRED")]
        assert reports[2]["L"] == "105.00000000" and reports[2]["N"] == "USDT"
        assert [r["I"] for r in reports] == sorted(r["I"] for r in reports)
    assert fake.balance("BTC") == (D("0.7"), D("0.2"))  # 1 - 0.1 sold; f still locks 0.2
    assert fake.balance("USDT")[0] == D("1000") + D("10.5") - D("0.0105")


async def test_duplicate_execution_report(fake, exchange):
    key = await listen_key(exchange)
    async with websockets.connect(f"{fake.ws_url}/ws/{key}") as ws:
        await fake.wait_for_ws_clients(1, kind="user")
        fake.duplicate_next_execution_report()
        await exchange.create_order("BTC/USDT", "limit", "buy", "0.1", "99", params={"newClientOrderId": "d"})
        first, second = await next_event(ws, "executionReport"), await next_event(ws, "executionReport")
        assert first == second and first["x"] == "NEW"


async def test_listen_key_expiry_and_close(fake, exchange):
    key = await listen_key(exchange)
    async with websockets.connect(f"{fake.ws_url}/ws/{key}") as ws:
        await fake.wait_for_ws_clients(1, kind="user")
        fake.expire_listen_key(key)
        assert (await recv_json(ws))["e"] == "listenKeyExpired"
        with pytest.raises(websockets.ConnectionClosed):
            await recv_json(ws)
    with pytest.raises(ccxt.AuthenticationError, match="-1125"):
        await exchange.public_put_userdatastream({"listenKey": key})
    key = await listen_key(exchange)
    await exchange.public_delete_userdatastream({"listenKey": key})
    assert fake.listen_keys == {}


# ---------------------------------------------------------------------------- the engine alone
amounts = st.decimals(min_value=D("0.001"), max_value=D("2"), places=3)
prices = st.decimals(min_value=D("90"), max_value=D("110"), places=2)


@settings(max_examples=60, deadline=None)
@given(orders=st.lists(st.tuples(st.sampled_from(["BUY", "SELL"]), st.sampled_from(["LIMIT", "MARKET"]),
                                 amounts, prices), max_size=8),
       path=st.lists(st.tuples(prices, amounts), min_size=1, max_size=8))
def test_engine_conserves_assets_and_never_goes_negative(orders, path):
    engine = MatchingEngine(clock=lambda: 0)
    engine.set_balance("a", "USDT", D("1000"))
    engine.set_balance("a", "BTC", D("5"))
    engine.set_levels("BTCUSDT", [(D("100.00"), D("1"))], [(D("100.01"), D("1"))])
    for n, (side, type_, qty, price) in enumerate(orders):
        try:
            engine.place("a", "BTCUSDT", side, type_, quantity=qty, price=price if type_ == "LIMIT" else None,
                         time_in_force="GTC" if type_ == "LIMIT" else None, client_order_id=str(n))
        except BinanceError:
            pass
    for mid, qty in path:
        engine.set_levels("BTCUSDT", [(mid - D("0.01"), qty)], [(mid + D("0.01"), qty)])
    base, quote = engine.balance("a", "BTC"), engine.balance("a", "USDT")
    for bal in (base, quote):
        assert bal.free >= 0 and bal.locked >= 0
    bought = sum((t.qty for t in engine.trades if t.side == "BUY"), D(0))
    sold = sum((t.qty for t in engine.trades if t.side == "SELL"), D(0))
    spent = sum((t.quote_qty for t in engine.trades if t.side == "BUY"), D(0))
    received = sum((t.quote_qty for t in engine.trades if t.side == "SELL"), D(0))
    base_fees = sum((t.commission for t in engine.trades if t.commission_asset == "BTC"), D(0))
    quote_fees = sum((t.commission for t in engine.trades if t.commission_asset == "USDT"), D(0))
    assert base.free + base.locked == D("5") + bought - sold - base_fees
    assert quote.free + quote.locked == D("1000") - spent + received - quote_fees
    open_buys = sum((o.price * o.remaining for o in engine.open_orders("a") if o.side == "BUY"), D(0))
    open_sells = sum((o.remaining for o in engine.open_orders("a") if o.side == "SELL"), D(0))
    assert (quote.locked, base.locked) == (open_buys, open_sells)
