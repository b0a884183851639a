"""Day metrics on hand-worked paths: the regime classifier and its PnL attribution, fee verdicts, books."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.ops.daymetrics import BookStart, DayMetrics, FillRec, compute
from bot.ops.marketdata import PricePath

D = Decimal
MIN = 60 * 1_000_000_000
PRICES = [100, 101, 102, 103, 104, 105, 104, 105, 104, 105, 104, 110, 98, 112, 96, 104]  # one per minute


def path() -> PricePath:
    p = PricePath("X/USD", "recorded")
    for m, px in enumerate(PRICES):
        p.add(m * MIN, D(px))
    return p


def test_regimes_by_efficiency_ratio_and_relative_volatility_with_pnl_per_bucket() -> None:
    fills = [FillRec("f1", 0, "run:X/USD", "X/USD", 1, D(1), D(100), D(0))]
    m = compute(start_ns=0, end_ns=15 * MIN, fills=fills, books=[], paths={"X/USD": path()}, bucket_min=5, trend_er=0.5, high_vol_mult=2.0)
    # bucket 1: 100..105 steadily (ER 1); bucket 2: 105/104 back and forth (ER 1/5); bucket 3: wild swings (ER 0)
    assert [b.regime for b in m.buckets] == ["trend", "mean-revert", "high-vol"]
    assert [round(b.er or 0, 6) for b in m.buckets] == [1.0, 0.2, 0.0]
    # long 1 from 100: equity 5 at minute 5, 4 at minute 10, 4 at minute 15
    assert [b.pnl_net for b in m.buckets] == [D(5), D(-1), D(0)]
    assert m.regimes == {"trend": (1, D(5), 1), "mean-revert": (1, D(-1), 0), "high-vol": (1, D(0), 0)}
    assert m.gross == m.net == D(4)


def test_too_few_samples_is_unknown() -> None:
    p = PricePath("X/USD", "recorded")
    p.add(0, D(100))
    m = compute(start_ns=0, end_ns=15 * MIN, fills=[], books=[BookStart("b", "X/USD", D(1))], paths={"X/USD": p}, bucket_min=5)
    assert {b.regime for b in m.buckets} == {"unknown"}


@pytest.mark.parametrize(
    ("sell_at", "fee", "verdict"),
    [
        (D(110), D(1), "profitable before and after fees"),
        (D(101), D(2), "profitable only before fees (fees turn the gain into a loss)"),
        (D(100), D(-1), "profitable only because of rebates"),
        (D(95), D(1), "a loss before fees"),
    ],
)
def test_fee_inequality(sell_at: Decimal, fee: Decimal, verdict: str) -> None:
    fills = [
        FillRec("b", 1 * MIN, "r:X/USD", "X/USD", 1, D(1), D(100), D(0)),
        FillRec("s", 2 * MIN, "r:X/USD", "X/USD", -1, D(1), sell_at, fee),
    ]
    m = compute(start_ns=0, end_ns=5 * MIN, fills=fills, books=[], paths={})
    assert m.fee_verdict == verdict
    assert m.gross == sell_at - 100 and m.net == sell_at - 100 - fee


def test_no_trades() -> None:
    assert DayMetrics(0, 1).fee_verdict == "no trades"


def test_a_stopped_book_is_marked_at_its_stop_time() -> None:
    p = PricePath("X/USD", "recorded")
    for m, px in enumerate([100, 100, 120, 140]):
        p.add(m * MIN, D(px))
    # a simulated run long 2 from before the window, stopped at minute 2 (price 120): later moves are not ours
    m = compute(start_ns=0, end_ns=4 * MIN, fills=[], books=[BookStart("r1:X/USD", "X/USD", D(2), stop_ns=2 * MIN)], paths={"X/USD": p})
    assert m.gross == D(40)  # 2 * (120 - 100), not 2 * (140 - 100)


def test_a_run_without_a_stop_row_ended_when_the_next_one_started() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from bot.ops.summary import run_ends

    def row(run_id: str, kind: str, hour: int, mode: str = "DRY_RUN") -> SimpleNamespace:
        return SimpleNamespace(run_id=run_id, run_kind=kind, ts=datetime(2026, 6, 1, hour, tzinfo=UTC), mode=mode)

    ends = run_ends(
        [row("a", "start", 1), row("a", "stop", 2), row("b", "start", 3), row("r", "start", 4, "REPLAY"), row("c", "start", 5), row("d", "start", 7)]
    )
    hour = 3_600_000_000_000
    base = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
    assert ends == {"a": base + 2 * hour, "b": base + 5 * hour, "c": base + 7 * hour}  # b crashed; d still runs
