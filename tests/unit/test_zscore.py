"""The z-score signal (reference card 03) on hand-worked series, including sigma = 0 and warm-up."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from bot.domain.intent import OrderType, Side, TimeInForce
from bot.strategies.zscore import RollingZ, ZScoreStrategy, clip, zscore
from tests.unit.strategy_helpers import Harness

SEC = 1_000_000_000
T0 = 1_767_225_600 * SEC
R2 = D(1) / D(2).sqrt()  # 1/sqrt(2): the only non-zero |z| a window of 2 can give


def close(a: D | None, b: D) -> bool:
    return a is not None and abs(a - b) < D("1e-20")


def test_zscore_hand_worked_and_warm_up() -> None:
    r = RollingZ(4)
    assert [r.push(D(x)) for x in ("1", "1", "1")] == [None, None, None]  # warm-up: the window is not full
    # window 1, 1, 1, 5: mean 2, squared deviations 1+1+1+9 = 12, sample variance 12/3 = 4, std 2 -> z = 3/2
    assert r.push(D("5")) == D("1.5")
    # window 1, 1, 5, 1: mean 2, same spread -> z of 1 = -1/2
    assert r.push(D("1")) == D("-0.5")


def test_zero_sigma_gives_zero() -> None:
    r = RollingZ(3)
    assert [r.push(D("5")) for _ in range(5)] == [None, None, D(0), D(0), D(0)]
    assert zscore(D("7"), [D("7"), D("7")]) == 0


def test_scores_are_clipped_to_three() -> None:
    r = RollingZ(12)
    for _ in range(11):
        r.push(D(0))
    # eleven 0s and a 100: z = (n - 1) / sqrt(n) = 11 / sqrt(12) = 3.175... -> clipped to 3
    assert zscore(D(100), [D(0)] * 11 + [D(100)]) > 3
    assert r.push(D(100)) == D(3)
    assert clip(D("-7")) == D(-3) and clip(D("2.5")) == D("2.5")


def make(**params: object) -> ZScoreStrategy:
    base: dict[str, object] = {
        "signals": {"imbalance": "1"}, "window": 2, "threshold": "0.5", "exit_threshold": "0.1",
        "order_qty": "0.001", "max_position": "0.003", "cooldown_ms": 0, "sample_ms": 1000,
    }
    base.update(params)
    return ZScoreStrategy("z", base, ["BTC/USDT"])


def tick(h: Harness, bid_size: str, ask_size: str, ts: int) -> list:  # type: ignore[type-arg]
    h.seq += 1
    from bot.domain.market import Tick

    t = Tick("BTC/USDT", D("59999.99"), D(bid_size), D("60000.01"), D(ask_size), ts, ts, h.seq, "sim")
    h.market.update(t, ts)
    h.ctx.event_ns = ts
    h.ctx.tick = t
    return h.strategy.on_tick(h.ctx)


def test_combined_and_re_scored_signal_trades_on_the_threshold() -> None:
    z = make()
    h = Harness(z)
    assert tick(h, "1", "1", T0) == []  # imbalance 0: first value, warm-up
    assert tick(h, "3", "1", T0 + SEC // 2) == []  # inside the same sample interval: ignored
    s = z.last_score("BTC/USDT")
    assert s is not None and s.scores == {"imbalance": None}
    assert tick(h, "3", "1", T0 + SEC) == []  # imbalance 0.5: z = +1/sqrt(2); first combined value: final warm-up
    s = z.last_score("BTC/USDT")
    assert s is not None and close(s.scores["imbalance"], R2) and close(s.combined, R2) and s.final is None
    out = tick(h, "1", "3", T0 + 2 * SEC)  # imbalance -0.5: z = -1/sqrt(2); final = z of combined = -1/sqrt(2)
    s = z.last_score("BTC/USDT")
    assert s is not None and close(s.final, -R2) and s.target == D("-0.003")
    assert [(i.side, i.qty, i.limit_price, i.order_type, i.tif) for i in out] == [
        (Side.SELL, D("0.001"), D("59999.99"), OrderType.LIMIT, TimeInForce.IOC)  # IOC at the best bid
    ]
    h.set_inventory("-0.001")
    out = tick(h, "1", "3", T0 + 3 * SEC)  # imbalance -0.5 again: sigma 0 -> z 0; combined 0 vs -0.707 -> final +0.707
    s = z.last_score("BTC/USDT")
    assert s is not None and s.scores["imbalance"] == 0 and close(s.final, R2) and s.target == D("0.003")
    assert [(i.side, i.qty, i.limit_price) for i in out] == [(Side.BUY, D("0.001"), D("60000.01"))]


def test_weights_combine_several_signals() -> None:
    z = make(signals={"imbalance": "2", "spread": "-1"})
    h = Harness(z)
    tick(h, "1", "1", T0)
    tick(h, "3", "1", T0 + SEC)  # imbalance z = +0.707; spread constant -> z = 0 (sigma 0)
    s = z.last_score("BTC/USDT")
    assert s is not None and s.scores["spread"] == 0 and close(s.combined, 2 * R2)


def test_flat_signal_never_trades() -> None:
    h = Harness(make())
    assert all(tick(h, "2", "1", T0 + i * SEC) == [] for i in range(20))
    s = h.strategy.last_score("BTC/USDT")  # type: ignore[attr-defined]
    assert s.final == 0 and s.target == 0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"signals": {"volume": "1"}}, "unknown signal"),
        ({"signals": {"imbalance": "0"}}, "non-zero weight"),
        ({"threshold": "4"}, "threshold must be in"),
        ({"exit_threshold": "0.6"}, "exit_threshold"),
        ({"window": 1}, "window must be between"),
        ({"windw": 3}, "unknown parameter"),
    ],
)
def test_bad_parameters(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**params)
