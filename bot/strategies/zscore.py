"""Signal scoring (reference card 03): z-scores of several signals, combined, re-scored, traded on a threshold.

    z = (x - rolling mean) / rolling std          score = clip(z, -3, +3)
    combined = sum(weight_i * score_i)             final = clip(z-score of combined over its own window, -3, +3)

Why: z-scores put signals of different scales (imbalance, momentum, spread...) on one scale, and re-scoring
the weighted sum keeps the risk caps scale-invariant whatever the weights.

Sampling: signals are sampled on the first tick at or after each ``sample_ms`` boundary of event time (not on
every tick, so a busy feed does not shorten the window). The rolling mean and the sample standard deviation
(n - 1) are over the last ``window`` samples, the current one included. A window with zero deviation carries
no information: its z is 0. **Warm-up**: a signal has no score until its window is full; the combined value
exists once every signal has a score, and the final score once ``window`` combined values exist, so nothing
is traded before ``2 * window - 1`` samples (plus ``momentum_lookback`` for momentum).

Signals (``signals = {name = weight}``; a negative weight trades against the signal):
- ``imbalance``: (bid size - ask size) / (bid size + ask size) at the best level;
- ``momentum``: mid / mid ``momentum_lookback`` samples ago - 1;
- ``price``: the mid itself (its z-score is the distance from its rolling mean: weight < 0 = mean reversion);
- ``spread``: (ask - bid) / mid.

Trading: final >= ``threshold`` targets a position of +``max_position``, final <= -``threshold`` one of
-``max_position``, |final| <= ``exit_threshold`` a flat position; in between the target does not change. Orders
of at most ``order_qty`` move the strategy's position toward the target as immediate-or-cancel limit orders at
the best opposite price (plus ``slippage_ticks``), one at a time, at most one per ``cooldown_ms``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

from bot.domain.intent import Intent, OrderType, Side, TimeInForce
from bot.domain.money import ZERO, to_decimal
from bot.engine.strategy import Strategy, StrategyContext

CLIP = Decimal(3)
SIGNALS = ("imbalance", "momentum", "price", "spread")


def clip(z: Decimal, bound: Decimal = CLIP) -> Decimal:
    return max(-bound, min(bound, z))


class RollingZ:
    """Clipped z-score of each new value against the last ``window`` values (the new one included)."""

    __slots__ = ("window", "values")

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError("a rolling z-score needs a window of at least 2")
        self.window = window
        self.values: deque[Decimal] = deque(maxlen=window)

    def push(self, x: Decimal) -> Decimal | None:
        """Add ``x``; its clipped z-score, or None during warm-up (fewer than ``window`` values)."""
        self.values.append(x)
        if len(self.values) < self.window:
            return None
        return clip(zscore(x, self.values))


def zscore(x: Decimal, values: Sequence[Decimal]) -> Decimal:
    """(x - mean) / sample std of ``values``; 0 when the std is 0 (no information), unclipped."""
    n = len(values)
    mean = sum(values, ZERO) / n
    var = sum(((v - mean) * (v - mean) for v in values), ZERO) / (n - 1)
    if var == 0:
        return ZERO
    return (x - mean) / var.sqrt()


class Score(NamedTuple):
    ts_ns: int
    scores: dict[str, Decimal | None]
    combined: Decimal | None
    final: Decimal | None
    target: Decimal | None


class _State:
    __slots__ = ("next_sample_ns", "rolling", "combined", "mids", "target", "last_order_ns", "last")

    def __init__(self, names: Sequence[str], window: int, lookback: int) -> None:
        self.next_sample_ns: int | None = None
        self.rolling = {n: RollingZ(window) for n in names}
        self.combined = RollingZ(window)
        self.mids: deque[Decimal] = deque(maxlen=lookback + 1)
        self.target: Decimal | None = None
        self.last_order_ns: int | None = None
        self.last: Score | None = None


class ZScoreStrategy(Strategy):
    name = "zscore"

    def __init__(self, strategy_id: str, params: Mapping[str, Any], assets: Sequence[str]) -> None:
        super().__init__(strategy_id, params, assets)
        p = dict(params)
        signals = p.pop("signals", {"imbalance": "1", "momentum": "1"})
        if not isinstance(signals, Mapping) or not signals:
            raise ValueError("zscore: signals must be a table of signal = weight, e.g. { imbalance = \"1\" }")
        self.weights: dict[str, Decimal] = {}
        for name, weight in signals.items():
            if name not in SIGNALS:
                raise ValueError(f"zscore: unknown signal {name!r} (known: {', '.join(SIGNALS)})")
            self.weights[name] = to_decimal(weight, field=f"zscore.signals.{name}")
        if all(w == 0 for w in self.weights.values()):
            raise ValueError("zscore: at least one signal needs a non-zero weight")
        self.window = _int(p.pop("window", 60), "window", 2, 100_000)
        self.sample_ns = _int(p.pop("sample_ms", 1000), "sample_ms", 1, 86_400_000) * 1_000_000
        self.lookback = _int(p.pop("momentum_lookback", 10), "momentum_lookback", 1, 100_000)
        self.threshold = _dec(p.pop("threshold", "2"), "threshold")
        self.exit_threshold = _dec(p.pop("exit_threshold", "0.5"), "exit_threshold")
        self.order_qty = _dec(p.pop("order_qty", "0.001"), "order_qty")
        self.max_position = _dec(p.pop("max_position", "0.003"), "max_position")
        self.slippage_ticks = _int(p.pop("slippage_ticks", 0), "slippage_ticks", 0, 10_000)
        self.cooldown_ns = _int(p.pop("cooldown_ms", 5000), "cooldown_ms", 0, 86_400_000) * 1_000_000
        if p:
            raise ValueError(f"zscore: unknown parameter(s) {sorted(p)}")
        if not ZERO < self.threshold <= CLIP:
            raise ValueError(f"zscore: threshold must be in (0, 3] (scores are clipped to 3), got {self.threshold}")
        if not ZERO <= self.exit_threshold < self.threshold:
            raise ValueError("zscore: exit_threshold must be at least 0 and below threshold")
        if self.order_qty <= 0 or self.max_position <= 0:
            raise ValueError("zscore: order_qty and max_position must be positive")
        self._states: dict[str, _State] = {}

    def last_score(self, asset: str) -> Score | None:
        st = self._states.get(asset)
        return st.last if st is not None else None

    # ------------------------------------------------------------------ signals
    def _signals(self, st: _State, bid: Decimal, bid_size: Decimal, ask: Decimal, ask_size: Decimal) -> dict[str, Decimal | None]:
        mid = (bid + ask) / 2
        st.mids.append(mid)
        out: dict[str, Decimal | None] = {}
        for name in self.weights:
            if name == "imbalance":
                depth = bid_size + ask_size
                x: Decimal | None = (bid_size - ask_size) / depth if depth > 0 else ZERO
            elif name == "momentum":
                x = mid / st.mids[0] - 1 if len(st.mids) > self.lookback else None
            elif name == "price":
                x = mid
            else:
                x = (ask - bid) / mid
            out[name] = None if x is None else st.rolling[name].push(x)
        return out

    def score(self, st: _State, ts_ns: int, bid: Decimal, bid_size: Decimal, ask: Decimal, ask_size: Decimal) -> Score:
        scores = self._signals(st, bid, bid_size, ask, ask_size)
        combined = final = None
        if all(s is not None for s in scores.values()):
            combined = sum((self.weights[n] * s for n, s in scores.items() if s is not None), ZERO)
            final = st.combined.push(combined)
        if final is not None:
            if final >= self.threshold:
                st.target = self.max_position
            elif final <= -self.threshold:
                st.target = -self.max_position
            elif abs(final) <= self.exit_threshold:
                st.target = ZERO
        st.last = Score(ts_ns, scores, combined, final, st.target)
        return st.last

    # ------------------------------------------------------------------ hooks
    def on_tick(self, ctx: StrategyContext) -> list[Intent]:
        tick = ctx.tick
        assert tick is not None
        st = self._states.get(tick.asset)
        if st is None:
            st = self._states[tick.asset] = _State(list(self.weights), self.window, self.lookback)
        ts = tick.ts_local_ns
        if st.next_sample_ns is not None and ts < st.next_sample_ns:
            return []
        st.next_sample_ns = (ts // self.sample_ns + 1) * self.sample_ns
        score = self.score(st, ts, tick.bid, tick.bid_size, tick.ask, tick.ask_size)
        if st.target is None:
            return []
        if st.last_order_ns is not None and ts - st.last_order_ns < self.cooldown_ns:
            return []
        if ctx.open_orders(tick.asset):
            return []  # one order at a time: wait for the last one to end
        inst = ctx.instrument(tick.asset)
        delta = st.target - ctx.position(tick.asset)
        qty = inst.round_qty(min(abs(delta), self.order_qty))
        if qty <= 0 or qty < inst.min_qty:
            return []
        side = Side.BUY if delta > 0 else Side.SELL
        slip = inst.tick_size * self.slippage_ticks
        price = tick.ask + slip if side is Side.BUY else tick.bid - slip
        if price <= 0:
            return []
        st.last_order_ns = ts
        return [
            ctx.place(
                tick.asset, side, qty, price=price, order_type=OrderType.LIMIT, tif=TimeInForce.IOC,
                risk_tags=("signal",),
                rationale=f"z={score.final} combined={score.combined} target={st.target} "
                + " ".join(f"{n}={s}" for n, s in score.scores.items()),
            )
        ]


def _int(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"zscore: {name} must be an integer, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"zscore: {name} must be an integer, got {value!r}") from None
    if not lo <= n <= hi:
        raise ValueError(f"zscore: {name} must be between {lo} and {hi}, got {n}")
    return n


def _dec(value: object, name: str) -> Decimal:
    return to_decimal(value, field=f"zscore.{name}")
