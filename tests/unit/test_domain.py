"""Money, positions and the order state machine against hand-worked numbers."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.domain.errors import DomainError, ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import OrderType, Side, TimeInForce, intent_hash
from bot.domain.money import round_to_step, to_decimal
from bot.domain.order import TRANSITIONS, Order, OrderStatus
from bot.domain.position import Portfolio, Position

BTC = Instrument("BTC/USDT", "sim", "BTCUSDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("5"))


def test_floats_are_refused_for_money() -> None:
    with pytest.raises(TypeError, match="floats are not accepted"):
        to_decimal(0.1)
    assert to_decimal("0.1") + to_decimal("0.2") == D("0.3")
    with pytest.raises(ValueError, match="not a number"):
        to_decimal("abc", field="qty")
    with pytest.raises(ValueError, match="finite"):
        to_decimal("NaN")


def test_rounding_is_passive_and_sizes_truncate() -> None:
    assert BTC.round_price(D("60000.018"), is_buy=True) == D("60000.01")  # a bid never rounds up
    assert BTC.round_price(D("60000.011"), is_buy=False) == D("60000.02")  # an ask never rounds down
    assert BTC.round_qty(D("0.0012349")) == D("0.00123")
    assert round_to_step(D("7"), D("5")) == D("5")


def test_instrument_validation_codes() -> None:
    BTC.validate_order(D("0.001"), D("60000.01"))
    for qty, price, msg in (
        (D("0.000015"), D("60000"), "lot size"),
        (D("0.001"), D("60000.015"), "tick size"),
        (D("0.00001"), D("60000"), "below the minimum 5"),
        (D("0"), D("60000"), "must be positive"),
    ):
        with pytest.raises(DomainError) as err:
            BTC.validate_order(qty, price)
        assert err.value.code is ErrorCode.INVALID_ORDER and msg in err.value.message


def test_fee_model() -> None:
    fees = FeeModel(maker=D("-0.0001"), taker=D("0.001"), gas=D("0.5"))
    assert fees.fee(D("1000"), maker=True) == D("0.4")  # rebate of 0.1 plus 0.5 gas
    assert fees.fee(D("1000"), maker=False) == D("1.5")


def test_position_long_round_trip_hand_worked() -> None:
    p = Position("BTC/USDT")
    p.apply(D("1"), D("100"), D("0.1"))
    p.apply(D("1"), D("110"), D("0.1"))  # avg = (100 + 110) / 2 = 105
    assert (p.qty, p.avg_price) == (D("2"), D("105"))
    assert p.unrealised(D("120")) == D("30")  # (120 - 105) * 2
    realised = p.apply(D("-1.5"), D("120"), D("0.1"))  # (120 - 105) * 1.5 = 22.5
    assert realised == D("22.5") and p.qty == D("0.5") and p.avg_price == D("105")
    assert p.fees == D("0.3")
    assert p.net_pnl(D("100")) == D("22.5") + D("-2.5") - D("0.3")  # unrealised (100-105)*0.5


def test_position_short_and_flip_hand_worked() -> None:
    p = Position("BTC/USDT")
    p.apply(D("-2"), D("100"))  # short 2 @ 100: long is positive, so short is -2
    assert p.qty == D("-2") and p.unrealised(D("90")) == D("20")  # price fell: short gains
    realised = p.apply(D("3"), D("90"))  # cover 2 (gain (100-90)*2 = 20), then long 1 @ 90
    assert realised == D("20") and p.qty == D("1") and p.avg_price == D("90")
    realised = p.apply(D("-1"), D("85"))
    assert realised == D("-5") and p.qty == 0 and p.avg_price == 0
    assert p.realised_pnl == D("15")


def _fill(fid: str, side: Side, qty: str, price: str, strategy: str = "s") -> Fill:
    return Fill(fid, "c1", "v1", "sim", "BTC/USDT", side, D(qty), D(price), D("0"), "USDT", D("0"), True, 0, "i1", strategy)


def test_portfolio_dedups_fills_by_venue_and_id() -> None:
    pf = Portfolio()
    assert pf.apply_fill(_fill("1", Side.BUY, "0.5", "100"))
    assert not pf.apply_fill(_fill("1", Side.BUY, "0.5", "100"))
    assert pf.apply_fill(_fill("2", Side.SELL, "0.2", "101"))
    assert pf.qty("BTC/USDT") == D("0.3")
    assert pf.strategy_position("s", "BTC/USDT").qty == D("0.3")


def _order(qty: str = "1") -> Order:
    return Order("c1", "i1", "s", "sim", "BTC/USDT", Side.BUY, D(qty), OrderType.LIMIT, D("100"), TimeInForce.GTC, 0)


def test_state_machine_refuses_illegal_transitions() -> None:
    o = _order()
    o.transition(OrderStatus.PENDING_SUBMIT, 1)
    o.transition(OrderStatus.ACCEPTED, 2)
    o.transition(OrderStatus.CANCELED, 3)
    with pytest.raises(DomainError) as err:
        o.transition(OrderStatus.ACCEPTED, 4)
    assert err.value.code is ErrorCode.ILLEGAL_TRANSITION
    assert o.status is OrderStatus.CANCELED
    assert TRANSITIONS[OrderStatus.FILLED] == frozenset()
    assert TRANSITIONS[OrderStatus.REJECTED] == frozenset()


def test_partial_fills_never_double_count_and_late_fill_after_cancel_applies() -> None:
    o = _order("1")
    o.transition(OrderStatus.PENDING_SUBMIT, 1)
    o.transition(OrderStatus.ACCEPTED, 2)
    assert o.apply_fill("f1", D("0.4"), D("100"), D("0"), 3)
    assert not o.apply_fill("f1", D("0.4"), D("100"), D("0"), 4)  # duplicate report
    assert o.status is OrderStatus.PARTIALLY_FILLED and o.filled_qty == D("0.4")
    o.transition(OrderStatus.PENDING_CANCEL, 5)
    o.transition(OrderStatus.CANCELED, 6)
    assert o.apply_fill("f2", D("0.1"), D("99"), D("0"), 7)  # the fill happened before the cancel took
    assert o.status is OrderStatus.CANCELED and o.filled_qty == D("0.5") and o.remaining == 0
    assert o.avg_price == D("99.8")
    with pytest.raises(DomainError) as err:
        o.apply_fill("f3", D("0.6"), D("99"), D("0"), 8)
    assert err.value.code is ErrorCode.POSITION_MISMATCH


def test_late_fill_completing_a_canceled_order_ends_filled() -> None:
    o = _order("1")
    for s in (OrderStatus.PENDING_SUBMIT, OrderStatus.ACCEPTED, OrderStatus.PENDING_CANCEL, OrderStatus.CANCELED):
        o.transition(s, 1)
    assert o.apply_fill("f1", D("1"), D("100"), D("0"), 2)
    assert o.status is OrderStatus.FILLED


def test_intent_hash_is_canonical_and_nonce_bound() -> None:
    a = {"asset": "BTC/USDT", "qty": "0.01", "side": "BUY"}
    b = {"side": "BUY", "qty": "0.01", "asset": "BTC/USDT"}
    assert intent_hash(a, "n1") == intent_hash(b, "n1")
    assert intent_hash(a, "n1") != intent_hash(a, "n2")
    assert len(intent_hash(a, "n")) == 64
