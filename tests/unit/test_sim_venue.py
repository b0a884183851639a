"""The simulated venue against hand-worked numbers: fills, partial fills, slippage, fees, rejections, latency."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.domain.errors import ErrorCode
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.market import Book, BookLevel, Tick
from bot.domain.order import OrderStatus
from bot.domain.venue import ExecutionReport, OrderRequest, PositionUpdate, VenueError
from bot.engine.clock import ManualClock
from bot.engine.sim_venue import SimulatedVenue

BTC = Instrument(
    "BTC/USDT", "sim", "BTCUSDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("5"),
    fees=FeeModel(maker=D("0.001"), taker=D("0.002")),
)
MS = 1_000_000


class Harness:
    def __init__(self, **kwargs: object) -> None:
        self.clock = ManualClock(1_000 * MS)
        balances = kwargs.pop("balances", {"USDT": D("1000000"), "BTC": D("10")})
        kwargs.setdefault("enforce_balances", True)
        kwargs.setdefault("balance_positions", True)
        self.venue = SimulatedVenue({"BTC/USDT": BTC}, self.clock, balances=balances, **kwargs)  # type: ignore[arg-type]
        self.reports: list[ExecutionReport] = []
        self.positions: list[PositionUpdate] = []
        self.venue.set_report_sink(self._sink)
        self.n = 0

    def _sink(self, event: ExecutionReport | PositionUpdate) -> None:
        (self.positions if isinstance(event, PositionUpdate) else self.reports).append(event)  # type: ignore[arg-type]

    def tick(self, bid: str, ask: str, bid_size: str = "1", ask_size: str = "1", *, at_ms: int | None = None) -> None:
        self.n += 1
        ts = self.clock.now_ns() + 100 * MS if at_ms is None else at_ms * MS
        self.venue.on_tick(Tick("BTC/USDT", D(bid), D(bid_size), D(ask), D(ask_size), ts, ts, self.n, "sim"))

    async def place(self, coid: str, side: Side, qty: str, price: str | None = None, *,
                    order_type: OrderType = OrderType.LIMIT, tif: TimeInForce = TimeInForce.GTC) -> ExecutionReport:
        request = OrderRequest(coid, "BTC/USDT", side, D(qty), order_type, None if price is None else D(price), tif)
        return await self.venue.place_order(request)

    def fills(self, coid: str | None = None) -> list[tuple[D, D, bool, D]]:
        return [
            (r.fill.qty, r.fill.price, r.fill.is_maker, r.fill.fee)
            for r in self.reports
            if r.fill is not None and (coid is None or r.client_order_id == coid)
        ]

    def statuses(self, coid: str) -> list[OrderStatus]:
        return [r.status for r in self.reports if r.client_order_id == coid]


async def test_resting_limit_fills_as_maker_when_the_ask_crosses_it() -> None:
    h = Harness()
    h.tick("59999.99", "60000.01")
    ack = await h.place("b1", Side.BUY, "0.01", "60000.00")
    assert ack.status is OrderStatus.ACCEPTED and h.fills() == []
    h.tick("60000.00", "60000.02")  # no cross: the ask is above our bid
    assert h.fills() == []
    h.tick("59999.98", "59999.99")  # the ask came down through our bid
    # 0.01 @ 60000.00 (our limit, as maker); fee 600 * 0.001 = 0.6
    assert h.fills() == [(D("0.01"), D("60000.00"), True, D("0.6"))]
    assert h.statuses("b1")[-1] is OrderStatus.FILLED
    assert h.venue.open_order_count() == 0
    # the position stream follows the fill: spot semantics, the total base balance (10 held + 0.01 bought)
    assert [(u.asset, u.qty) for u in h.positions] == [("BTC/USDT", D("10.01"))]


async def test_touch_fills_unless_a_strict_cross_is_configured() -> None:
    for touch, expected in ((True, 1), (False, 0)):
        h = Harness(fill_on_touch=touch)
        h.tick("59999.99", "60000.01")
        await h.place("s1", Side.SELL, "0.01", "60000.01")
        h.tick("60000.01", "60000.02")  # the bid reaches our ask exactly
        assert len(h.fills()) == expected


async def test_partial_fills_are_bounded_by_the_displayed_size() -> None:
    h = Harness()
    h.tick("59999.99", "60000.01")
    await h.place("b1", Side.BUY, "1", "60000.00")
    h.tick("59999.00", "60000.00", ask_size="0.3")
    h.tick("59999.00", "60000.00", ask_size="0.5")
    h.tick("59999.00", "60000.01", ask_size="9")  # no cross: nothing
    h.tick("59989.00", "59990.00", ask_size="5")  # fills the last 0.2 at our limit
    assert [q for q, *_ in h.fills()] == [D("0.3"), D("0.5"), D("0.2")]
    assert all(p == D("60000.00") and maker for _q, p, maker, _f in h.fills())
    assert h.statuses("b1") == [OrderStatus.PARTIALLY_FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
    assert [r.cum_filled_qty for r in h.reports] == [D("0.3"), D("0.8"), D("1")]


async def test_resting_orders_share_the_displayed_size_in_price_then_time_priority() -> None:
    h = Harness()
    h.tick("59990.00", "60010.00")
    await h.place("low", Side.BUY, "0.4", "60000.00")
    await h.place("high", Side.BUY, "0.4", "60001.00")
    await h.place("low2", Side.BUY, "0.4", "60000.00")
    h.tick("59990.00", "59999.00", ask_size="0.5")
    # best price first (high: 0.4), then the earlier of the two at 60000 (low: 0.1 of what is left)
    assert [(r.client_order_id, r.fill.qty) for r in h.reports if r.fill] == [("high", D("0.4")), ("low", D("0.1"))]


async def test_no_fill_when_the_market_stays_away() -> None:
    h = Harness()
    h.tick("59999.99", "60000.01")
    await h.place("b1", Side.BUY, "0.01", "59000.00")
    await h.place("s1", Side.SELL, "0.01", "61000.00")
    for _ in range(50):
        h.tick("59999.99", "60000.01", "100", "100")
    assert h.reports == [] and h.venue.open_order_count() == 2


async def test_crossing_limit_order_takes_as_taker_then_rests() -> None:
    h = Harness()
    h.tick("59999.99", "60000.00", ask_size="0.5")
    await h.place("b1", Side.BUY, "0.8", "60000.01")
    # 0.5 @ 60000.00 (best ask), then 0.3 @ 60000.01 (one synthetic level worse, still within the limit)
    assert h.fills() == [(D("0.5"), D("60000.00"), False, D("60.00000")), (D("0.3"), D("60000.01"), False, D("36.000006"))]
    await h.place("b2", Side.BUY, "0.5", "60000.00")  # the displayed 0.5 at 60000 was taken: b2 rests
    assert h.fills("b2") == [] and h.venue.open_order_count() == 1


async def test_market_order_slippage_on_l1_walks_synthetic_levels() -> None:
    h = Harness()
    h.tick("59999.99", "60000.00", "0.5", "0.5")
    await h.place("m1", Side.BUY, "1.2", order_type=OrderType.MARKET)
    # 0.5 @ 60000.00, 0.5 @ 60000.01, 0.2 @ 60000.02; taker fee 0.2%
    assert h.fills() == [
        (D("0.5"), D("60000.00"), False, D("60.00000")),
        (D("0.5"), D("60000.01"), False, D("60.000010")),
        (D("0.2"), D("60000.02"), False, D("24.0000080")),
    ]
    assert h.statuses("m1")[-1] is OrderStatus.FILLED
    vwap = sum(q * p for q, p, *_ in h.fills()) / D("1.2")
    assert vwap == D("60000.0075")  # 7.5 millicents per BTC of slippage over the best ask


async def test_market_order_on_l2_walks_the_book_and_expires_when_it_runs_out() -> None:
    h = Harness()
    h.tick("59999.99", "60000.00", "0.5", "0.5")
    h.venue.on_book(Book(
        "BTC/USDT", (BookLevel(D("59999.99"), D("0.5")),),
        (BookLevel(D("60000.00"), D("0.5")), BookLevel(D("60001.00"), D("0.3")), BookLevel(D("60005.00"), D("1"))),
        h.clock.now_ns(), h.clock.now_ns(), 1,
    ))
    await h.place("m1", Side.BUY, "1.0", order_type=OrderType.MARKET)
    assert [(q, p) for q, p, *_ in h.fills("m1")] == [(D("0.5"), D("60000.00")), (D("0.3"), D("60001.00")), (D("0.2"), D("60005.00"))]
    await h.place("m2", Side.SELL, "2", order_type=OrderType.MARKET)  # only 0.5 on the bid side of the book
    assert [(q, p) for q, p, *_ in h.fills("m2")] == [(D("0.5"), D("59999.99"))]
    assert h.statuses("m2") == [OrderStatus.PARTIALLY_FILLED, OrderStatus.EXPIRED]


async def test_liquidity_taken_stays_taken_until_the_next_tick() -> None:
    h = Harness(l1_extra_levels=1)
    h.tick("59999.99", "60000.00", "0.5", "0.5")
    await h.place("m1", Side.BUY, "0.4", order_type=OrderType.MARKET)
    await h.place("m2", Side.BUY, "0.4", order_type=OrderType.MARKET)
    assert [(q, p) for q, p, *_ in h.fills("m2")] == [(D("0.1"), D("60000.00")), (D("0.3"), D("60000.01"))]
    await h.place("m3", Side.BUY, "1", order_type=OrderType.MARKET)  # 0.2 left one level down, then nothing
    assert [(q, p) for q, p, *_ in h.fills("m3")] == [(D("0.2"), D("60000.01"))]
    assert h.statuses("m3")[-1] is OrderStatus.EXPIRED
    h.tick("59999.99", "60000.00", "0.5", "0.5")  # a new tick shows fresh size
    await h.place("m4", Side.BUY, "0.5", order_type=OrderType.MARKET)
    assert h.fills("m4") == [(D("0.5"), D("60000.00"), False, D("60.00000"))]


async def test_fees_maker_taker_and_gas() -> None:
    inst = Instrument("ETH/USDT", "sim", "ETHUSDT", "ETH", "USDT", D("0.01"), D("0.0001"), fees=FeeModel(D("-0.0001"), D("0.001"), D("0.5")))
    clock = ManualClock(0)
    venue = SimulatedVenue({"ETH/USDT": inst}, clock, balances={"USDT": D("100000"), "ETH": D("10")}, balance_positions=True)
    reports: list[ExecutionReport] = []
    venue.set_report_sink(lambda e: reports.append(e) if isinstance(e, ExecutionReport) else None)
    venue.on_tick(Tick("ETH/USDT", D("1999.99"), D("10"), D("2000.00"), D("10"), 1, 1, 1))
    await venue.place_order(OrderRequest("t", "ETH/USDT", Side.BUY, D("1"), OrderType.MARKET, None, TimeInForce.GTC))
    await venue.place_order(OrderRequest("m", "ETH/USDT", Side.SELL, D("1"), OrderType.LIMIT, D("2001.00"), TimeInForce.GTC))
    venue.on_tick(Tick("ETH/USDT", D("2001.00"), D("10"), D("2001.01"), D("10"), 2, 2, 2))
    fees = {r.client_order_id: (r.fill.fee, r.fill.is_maker) for r in reports if r.fill}
    assert fees == {"t": (D("2.5"), False), "m": (D("0.2999"), True)}  # 2000*0.001+0.5 ; 2001*-0.0001+0.5
    balances = await venue.get_balances()
    # quote: 100000 - 2000 - 2.5 + 2001 - 0.2999 = 99998.2001 ; base unchanged after buy 1, sell 1
    assert balances["USDT"].free == D("99998.2001") and balances["ETH"].total == D("10")
    assert await venue.get_positions() == {"ETH/USDT": D("10")}  # spot: the venue's position is its base balance


@pytest.mark.parametrize(
    ("qty", "price", "order_type", "expected"),
    [
        ("0.01", "60000.005", OrderType.LIMIT, "Filter failure: PRICE_FILTER"),
        ("0.000015", "60000.00", OrderType.LIMIT, "Filter failure: LOT_SIZE"),
        ("0.00001", "60000.00", OrderType.LIMIT, "Filter failure: NOTIONAL"),  # 0.6 USDT < 5
        ("0.00008", None, OrderType.MARKET, "Filter failure: NOTIONAL"),  # 4.8 USDT at the mid
        ("0", "60000.00", OrderType.LIMIT, "Filter failure: LOT_SIZE"),
    ],
)
async def test_filter_rejections_use_binance_codes(qty: str, price: str | None, order_type: OrderType, expected: str) -> None:
    h = Harness()
    h.tick("59999.99", "60000.01")
    with pytest.raises(VenueError) as err:
        await h.place("x", Side.BUY, qty, price, order_type=order_type)
    assert err.value.code is ErrorCode.INVALID_ORDER and err.value.venue_code == "-1013"
    assert err.value.message.startswith(expected)
    assert h.venue.open_order_count() == 0 and h.reports == []
    await h.place("x", Side.BUY, "0.001", "60000.00")  # the refused id was never used: it can be placed now


async def test_other_refusals_use_binance_codes() -> None:
    h = Harness(balances={"USDT": D("100"), "BTC": D("0.001")})
    h.tick("59999.99", "60000.01")
    with pytest.raises(VenueError) as err:
        await h.venue.place_order(OrderRequest("u", "DOGE/USDT", Side.BUY, D("1"), OrderType.LIMIT, D("1"), TimeInForce.GTC))
    assert err.value.venue_code == "-1121"
    with pytest.raises(VenueError) as err:
        await h.place("big", Side.BUY, "0.01", "60000.00")  # needs 600.6 USDT, has 100
    assert err.value.code is ErrorCode.INSUFFICIENT_BALANCE and err.value.venue_code == "-2010"
    with pytest.raises(VenueError) as err:
        await h.place("short", Side.SELL, "0.002", "60001.00")  # spot: cannot sell BTC it does not have
    assert err.value.code is ErrorCode.INSUFFICIENT_BALANCE
    await h.place("s1", Side.SELL, "0.001", "60001.00")
    with pytest.raises(VenueError) as err:
        await h.place("s1", Side.SELL, "0.001", "60002.00")
    assert err.value.venue_code == "-2010" and "Duplicate" in err.value.message
    with pytest.raises(VenueError) as err:
        await h.place("pm", Side.BUY, "0.0001", "60000.01", order_type=OrderType.LIMIT_MAKER)
    assert err.value.venue_code == "-2010" and "immediately match" in err.value.message
    with pytest.raises(VenueError) as err:
        await h.venue.cancel_order("BTC/USDT", "nope")
    assert err.value.venue_code == "-2011"
    balances = await h.venue.get_balances()
    assert balances["BTC"].locked == D("0.001") and balances["BTC"].free == D("0")


async def test_balances_lock_and_release() -> None:
    h = Harness(balances={"USDT": D("1000"), "BTC": D("0")})
    h.tick("59999.99", "60000.01")
    await h.place("b1", Side.BUY, "0.01", "60000.00")
    bal = await h.venue.get_balances()
    assert bal["USDT"].locked == D("600.00") * D("1.002")  # notional plus the worst fee rate
    await h.venue.cancel_order("BTC/USDT", "b1")
    bal = await h.venue.get_balances()
    assert bal["USDT"].locked == 0 and bal["USDT"].free == D("1000")


async def test_ioc_and_fok() -> None:
    h = Harness()
    h.tick("59999.99", "60000.00", "0.5", "0.5")
    await h.place("fok", Side.BUY, "2", "60000.00", tif=TimeInForce.FOK)  # only 0.5 within the limit
    assert h.fills("fok") == [] and h.statuses("fok") == [] and h.venue.open_order_count() == 0
    await h.place("ioc", Side.BUY, "2", "60000.00", tif=TimeInForce.IOC)
    assert [q for q, *_ in h.fills("ioc")] == [D("0.5")]
    assert h.statuses("ioc") == [OrderStatus.PARTIALLY_FILLED, OrderStatus.EXPIRED]


async def test_ack_latency_follows_the_injected_clock() -> None:
    h = Harness(ack_latency_ns=50 * MS)
    h.tick("59999.99", "60000.00", at_ms=1_000)
    ack = await h.place("b1", Side.BUY, "0.01", "60000.00")  # would cross now, but it is in flight
    assert ack.status is OrderStatus.PENDING_SUBMIT and h.reports == []
    h.tick("60000.01", "60000.02", at_ms=1_040)  # still in flight at +40 ms
    assert h.reports == []
    h.tick("60000.01", "60000.02", at_ms=1_050)  # arrives at +50 ms: the market moved away, it rests
    assert [r.status for r in h.reports] == [OrderStatus.ACCEPTED] and h.reports[0].latency_ns == 50 * MS
    pending = await h.venue.cancel_order("BTC/USDT", "b1")
    assert pending.status is OrderStatus.PENDING_CANCEL
    h.tick("59999.99", "60000.00", "1", "0.004", at_ms=1_060)  # a partial fill while the cancel is in flight
    h.tick("60000.01", "60000.02", at_ms=1_100)
    assert [r.status for r in h.reports[1:]] == [OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELED]
    assert h.reports[-1].cum_filled_qty == D("0.004")


async def test_cancel_that_arrives_after_the_fill_is_answered_unknown() -> None:
    h = Harness(ack_latency_ns=10 * MS)
    h.tick("59999.99", "60000.01", at_ms=1_000)
    await h.place("b1", Side.BUY, "0.01", "60000.00")
    h.tick("59999.99", "60000.01", at_ms=1_010)
    await h.venue.cancel_order("BTC/USDT", "b1")
    h.tick("59999.98", "59999.99", at_ms=1_015)  # filled before the cancel arrives
    h.tick("59999.98", "59999.99", at_ms=1_020)
    last = h.reports[-1]
    assert last.status is OrderStatus.FILLED and last.code is ErrorCode.ORDER_REJECTED and "-2011" in last.reason


async def test_deterministic_given_the_event_stream_and_the_seed() -> None:
    async def run(seed: int) -> list[tuple[str, OrderStatus, int]]:
        h = Harness(ack_latency_ns=20 * MS, latency_jitter_ns=200 * MS, seed=seed)
        for i in range(200):
            mid = 60000 + (i % 7) - 3
            h.tick(f"{mid - 0.01:.2f}", f"{mid:.2f}", "0.3", "0.3", at_ms=1_000 + i * 37)
            if i % 5 == 0:
                await h.place(f"o{i}", Side.BUY if i % 10 else Side.SELL, "0.01", f"{mid - 1 if i % 10 else mid + 1:.2f}")
        return [(r.client_order_id, r.status, r.ts_ns) for r in h.reports]

    first = await run(1)
    assert first == await run(1)
    assert first != await run(2)  # the seed drives the latency jitter
