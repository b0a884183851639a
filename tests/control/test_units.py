"""Unit tests of the control plane's pure parts: parsing, estimates, the intent book, alerts, config diffs."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bot.control.approval import MASK, diff, flatten
from bot.control.estimate import drift_bps, estimate
from bot.control.fmt import duration, esc, money, price, qty
from bot.control.notifier import OutboxNotifier
from bot.control.parse import ParseError, parse_hash_prefix, parse_mandate, parse_manual, parse_ttl
from bot.control.staging import EntryStatus, IntentBook, Staged
from bot.domain.intent import Intent, OrderType, Side, TimeInForce
from bot.domain.market import Tick
from bot.engine.clock import ManualClock
from tests.control.harness import ASSET, instruments

NS = 1_000_000_000


# --------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2d", 172800), ("1H", 3600)])
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["900", "", "15x", "m", "0m", "-5m", "1.5h", "15 m"])
def test_ttl_needs_a_unit_and_a_positive_value(text: str) -> None:
    with pytest.raises(ParseError):
        parse_ttl(text)


def test_manual_order_parsing() -> None:
    o = parse_manual(["buy", "btc/usdt", "0.01", "limit", "60000", "tif=ioc"])
    assert (o.side, o.asset, o.qty, o.order_type, o.limit_price, o.tif) == (
        Side.BUY, "BTC/USDT", Decimal("0.01"), OrderType.LIMIT, Decimal("60000"), TimeInForce.IOC
    )
    m = parse_manual(["SELL", "BTC/USDT", "0.5", "market"])
    assert m.order_type is OrderType.MARKET and m.limit_price is None and m.tif is TimeInForce.IOC


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["buy", "BTC/USDT", "0.01"], "usage"),
        (["hold", "BTC/USDT", "0.01", "limit", "1"], "side"),
        (["buy", "BTCUSDT", "0.01", "limit", "1"], "BASE/QUOTE"),
        (["buy", "BTC/USDT", "-1", "limit", "1"], "positive"),
        (["buy", "BTC/USDT", "1e999999", "limit", "1"], "out of range"),
        (["buy", "BTC/USDT", "nan", "limit", "1"], "number"),
        (["buy", "BTC/USDT", "0.01", "stop", "1"], "order type"),
        (["buy", "BTC/USDT", "0.01", "limit"], "needs a price"),
        (["buy", "BTC/USDT", "0.01", "limit", "1", "gtd=1"], "unexpected"),
    ],
)
def test_manual_order_refusals_say_what_is_wrong(args: list[str], message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_manual(args)


def test_mandate_parsing_requires_every_bound() -> None:
    spec = parse_mandate("quote", ["spread_bps=2", "max_notional=500", "max_orders=10", "max_loss=20", "expiry=30m", "assets=btc/usdt"])
    assert spec.params == {"spread_bps": "2"} and spec.assets == ("BTC/USDT",)
    assert (spec.max_notional, spec.max_orders, spec.max_loss, spec.expiry_s) == (Decimal(500), 10, Decimal(20), 1800)
    with pytest.raises(ParseError, match="missing max_loss, expiry"):
        parse_mandate("quote", ["max_notional=500", "max_orders=10"])
    with pytest.raises(ParseError, match="given twice"):
        parse_mandate("quote", ["max_orders=1", "max_orders=2"])
    with pytest.raises(ParseError, match="whole number"):
        parse_mandate("quote", ["max_notional=5", "max_orders=1.5", "max_loss=1", "expiry=1m"])


def test_hash_prefix_rules() -> None:
    assert parse_hash_prefix("ABCDEF0123", command="confirm") == "abcdef0123"
    for bad, msg in (("abc", "at least the first 10"), ("xyz0123456", "hex"), (None, "usage"), ("a" * 65, "at most 64")):
        with pytest.raises(ParseError, match=msg):
            parse_hash_prefix(bad, command="confirm")


# --------------------------------------------------------------------------- formatting
def test_numbers_carry_units_and_html_is_escaped() -> None:
    assert money(Decimal("60000"), "USDT") == "60,000.00 USDT"
    assert money(Decimal("-1.005"), "USDT") == "-1.00 USDT"  # half-even, display only
    assert money(Decimal("12.5"), "USDT", signed=True) == "+12.50 USDT"
    assert price(Decimal("60000.5"), "USDT", Decimal("0.01")) == "60,000.50 USDT"
    assert qty(Decimal("0.0100"), "BTC") == "0.01 BTC"
    assert qty(Decimal("1E+2"), "BTC") == "100 BTC"
    assert duration(3725) == "1h 02m" and duration(59) == "59s" and duration(90) == "1m 30s"
    assert esc("<b>&") == "&lt;b&gt;&amp;"


# --------------------------------------------------------------------------- estimates (hand-worked)
def _intent(side: Side, q: str, order_type: OrderType = OrderType.LIMIT, limit: str | None = None) -> Intent:
    return Intent("i-1", 0, "manual", ASSET, side, Decimal(q), order_type, Decimal(limit) if limit else None)


def _tick(bid: str, ask: str, size: str = "1") -> Tick:
    return Tick(ASSET, Decimal(bid), Decimal(size), Decimal(ask), Decimal(size), 0, 0, 1)


def test_estimate_passive_limit_is_maker_without_slippage() -> None:
    est = estimate(_intent(Side.BUY, "0.01", limit="59000"), instruments()[ASSET], _tick("60000", "60002"))
    # notional 0.01 * 59000 = 590; maker fee 0.1% = 0.59
    assert est.notional == Decimal("590.00") and est.fee == Decimal("0.59000") and not est.taker
    assert est.mid == Decimal("60001")


def test_estimate_market_buy_walks_one_tick_per_displayed_size() -> None:
    # 2.5 BTC against 1 BTC shown at 60002: 1 @ 60002, the remaining 1.5 at 60002 + 2 ticks (0.02) = 60002.02
    est = estimate(_intent(Side.BUY, "2.5", OrderType.MARKET), instruments()[ASSET], _tick("60000", "60002", "1"))
    assert est.notional == Decimal("60002") + Decimal("1.5") * Decimal("60002.02")
    assert est.exec_price == est.notional / Decimal("2.5")
    # slippage vs mid 60001: (avg - 60001) per unit, positive (a cost) for a buy
    assert est.slippage_cost == (est.exec_price - Decimal("60001")) * Decimal("2.5")
    assert est.slippage_bps is not None and est.slippage_bps > 0 and est.taker
    assert est.fee == est.notional * Decimal("0.001")


def test_estimate_crossing_limit_takes_shown_size_then_rests() -> None:
    # sell 3 with limit 59990 against bid 60000 x 1: 1 taken at 60000 (taker), 2 rest at 59990 (maker)
    est = estimate(_intent(Side.SELL, "3", limit="59990"), instruments()[ASSET], _tick("60000", "60002", "1"))
    assert est.notional == Decimal("60000") + 2 * Decimal("59990")
    assert est.fee == Decimal("60000") * Decimal("0.001") + 2 * Decimal("59990") * Decimal("0.001")


def test_estimate_without_market_data() -> None:
    est = estimate(_intent(Side.BUY, "1", OrderType.MARKET), instruments()[ASSET], None)
    assert est.notional is None and est.mid is None


def test_drift_in_bps() -> None:
    assert drift_bps(Decimal("60000"), Decimal("60300")) == Decimal("50")
    assert drift_bps(Decimal("60000"), Decimal("59700")) == Decimal("50")


# --------------------------------------------------------------------------- the intent book
def _entry(clock: ManualClock, ttl_s: int = 120, intent_id: str = "i-1") -> Staged:
    intent = Intent(intent_id, clock.now_ns(), "manual", ASSET, Side.BUY, Decimal("0.01"), OrderType.LIMIT, Decimal("60000"))
    now = clock.now_ns()
    return Staged(hash="", source="operator", staged_by="op", staged_by_user=1, staged_ns=now, expires_ns=now + ttl_s * NS,
                  arming_epoch=None, intent=intent)


def test_same_order_staged_twice_gets_two_hashes_and_lookup_is_exact() -> None:
    clock, book = ManualClock(1_000 * NS), IntentBook()
    a, b = book.add(_entry(clock, intent_id="i-1")), book.add(_entry(clock, intent_id="i-2"))
    assert a.hash != b.hash and len(a.hash) == 64
    found = book.lookup(a.hash[:10], clock.now_ns())
    assert found.found and found.entry is a
    assert book.lookup("0" * 10 if not a.hash.startswith("0" * 10) else "f" * 10, clock.now_ns()).entry is None


def test_ambiguous_prefix_expiry_and_void() -> None:
    clock = ManualClock(1_000 * NS)
    hashes = iter(["abcdef0123" + "0" * 54, "abcdef0123" + "1" * 54, "ffff" + "2" * 60])
    book = IntentBook(hash_fn=lambda payload, nonce: next(hashes))
    a, b = book.add(_entry(clock, intent_id="i-1")), book.add(_entry(clock, 300, intent_id="i-2"))
    assert book.lookup("abcdef0123", clock.now_ns()).ambiguous
    assert book.lookup("abcdef01230", clock.now_ns()).entry is a
    clock.advance(121 * NS)  # a expired, b still pending
    found = book.lookup("abcdef0123", clock.now_ns())
    assert found.found and found.entry is b
    assert a.status is EntryStatus.EXPIRED
    c = book.add(_entry(clock, intent_id="i-3"))
    book.void_all("disarm", clock.now_ns())
    assert b.status is EntryStatus.VOIDED and c.status is EntryStatus.VOIDED
    found = book.lookup("ffff", clock.now_ns())
    assert not found.found and found.entry is c  # explains why: voided


# --------------------------------------------------------------------------- alerts
class Sink:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add_outbox(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


def test_alerts_are_deduplicated_and_info_is_throttled() -> None:
    clock, sink = ManualClock(0), Sink()
    n = OutboxNotifier(sink, [1, 2], clock, dedup_s=60, info_per_minute=2)
    n.alert("CRITICAL", "safe", "SAFE")
    n.alert("CRITICAL", "safe", "SAFE again")  # same key within 60 s: suppressed
    assert [r["chat_id"] for r in sink.rows] == [1, 2]  # one row per chat
    clock.advance(61 * NS)
    n.alert("CRITICAL", "safe", "SAFE later")
    assert "repeated 1 more time" in sink.rows[-1]["text"]
    sink.rows.clear()
    for i in range(4):
        n.alert("INFO", f"fill:{i}", f"fill {i}")
    assert len(sink.rows) == 4  # 2 alerts x 2 chats; fills 2 and 3 throttled
    n.alert("WARNING", "reject:x", "rejected")  # warnings are never throttled
    assert len(sink.rows) == 6
    clock.advance(60 * NS)
    n.alert("INFO", "fill:9", "fill 9")
    assert "+2 info alert(s) suppressed" in sink.rows[-1]["text"]
    assert n.alert("bogus", "k", "x") is None and sink.rows[-1]["severity"] == "WARNING"


# --------------------------------------------------------------------------- config diff
def test_config_diff_masks_secrets_and_lists_changed_keys() -> None:
    old = {"risk": {"max_trade_qty": "0.01"}, "telegram": {"token": "**********", "allowed_chat_ids": [1]}, "x": {"api_key": "abc"}}
    new = {"risk": {"max_trade_qty": "0.02"}, "telegram": {"token": "**********", "allowed_chat_ids": [1, 2]}, "x": {"api_key": "def"}}
    changes = {c.key: (c.old, c.new) for c in diff(old, new)}
    assert changes == {"risk.max_trade_qty": ("0.01", "0.02"), "telegram.allowed_chat_ids": ("[1]", "[1, 2]")}
    assert flatten({"keys": {"master_key_file": "/x", "api_key": "s3cret"}}) == {"keys.master_key_file": "/x", "keys.api_key": MASK}
