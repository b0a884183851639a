"""The quote model (reference card 01) against hand-worked numbers."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import IntentKind, OrderType, Side, TimeInForce
from bot.domain.order import Order, OrderStatus
from bot.strategies.quote import QuoteStrategy
from tests.unit.strategy_helpers import MINUTE, Harness

T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z, a minute boundary


def fixed(**params: object) -> QuoteStrategy:
    base: dict[str, object] = {"spread_bps": "10", "k": "0.3", "inventory_cap": "0.01", "order_qty": "0.001"}
    base.update(params)
    return QuoteStrategy("q", base, ["BTC/USDT"])


# mid 60000.00 in a wide book (59990 / 60010) so that only the model decides; spread 10 bps = 60 USDT.
WIDE = (D("60000.00"), D("0.01"), D("59990.00"), D("60010.00"))


@pytest.mark.parametrize(
    ("inventory", "bid", "ask"),
    [
        # flat: 60000 * (1 -/+ 0.0005)
        ("0", "59970.00", "60030.00"),
        # long half the cap: skew = 0.3 * 0.5 * 0.001 = 0.00015 (9 USDT): both quotes LOWER (encourage selling)
        ("0.005", "59961.00", "60021.00"),
        # short half the cap: skew = -0.00015: both quotes HIGHER (encourage buying)
        ("-0.005", "59979.00", "60039.00"),
        # long at the cap: skew = 0.0003 (18 USDT); the bid would take inventory to 0.011 > cap: not quoted
        ("0.01", None, "60012.00"),
        # short at the cap: the ask is not quoted; bid = 60000 * (1 - 0.0005 + 0.0003)
        ("-0.01", "59988.00", None),
        # 0.0095 + 0.001 = 0.0105 > cap: no bid even though below the cap; ask = 60000 * (1.0005 - 0.000285)
        ("0.0095", None, "60012.90"),
    ],
)
def test_spread_and_skew_hand_worked(inventory: str, bid: str | None, ask: str | None) -> None:
    q = fixed()
    got = q.quote(*WIDE[:1], D(inventory), D("0.001"), WIDE[1], WIDE[2], WIDE[3])
    assert got == (None if bid is None else D(bid), None if ask is None else D(ask))


def test_skew_sign_through_on_tick_long_and_short() -> None:
    h = Harness(fixed(refresh_ticks=1))
    h.set_inventory("0.005")
    long = h.tick("59990.00", "60010.00", T0)
    h.set_inventory("-0.005")
    short = h.tick("59990.00", "60010.00", T0 + 1)
    assert [(i.side, i.limit_price) for i in long] == [(Side.BUY, D("59961.00")), (Side.SELL, D("60021.00"))]
    assert [(i.side, i.limit_price) for i in short] == [(Side.BUY, D("59979.00")), (Side.SELL, D("60039.00"))]
    assert all(i.order_type is OrderType.LIMIT_MAKER and i.qty == D("0.001") for i in long + short)


def test_rounded_to_the_tick_passively() -> None:
    # mid 60000.005: bid 60000.005 * 0.9995 = 59970.0049975 -> 59970.00 ; ask * 1.0005 = 60030.0050025 -> 60030.01
    q = fixed()
    assert q.quote(D("60000.005"), D("0"), D("0.001"), D("0.01"), D("60000.00"), D("60000.01")) == (D("59970.00"), D("60030.01"))
    h = Harness(fixed(shadow=True))
    h.tick("60000.00", "60000.01", T0)
    quotes = h.strategy.last_quotes("BTC/USDT")
    assert quotes is not None and (quotes.bid, quotes.ask) == (D("59970.00"), D("60030.01"))


def test_never_crosses_the_book() -> None:
    q = fixed(k="1")
    # short 0.009 with k = 1: skew = -0.0009 -> raw bid 60000 * (0.9995 + 0.0009) = 60024 > best ask 60000.01
    assert q.quote(D("60000.00"), D("-0.009"), D("0.001"), D("0.01"), D("59999.99"), D("60000.01")) == (D("60000.00"), D("60084.00"))
    # long 0.009: raw ask 60000 * (1.0005 - 0.0009) = 59976 < best bid 59999.99 -> one tick above the best bid
    assert q.quote(D("60000.00"), D("0.009"), D("0.001"), D("0.01"), D("59999.99"), D("60000.01")) == (D("59916.00"), D("60000.00"))


def test_a_zero_spread_keeps_min_spread_ticks_between_bid_and_ask() -> None:
    # a rebate larger than sigma makes 2 * fee + sigma negative: the spread is clamped at 0, and the quotes
    # (both 60000.00 after rounding) are pulled apart to min_spread_ticks
    q = fixed()
    assert sigma_model().spread_fraction(D("0.0001"), D("-0.001")) == 0
    assert q.quote(D("60000.00"), D("0"), D("0"), D("0.01"), D("59990.00"), D("60010.00")) == (D("60000.00"), D("60000.01"))
    q3 = fixed(min_spread_ticks=3)
    assert q3.quote(D("60000.00"), D("0"), D("0"), D("0.01"), D("59990.00"), D("60010.00")) == (D("60000.00"), D("60000.03"))
    # a tiny positive spread rounds passively: one tick each side of an on-grid mid
    assert q.quote(D("60000.00"), D("0"), D("0.000000001"), D("0.01"), D("59990.00"), D("60010.00")) == (D("59999.99"), D("60000.01"))


def test_non_decimal_tick_rounds_on_its_grid() -> None:
    inst = Instrument("ETH/USD", "sim", "ETHUSD", "ETH", "USD", D("0.5"), D("0.001"), fees=FeeModel(D("0"), D("0")))
    q = QuoteStrategy("q", {"spread_bps": "10", "inventory_cap": "1", "order_qty": "0.1"}, ["ETH/USD"])
    h = Harness(q, {"ETH/USD": inst})
    h.set_inventory("0", asset="ETH/USD")
    h.tick("1999.5", "2000.5", T0, asset="ETH/USD")  # mid 2000: 1999 and 2001 exactly; the grid is 0.5
    quotes = q.last_quotes("ETH/USD")
    assert quotes is not None and (quotes.bid, quotes.ask) == (D("1999.0"), D("2001.0"))
    h.tick("1999.5", "2001.0", T0 + 1, asset="ETH/USD")  # mid 2000.25 -> 1999.249875 -> 1999.0 ; 2001.250125 -> 2001.5
    quotes = q.last_quotes("ETH/USD")
    assert quotes is not None and (quotes.bid, quotes.ask) == (D("1999.0"), D("2001.5"))


def sigma_model(**params: object) -> QuoteStrategy:
    base: dict[str, object] = {"sigma_min_samples": 3, "sigma_window": 3, "inventory_cap": "0.01", "order_qty": "0.001", "shadow": True}
    base.update(params)
    return QuoteStrategy("q", base, ["X/USD"])


X = Instrument("X/USD", "sim", "XUSD", "X", "USD", D("0.0001"), D("0.001"), fees=FeeModel(D("0.001"), D("0.001")))


def feed_minutes(h: Harness, mids: list[str]) -> None:
    for i, mid in enumerate(mids):
        m = D(mid)
        h.tick(str(m - D("0.0001")), str(m + D("0.0001")), T0 + i * MINUTE + 5, asset="X/USD")


def test_default_spread_is_two_fees_plus_one_sigma_of_one_minute_returns() -> None:
    q = sigma_model()
    h = Harness(q, {"X/USD": X})
    # minute closes 100, 101, 104.03, 106.1106: returns 0.01, 0.03, 0.02 (exact); the 5th minute's tick closes minute 3
    feed_minutes(h, ["100", "101", "104.03", "106.1106"])
    warm = q.last_quotes("X/USD")
    assert warm is not None and warm.sigma is None and (warm.bid, warm.ask) == (None, None)  # warm-up: no quotes
    h.tick("106.1105", "106.1107", T0 + 4 * MINUTE + 5, asset="X/USD")
    quotes = q.last_quotes("X/USD")
    # mean 0.02, deviations -0.01, 0.01, 0 -> sample variance 0.0002 / 2 = 0.0001 -> sigma = 0.01
    assert quotes is not None and quotes.sigma == D("0.01")
    # spread = 2 * 0.001 + 0.01 = 0.012 of the mid: bid 106.1106 * 0.994 = 105.4739364 -> 105.4739
    #                                              ask 106.1106 * 1.006 = 106.7472636 -> 106.7473
    assert (quotes.bid, quotes.ask) == (D("105.4739"), D("106.7473"))


def test_sigma_prior_quotes_during_warm_up_and_gaps_are_scaled() -> None:
    q = sigma_model(sigma_prior="0.002", fee="0")
    h = Harness(q, {"X/USD": X})
    h.tick("99.9999", "100.0001", T0 + 5, asset="X/USD")
    quotes = q.last_quotes("X/USD")
    # spread 0.002 with the prior: 100 * 0.999 = 99.9 ; 100 * 1.001 = 100.1
    assert quotes is not None and (quotes.bid, quotes.ask) == (D("99.9000"), D("100.1000"))
    # minute 0 closes at 100; nothing until minute 4 closes at 102: one return over 4 minutes = 0.02 / sqrt(4)
    h.tick("101.9999", "102.0001", T0 + 4 * MINUTE + 5, asset="X/USD")
    h.tick("101.9999", "102.0001", T0 + 5 * MINUTE + 5, asset="X/USD")
    assert list(q._states["X/USD"].returns) == [D("0.01")]


def test_zero_volatility_still_quotes_two_fees_wide() -> None:
    q = sigma_model()
    h = Harness(q, {"X/USD": X})
    feed_minutes(h, ["100"] * 5)
    quotes = q.last_quotes("X/USD")
    assert quotes is not None and quotes.sigma == 0
    assert (quotes.bid, quotes.ask) == (D("99.9000"), D("100.1000"))  # spread 0.002 of 100


def test_requotes_replace_a_side_when_its_price_moves_and_cancel_at_the_cap() -> None:
    h = Harness(fixed(min_requote_ms=0, post_only=False))
    first = h.tick("59990.00", "60010.00", T0)
    assert [(i.kind, i.side, i.limit_price, i.tag, i.order_type) for i in first] == [
        (IntentKind.PLACE, Side.BUY, D("59970.00"), "bid", OrderType.LIMIT),
        (IntentKind.PLACE, Side.SELL, D("60030.00"), "ask", OrderType.LIMIT),
    ]
    h.orders = [_order(i.id + "-0", i.side, i.limit_price, i.tag) for i in first]
    assert h.tick("59990.00", "60010.00", T0 + 1) == []  # same prices: nothing to do
    moved = h.tick("59991.00", "60011.00", T0 + 2)  # mid 60001: 59971.0005 -> 59971.00 and 60031.0005 -> 60031.01
    assert [(i.kind, i.tag) for i in moved] == [
        (IntentKind.CANCEL, "bid"), (IntentKind.PLACE, "bid"), (IntentKind.CANCEL, "ask"), (IntentKind.PLACE, "ask")
    ]
    h.set_inventory("0.01")  # at the cap: the bid is cancelled and not replaced
    at_cap = h.tick("59990.00", "60010.00", T0 + 3)
    assert [(i.kind, i.tag) for i in at_cap if i.tag == "bid"] == [(IntentKind.CANCEL, "bid")]


def test_refresh_every_nth_tick_and_shadow_emits_nothing() -> None:
    h = Harness(fixed(refresh_ticks=10))
    counts = [len(h.tick("59990.00", "60010.00", T0 + i)) for i in range(1, 31)]
    assert [i for i, c in enumerate(counts, 1) if c] == [10, 20, 30]
    s = Harness(fixed(shadow=True))
    assert all(s.tick("59990.00", "60010.00", T0 + i) == [] for i in range(100))
    assert s.strategy.last_quotes("BTC/USDT") is not None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"k": "1.5"}, "k must be between 0 and 1"),
        ({"order_qty": "0"}, "order_qty must be positive"),
        ({"order_qty": 0.1}, "floats are not accepted"),
        ({"spred_bps": "1"}, "unknown parameter"),
        ({"order_qty": "0.1", "inventory_cap": "0.01"}, "must not exceed inventory_cap"),
        ({"refresh_ticks": "x"}, "must be an integer"),
        ({"shadow": "maybe"}, "true or false"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        QuoteStrategy("q", params, ["BTC/USDT"])


def _order(coid: str, side: Side, price: D | None, tag: str) -> Order:
    return Order(coid, coid[:-2], "q", "sim", "BTC/USDT", side, D("0.001"), OrderType.LIMIT, price, TimeInForce.GTC, 0,
                 status=OrderStatus.ACCEPTED, tag=tag)



def test_risk_advice_pull_widen_and_throttle() -> None:
    from bot.risk.advice import Advice, QuoteMode

    h = Harness(fixed(min_requote_ms=0))
    first = h.tick("59990.00", "60010.00", T0)
    h.orders = [_order(i.id + "-0", i.side, i.limit_price, i.tag) for i in first]
    advice = Advice(QuoteMode.WIDEN, D("2"), D("0.5"), "news")
    h.ctx.set_advice_source(lambda sid, asset: advice)
    widened = h.tick("59990.00", "60010.00", T0 + 1)
    # spread 10 bps x 2 = 120 USDT: 59940 / 60060; size 0.001 x 0.5 = 0.0005
    places = [(i.side, i.limit_price, i.qty) for i in widened if i.kind is IntentKind.PLACE]
    assert places == [(Side.BUY, D("59940.00"), D("0.0005")), (Side.SELL, D("60060.00"), D("0.0005"))]
    assert all("WIDEN news" in i.rationale for i in widened if i.kind is IntentKind.PLACE)
    advice = Advice(QuoteMode.PULL, reason="stale market data")
    pulled = h.tick("59990.00", "60010.00", T0 + 2)
    assert [(i.kind, i.tag) for i in pulled] == [(IntentKind.CANCEL, "bid"), (IntentKind.CANCEL, "ask")]
    assert all("pull" in i.rationale and "stale market data" in i.rationale for i in pulled)
    quotes = h.strategy.last_quotes("BTC/USDT")
    assert quotes is not None and (quotes.bid, quotes.ask) == (None, None)
