"""The adapter's fill ledger stays bounded in a long run: trade ids, client ids and per-order sums alike."""

from __future__ import annotations

from decimal import Decimal as D

from bot.venues.fills import FillLedger


def test_every_table_of_the_ledger_is_bounded_by_its_capacity() -> None:
    ledger = FillLedger(capacity=100)
    for i in range(1000):
        assert ledger.first_time("BTC/USDT", str(i))
        ledger.remember_order("BTC/USDT", str(i), f"c{i}")
        ledger.add_qty("BTC/USDT", str(i), D("0.1"))
    assert len(ledger._seen) == len(ledger._order) == 100
    assert len(ledger._client_ids) == 100 and len(ledger.cum_qty) == 100
    assert ledger.delivered_qty("BTC/USDT", "999") == D("0.1") and ledger.delivered_qty("BTC/USDT", "0") == D("0")
    assert not ledger.first_time("BTC/USDT", "999") and ledger.client_order_id("BTC/USDT", "0") is None


def test_an_order_still_filling_keeps_its_sum() -> None:
    ledger = FillLedger(capacity=3)
    ledger.add_qty("BTC/USDT", "old", D("0.1"))
    for i in range(2):
        ledger.add_qty("BTC/USDT", f"n{i}", D("1"))
    ledger.add_qty("BTC/USDT", "old", D("0.2"))  # filled again: the most recent now
    ledger.add_qty("BTC/USDT", "n2", D("1"))
    assert ledger.delivered_qty("BTC/USDT", "old") == D("0.3") and ledger.delivered_qty("BTC/USDT", "n0") == D("0")
