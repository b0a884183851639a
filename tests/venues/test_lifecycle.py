"""Full order lifecycle through unmodified ccxt against FakeBinance, Decimal all the way."""

from __future__ import annotations

from decimal import Decimal

from bot.domain.instrument import FeeModel, PositionSemantics
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.order import OrderStatus
from bot.domain.venue import OrderRequest
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import READ_KEY, TRADE_KEY, Harness, all_decimal, is_status

D = Decimal


def limit(coid: str, side: Side, qty: str, price: str, asset: str = "BTC/USDT", tif: TimeInForce = TimeInForce.GTC) -> OrderRequest:
    return OrderRequest(coid, asset, side, D(qty), OrderType.LIMIT, D(price), tif)


async def test_instruments_from_ccxt_markets(harness: Harness) -> None:
    inst = harness.venue.instruments["BTC/USDT"]
    assert (inst.symbol, inst.venue, inst.venue_symbol, inst.base, inst.quote) == ("BTC/USDT", "binance", "BTCUSDT", "BTC", "USDT")
    assert (inst.tick_size, inst.lot_size, inst.min_qty, inst.min_notional) == (D("0.01"), D("0.00001"), D("0.00001"), D("5"))
    assert inst.contract_size == 1 and inst.semantics is PositionSemantics.SPOT
    assert inst.fees == FeeModel(maker=D("0.001"), taker=D("0.001"))  # the account's commission rates
    assert harness.venue.instruments["ETH/USDT"].lot_size == D("0.0001")


async def test_full_order_lifecycle(fake: FakeBinance, harness: Harness) -> None:
    venue = harness.venue
    await harness.statuses.wait_for(is_status("user", True))
    report = await venue.place_order(limit("run1-7-0", Side.BUY, "0.1", "99.00"))
    assert report.status is OrderStatus.ACCEPTED and report.client_order_id == "run1-7-0"
    assert report.venue_order_id == str(fake.order("run1-7-0").order_id)
    assert report.latency_ns is not None and report.latency_ns > 0
    assert fake.requests_for("POST", "order")[0].params["newClientOrderId"] == "run1-7-0"

    [open_order] = await venue.get_open_orders("BTC/USDT")
    assert (open_order.client_order_id, open_order.status, open_order.qty, open_order.limit_price) == (
        "run1-7-0", OrderStatus.ACCEPTED, D("0.1"), D("99"))
    assert all_decimal(open_order.qty, open_order.filled_qty, open_order.limit_price)

    fake.run_path([("99.50", "99.60"), ("98.90", "99.00")])  # the ask touches 99.00: filled as maker
    fill_report = await harness.reports.wait_for(lambda r: r.fill is not None)
    fill = fill_report.fill
    assert fill_report.status is OrderStatus.FILLED and fill_report.client_order_id == "run1-7-0"
    assert (fill.qty, fill.price, fill.fee, fill.fee_currency, fill.is_maker) == (D("0.1"), D("99"), D("0.0001"), "BTC", True)
    assert fill.fee_quote == D("0.0099")  # 0.0001 BTC at 99
    assert fill.fill_id == str(fake.trades[0].trade_id) and fill.venue_order_id == report.venue_order_id
    assert all_decimal(fill.qty, fill.price, fill.fee, fill.fee_quote, fill_report.cum_filled_qty)
    assert fill_report.latency_ns is not None  # venue event -> received
    assert await venue.get_open_orders("BTC/USDT") == []

    [trade] = await venue.fetch_fills("BTC/USDT")
    assert (trade.fill_id, trade.client_order_id, trade.qty, trade.price, trade.is_maker) == (fill.fill_id, "run1-7-0", D("0.1"), D("99"), True)
    balances = await venue.get_balances()
    assert (balances["USDT"].free, balances["USDT"].locked) == (D("990.1"), D("0"))
    assert balances["BTC"].total == D("1.0999")  # 1 + 0.1 - 0.1% commission
    assert all_decimal(balances["BTC"].free, balances["BTC"].locked)
    assert await venue.fetch_position_snapshot("BTC/USDT") == D("1.0999")
    position = await harness.positions.wait_for(lambda p: p[0] == "BTC/USDT" and p[1] == D("1.0999"))
    assert isinstance(position[1], Decimal)
    # the same fill came once, though the poll sees it too
    assert await venue.poll_fills("BTC/USDT", "test") == 0
    assert len(harness.fills()) == 1
    # metrics: request, ack and fill latency
    snap = venue.metrics.snapshot()
    assert snap["ack"]["count"] == 1 and snap["fill"]["count"] == 1 and snap["requests"]["trade:create_order"]["count"] == 1


