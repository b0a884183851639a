"""Manual orders: the operator's words -> one intent, exactly as typed or refused with the reason."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.domain.intent import IntentKind, OrderType, Side, TimeInForce, Urgency
from bot.strategies.manual import ManualOrder, ManualOrderError, ManualStrategy
from tests.unit.strategy_helpers import Harness


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("buy BTC/USDT 0.01 limit 60000", ManualOrder(Side.BUY, "BTC/USDT", D("0.01"), OrderType.LIMIT, D("60000"))),
        ("SELL btc/usdt 0.5 limit 61000.5 IOC", ManualOrder(Side.SELL, "BTC/USDT", D("0.5"), OrderType.LIMIT, D("61000.5"), TimeInForce.IOC)),
        ("buy BTC/USDT 0.001 market", ManualOrder(Side.BUY, "BTC/USDT", D("0.001"), OrderType.MARKET)),
        ("sell BTC/USDT 0.001 maker 60100", ManualOrder(Side.SELL, "BTC/USDT", D("0.001"), OrderType.LIMIT_MAKER, D("60100"))),
        # the Telegram spellings of the same grammar
        ("sell BTC/USDT 0.001 limit_maker 60100", ManualOrder(Side.SELL, "BTC/USDT", D("0.001"), OrderType.LIMIT_MAKER, D("60100"))),
        ("sell BTC/USDT 0.001 post 60100", ManualOrder(Side.SELL, "BTC/USDT", D("0.001"), OrderType.LIMIT_MAKER, D("60100"))),
        ("buy BTC/USDT 0.01 limit 60000 tif=fok", ManualOrder(Side.BUY, "BTC/USDT", D("0.01"), OrderType.LIMIT, D("60000"), TimeInForce.FOK)),
    ],
)
def test_parse(text: str, expected: ManualOrder) -> None:
    order = ManualOrder.parse(text)
    assert order == expected
    assert ManualOrder.parse(order.text()) == order  # the canonical text parses back to the same order
    assert ManualOrder.parse(text.split()) == order  # the bot's argument list works as well


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("buy BTC/USDT 0.01", "too few words"),
        ("purchase BTC/USDT 0.01 market", "side must be buy or sell"),
        ("buy BTCUSDT 0.01 market", "BASE/QUOTE"),
        ("buy BTC/USDT abc market", "not a number"),
        ("buy BTC/USDT -1 market", "must be positive"),
        ("buy BTC/USDT 0.01 limit", "needs a price"),
        ("buy BTC/USDT 0.01 market 60000", "unexpected"),
        ("buy BTC/USDT 0.01 stop 60000", "order type must be market, limit or maker"),
        ("buy BTC/USDT 0.01 limit 60000 gtd=1", "unexpected"),
        ("buy BTC/USDT 1e999999 market", "out of range"),
        ("buy BTC-USDT 0.01 market", "BASE/QUOTE"),
        ("buy BTC/USDT 0.01 limit 60000 day", "gtc, ioc or fok"),
        ("buy BTC/USDT 0.01 maker 60000 ioc", "unexpected"),
        ("buy BTC/USDT NaN market", "finite"),
    ],
)
def test_parse_errors_say_why(text: str, message: str) -> None:
    with pytest.raises(ManualOrderError, match=message):
        ManualOrder.parse(text)


def test_one_intent_exactly_as_typed() -> None:
    h = Harness(ManualStrategy("manual", {}, ["BTC/USDT"]))
    h.ctx.event_ns = 123
    [intent] = h.strategy.on_request(h.ctx, "buy BTC/USDT 0.01 limit 60000")
    assert (intent.kind, intent.side, intent.asset, intent.qty, intent.limit_price, intent.order_type, intent.tif) == (
        IntentKind.PLACE, Side.BUY, "BTC/USDT", D("0.01"), D("60000"), OrderType.LIMIT, TimeInForce.GTC
    )
    assert intent.strategy_id == "manual" and intent.ts_ns == 123 and intent.risk_tags == ("manual",)
    assert intent.rationale == "operator: buy BTC/USDT 0.01 limit 60000 gtc" and intent.urgency is Urgency.NORMAL
    assert h.strategy.on_tick(h.ctx) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("buy BTC/USDT 0.000015 limit 60000", "lot size"),  # never rounded behind the operator's back
        ("buy BTC/USDT 0.01 limit 60000.005", "tick size"),
        ("buy BTC/USDT 0.00001 limit 60000", "below the minimum 5"),
        ("buy ETH/USDT 1 limit 2000", "not traded"),
        ("buy BTC/USDT 0.01 market", "no market data"),
    ],
)
def test_refused_against_the_instrument(text: str, message: str) -> None:
    h = Harness(ManualStrategy("manual", {}, ["BTC/USDT"]))
    with pytest.raises(ManualOrderError, match=message):
        h.strategy.on_request(h.ctx, text)


def test_manual_takes_no_parameters() -> None:
    with pytest.raises(ValueError, match="takes no parameters"):
        ManualStrategy("manual", {"x": 1}, ["BTC/USDT"])


def test_a_market_order_never_rests() -> None:
    order = ManualOrder.parse("buy BTC/USDT 0.001 market")
    assert order.tif is TimeInForce.IOC
    with pytest.raises(ManualOrderError, match="never rests"):
        ManualOrder(Side.BUY, "BTC/USDT", D("0.001"), OrderType.MARKET, tif=TimeInForce.GTC)


def test_rounded_to_the_grid_on_the_passive_side() -> None:
    from tests.oms.support import instrument  # tick 0.01, lot 0.001

    inst = instrument("BTC/USDT")
    buy = ManualOrder.parse("buy BTC/USDT 0.0109 limit 60000.019")
    assert buy.rounded(inst) == ManualOrder(Side.BUY, "BTC/USDT", D("0.010"), OrderType.LIMIT, D("60000.01"))
    sell = ManualOrder.parse("sell BTC/USDT 0.0109 limit 60000.011")
    assert sell.rounded(inst).limit_price == D("60000.02")  # a sell rounds up: never more aggressive
    exact = ManualOrder.parse("buy BTC/USDT 0.01 limit 60000")
    assert exact.rounded(inst) is exact
    with pytest.raises(ManualOrderError, match="below one lot"):
        ManualOrder.parse("buy BTC/USDT 0.0009 market").rounded(inst)
