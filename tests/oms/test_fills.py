"""The running sum of fills (spec 4.7.1): dedup by id, sequence gaps, P&L and fees by hand, orphan fills."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.intent import Side
from bot.domain.venue import ExecutionReport
from tests.oms.support import ASSET, D, S, rig


async def test_running_sum_avg_price_realised_pnl_and_fees_hand_worked() -> None:
    r = rig()
    a = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    b = await r.oms.submit(r.intent(Side.BUY, "1", "110"))
    c = await r.oms.submit(r.intent(Side.SELL, "1.5", "120"))
    d = await r.oms.submit(r.intent(Side.SELL, "1", "100"))
    assert a and b and c and d
    # (chosen so that no intermediate average is a repeating decimal: the numbers are exact whatever the
    # context's rounding mode, which ccxt changes process-wide to ROUND_HALF_UP)
    r.venue.execute(b.client_order_id, D("0.4"), fee=D("0.044"))
    r.venue.execute(b.client_order_id, D("0.6"), fee=D("0.066"))  # two partials of one order
    r.venue.execute(a.client_order_id, D("1"), fee=D("0.1"))
    r.venue.execute(c.client_order_id, D("1.5"), fee=D("0.18"))
    r.venue.deliver(r.oms)
    pos = r.portfolio.position(ASSET)
    # buys 1@100 + 1@110 -> 2 @ 105; sell 1.5 @ 120 realises (120-105)*1.5 = 22.5
    assert pos.qty == D("0.5") and pos.avg_price == D("105") and pos.realised_pnl == D("22.5")
    assert pos.fees == D("0.39") and pos.realised_pnl - pos.fees == D("22.11")
    # sell 1 @ 100: closes 0.5 at a loss of (100-105)*0.5 = -2.5 and opens a 0.5 short at 100
    r.venue.execute(d.client_order_id, D("1"), fee=D("0.1"))
    r.venue.deliver(r.oms)
    assert pos.qty == D("-0.5") and pos.avg_price == D("100") and pos.realised_pnl == D("20.0")
    assert r.oms.portfolio.strategy_position("s1", ASSET).qty == D("-0.5")
    assert r.oms.fees_by_currency == {"USDT": D("0.49")}
    assert r.oms.expected_venue_qty(ASSET) == D("-0.5") == r.venue.positions()[ASSET]


async def test_fee_in_base_currency_is_valued_at_the_fill_price_and_shrinks_the_holding() -> None:
    r = rig()
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    r.venue.execute(o.client_order_id, D("1"), fee=D("0.001"), fee_ccy="BTC")
    r.venue.deliver(r.oms)
    assert r.portfolio.position(ASSET).fees == D("0.100")  # 0.001 BTC at 100
    assert r.portfolio.qty(ASSET) == D("1")  # the running sum of fills
    assert r.oms.expected_venue_qty(ASSET) == D("0.999")  # what the spot balance shows
    fill_row = r.audit.of("fill")[0]
    assert fill_row["fee"] == D("0.001") and fill_row["fee_currency"] == "BTC" and fill_row["fee_quote"] == D("0.100")


async def test_fee_in_a_third_currency_uses_the_rate_or_keeps_the_venue_value_with_a_note() -> None:
    r = rig(fee_rate=lambda ccy, quote: D("600") if (ccy, quote) == ("BNB", "USDT") else None)
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    p = await r.oms.submit(r.intent(Side.BUY, "1", "100", asset="ETH/USDT"))
    assert o and p
    r.venue.execute(o.client_order_id, D("1"), fee=D("0.0005"), fee_ccy="BNB")  # the venue says fee_quote 0.0005 (wrong)
    r.venue.execute(p.client_order_id, D("1"), fee=D("0.2"), fee_ccy="XYZ")
    r.venue.deliver(r.oms)
    assert r.portfolio.position(ASSET).fees == D("0.3000")
    assert r.portfolio.position("ETH/USDT").fees == D("0.2")  # no XYZ rate: the venue's own conversion kept
    xyz = [f for f in r.audit.of("fill") if f["fee_currency"] == "XYZ"][0]
    assert "no XYZ/USDT rate" in xyz["data"]["fee_note"]
    assert r.oms.fees_by_currency == {"BNB": D("0.0005"), "XYZ": D("0.2")}
    assert r.oms.expected_venue_qty(ASSET) == D("1")  # a BNB fee does not touch the BTC holding


async def test_fill_sequence_gap_requests_safe_and_a_late_fill_closes_it() -> None:
    r = rig()
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    r.venue.execute(o.client_order_id, D("0.1"))  # seq 1
    r.venue.deliver(r.oms)
    r.venue.execute(o.client_order_id, D("0.1"))  # seq 2: lost by the stream
    lost = r.venue.outbox.pop()
    r.venue.execute(o.client_order_id, D("0.1"))  # seq 3
    r.venue.deliver(r.oms)
    assert r.safe_codes == [ErrorCode.FILL_SEQ_GAP]
    assert "1 fill(s) (2..2) missing" in r.safe_calls[0][1]
    assert r.audit.of("state_transition", kind="incident")[0]["code"] == "FILL_SEQ_GAP"
    assert r.oms.status()["missing_fill_seqs"] == {ASSET: [(2, 2)]}
    r.oms.on_report(lost)  # type: ignore[arg-type]
    assert r.oms.status()["missing_fill_seqs"] == {}
    assert r.audit.of("state_transition", kind="fill_seq")[0]["to_state"] == "CONTIGUOUS"
    assert o.filled_qty == D("0.3") and r.portfolio.qty(ASSET) == D("0.3")
    assert r.safe_codes == [ErrorCode.FILL_SEQ_GAP]  # once


async def test_reused_fill_sequence_number_requests_safe() -> None:
    r = rig()
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    fill, report = r.venue.execute(o.client_order_id, D("0.1"))
    r.venue.deliver(r.oms)
    other = dataclasses.replace(fill, fill_id="other", qty=D("0.2"))
    r.oms.on_report(dataclasses.replace(report, fill=other))
    assert r.safe_codes == [ErrorCode.FILL_SEQ_GAP] and "reuses" in r.safe_calls[0][1]


async def test_fill_for_an_order_we_never_placed_counts_in_the_position_and_alerts() -> None:
    r = rig()
    fill = Fill("x1", "manual-7", "99", "model", ASSET, Side.SELL, D("0.3"), D("100"), D("0"), "USDT", D("0"), False, r.clock.now_ns())
    r.oms.on_report(ExecutionReport("model", "manual-7", "99", S.FILLED, fill.ts_ns, fill.ts_ns, fill, D("0.3")))
    assert r.portfolio.qty(ASSET) == D("-0.3")
    assert r.oms.orphan_fills == 1 and r.oms.gates.dirty.is_dirty(ASSET)
    assert r.audit.of("order_event", event="unknown_order") and r.audit.of("order_event", event="orphan_fill")
    assert r.alerts and r.alerts[-1][0] == "warning" and "did not place" in r.alerts[-1][2]
    assert r.audit.of("fill")[0]["data"]["orphan"]
    assert r.safe_calls == []  # reconciliation decides whether the account agrees


async def test_overfill_is_counted_in_the_position_and_requests_safe() -> None:
    r = rig()
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    r.venue.execute(o.client_order_id, D("1"))
    r.venue.deliver(r.oms)
    extra = Fill("t99", o.client_order_id, o.venue_order_id, "model", ASSET, Side.BUY, D("0.5"), D("100"), D("0"), "USDT", D("0"), True, r.clock.now_ns())
    r.oms.on_report(ExecutionReport("model", o.client_order_id, o.venue_order_id, S.FILLED, extra.ts_ns, extra.ts_ns, extra))
    assert o.filled_qty == D("1") and o.status is S.FILLED  # the order is not pushed into an impossible state
    assert r.portfolio.qty(ASSET) == D("1.5")  # the venue says it happened: the account position has it
    assert r.safe_codes == [ErrorCode.POSITION_MISMATCH]
    assert r.audit.of("state_transition", kind="incident")


async def test_fills_are_unique_by_venue_and_id_across_paths() -> None:
    r = rig()
    o = await r.oms.submit(r.intent(Side.BUY, "1", "100"))
    assert o
    fill, _ = r.venue.execute(o.client_order_id, D("0.5"))
    r.venue.deliver(r.oms)
    assert not r.oms.apply_reconciled_fill(fill)  # found again by reconciliation: not counted twice
    assert r.portfolio.qty(ASSET) == Decimal("0.5") and len(r.audit.of("fill")) == 1


def test_fill_sequence_bookkeeping() -> None:
    from bot.oms.fills import FillSequence, SeqOutcome

    seq = FillSequence()
    assert seq.observe(5)[0] is SeqOutcome.FIRST
    assert seq.observe(4)[0] is SeqOutcome.OK  # earlier than the first seen: reports raced, no hole
    assert seq.observe(6)[0] is SeqOutcome.OK
    assert seq.observe(10) == (SeqOutcome.GAP, (7, 9))
    assert seq.observe(1) == (SeqOutcome.GAP, (2, 3))
    assert seq.missing == [(2, 3), (7, 9)] and seq.missing_count() == 5
    assert seq.observe(8)[0] is SeqOutcome.GAP_FILLED and seq.missing == [(2, 3), (7, 7), (9, 9)]
    assert seq.observe(5)[0] is SeqOutcome.REUSED
    assert seq.observe(1_000_000_000) == (SeqOutcome.GAP, (11, 999_999_999))  # one range, not a billion entries