async def test_taker_fills_in_the_submit_answer_are_delivered_once(fake: FakeBinance, harness: Harness) -> None:
    fake.set_depth("BTC/USDT", [("100.00", "1")], [("100.01", "0.1"), ("100.02", "1")])
    report = await harness.venue.place_order(limit("take-1", Side.BUY, "0.3", "100.02"))
    assert report.status is OrderStatus.FILLED and report.cum_filled_qty == D("0.3")
    fills = await harness.reports.wait_count(lambda r: r.fill is not None, 2)
    assert sorted((f.fill.price, f.fill.qty, f.fill.is_maker) for f in fills) == [(D("100.01"), D("0.1"), False), (D("100.02"), D("0.2"), False)]
    assert sorted(f.cum_filled_qty for f in fills) == [D("0.1"), D("0.3")]
    # the user stream's TRADE events for the same trade ids arrive too (then the balance event): dropped
    await harness.positions.wait_for(lambda p: p[0] == "BTC/USDT" and p[1] == D("1.2997"))  # 1 + 0.3 - 0.0003
    assert harness.venue.metrics.events["duplicate_fills_dropped"] == 2
    assert await harness.live.user_stream.poll_all("test") == 0
    assert len(harness.fills()) == 2


async def test_keys_are_kept_apart(fake: FakeBinance, harness: Harness) -> None:
    await harness.venue.place_order(limit("k-1", Side.BUY, "0.1", "99.00"))
    await harness.venue.cancel_order("BTC/USDT", "k-1")
    await harness.venue.get_open_orders()
    await harness.venue.fetch_order("BTC/USDT", "k-1")
    by_trade_key = {(r.method, r.path) for r in fake.requests if r.api_key == TRADE_KEY}
    assert by_trade_key == {("POST", "/api/v3/order"), ("DELETE", "/api/v3/order")}  # create and cancel only
    by_read_key = {(r.method, r.path) for r in fake.requests if r.api_key == READ_KEY}
    assert not by_read_key & {("POST", "/api/v3/order"), ("DELETE", "/api/v3/order"), ("DELETE", "/api/v3/openOrders")}
    assert ("GET", "/api/v3/account") in by_read_key and ("POST", "/api/v3/userDataStream") in by_read_key


async def test_rounding_and_limits_before_sending(fake: FakeBinance, harness: Harness) -> None:
    from bot.domain.errors import ErrorCode
    from bot.domain.venue import VenueError

    # a buy is rounded down to the tick and the size toward zero: still a valid order
    report = await harness.venue.place_order(limit("r-1", Side.BUY, "0.123456", "99.019"))
    sent = fake.requests_for("POST", "order")[-1].params
    assert (sent["quantity"], sent["price"]) == ("0.12345", "99.01") and report.status is OrderStatus.ACCEPTED
    sell = await harness.venue.place_order(limit("r-2", Side.SELL, "0.1", "120.011"))
    assert fake.requests_for("POST", "order")[-1].params["price"] == "120.02" and sell.status is OrderStatus.ACCEPTED
    assert harness.venue.metrics.events["rounded_at_adapter"] == 2  # visible: the OMS should have rounded
    posts = len(fake.requests_for("POST", "order"))
    for request, why in (
        (limit("r-3", Side.BUY, "0.01", "99"), "notional"),  # 0.99 < 5
        (limit("r-4", Side.BUY, "0.000001", "99"), "quantity"),  # rounds to 0
        (limit("r-5", Side.BUY, "9001", "99"), "maximum"),  # above max qty
        (OrderRequest("r-6", "DOGE/USDT", Side.BUY, D("1"), OrderType.LIMIT, D("1"), TimeInForce.GTC), "unknown instrument"),
        (OrderRequest("r-7", "BTC/USDT", Side.BUY, D("1"), OrderType.LIMIT, None, TimeInForce.GTC), "without a limit price"),
        (OrderRequest("r-8", "BTC/USDT", Side.BUY, D("0.1"), OrderType.LIMIT_MAKER, D("99"), TimeInForce.IOC), "post-only"),
    ):
        try:
            await harness.venue.place_order(request)
        except VenueError as exc:
            assert exc.code is ErrorCode.INVALID_ORDER and why in exc.message, (why, exc.message)
        else:
            raise AssertionError(f"{why}: accepted")
    assert len(fake.requests_for("POST", "order")) == posts  # nothing invalid was sent


async def test_market_and_post_only_orders(fake: FakeBinance, harness: Harness) -> None:
    maker = await harness.venue.place_order(OrderRequest("pm-1", "BTC/USDT", Side.BUY, D("0.1"), OrderType.LIMIT_MAKER, D("99"), TimeInForce.GTC))
    assert maker.status is OrderStatus.ACCEPTED and fake.order("pm-1").type == "LIMIT_MAKER"
    market = await harness.venue.place_order(OrderRequest("m-1", "BTC/USDT", Side.SELL, D("0.2"), OrderType.MARKET, None, TimeInForce.GTC))
    assert market.status is OrderStatus.FILLED and "timeInForce" not in fake.requests_for("POST", "order")[-1].params
    fill = await harness.reports.wait_for(lambda r: r.fill is not None and r.client_order_id == "m-1")
    assert (fill.fill.side, fill.fill.price, fill.fill.fee_currency, fill.fill.fee_quote) == (Side.SELL, D("100"), "USDT", D("0.02"))
