"""The numbers of a report day, computed from plain records (no I/O). Formulas, all in the quote currency:

- **Books.** A position lives in a *book*: in LIVE the venue account (one book per asset across runs: a
  restart inherits the position); in DRY_RUN and REPLAY each run's simulated account (a run starts flat and
  its book freezes when the run stops). A book's position is the running sum of its fills (buy +, sell -).
- **PnL (mark to market).** For a book with position ``q0`` at the window start, marks ``m(t)`` and the
  window's fills ``(s, q, p, fee)``: ``gross(t) = q(t)*m(t) - q0*m(start) - sum(s*q*p)`` and
  ``net(t) = gross(t) - sum(fee)`` (fees are positive, rebates negative). A stopped book is marked at its
  stop time. ``m(t)`` is the last mid at or before ``t`` (recorded market data, else our last fill price).
- **Slippage** of a fill against its reference price ``r`` (the mid when its order was placed, from recorded
  data; else the order's limit price): ``bps = s*(p - r)/r*10^4`` (positive = worse than the reference),
  ``cost = s*(p - r)*q``. Outliers are the largest positive bps.
- **Markout** of a fill at horizon ``h``: ``s*(m(t+h) - p)/p*10^4`` bps (positive = the price moved our way
  after the fill). A fill counts only when the price data reaches ``t+h``.
- **Regimes.** The window is cut into buckets of ``bucket_min`` minutes per asset; each bucket's mid is
  sampled every minute. ``er = |p_last - p_first| / sum|p_i - p_(i-1)|`` (Kaufman's efficiency ratio) and
  ``vol`` = standard deviation of the one-minute log returns. A bucket is *high-vol* when its vol is above
  ``high_vol_mult`` times the median vol of the asset's buckets that day; otherwise *trend* when
  ``er >= trend_er`` and *mean-revert* when not (a bucket with no movement is mean-revert). Buckets with
  fewer than 3 samples are *unknown*. A regime's PnL is the sum of its buckets' net PnL change.
- **Fee inequality.** gross > 0 and net > 0: profitable before and after fees; gross > 0 >= net: profitable
  only before fees; gross <= 0 < net: profitable only because of rebates; otherwise a loss before fees.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from bot.ops.marketdata import PricePath

ZERO = Decimal(0)
BPS = Decimal(10_000)
NS = 1_000_000_000
MARKOUT_HORIZONS_S = (1, 5, 30)
REGIMES = ("trend", "mean-revert", "high-vol", "unknown")


@dataclass(frozen=True, slots=True)
class FillRec:
    fill_id: str
    ts_ns: int
    book: str
    asset: str
    side: int  # +1 buy, -1 sell
    qty: Decimal
    price: Decimal
    fee: Decimal  # quote currency; negative = rebate
    is_maker: bool = False
    reference: Decimal | None = None  # slippage reference price
    reference_kind: str = ""  # "arrival mid" | "limit price" | ""


@dataclass(frozen=True, slots=True)
class BookStart:
    book: str
    asset: str
    qty: Decimal  # position at the window start
    stop_ns: int | None = None  # the run stopped here (DRY_RUN/REPLAY books); None = still running / LIVE


@dataclass(frozen=True, slots=True)
class Slippage:
    fill_id: str
    ts_ns: int
    asset: str
    side: int
    qty: Decimal
    price: Decimal
    reference: Decimal
    reference_kind: str
    bps: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class Markout:
    asset: str
    side: int
    horizon_s: int
    n: int
    mean_bps: Decimal | None


@dataclass(frozen=True, slots=True)
class Bucket:
    asset: str
    start_ns: int
    regime: str
    er: float | None
    vol: float | None
    pnl_net: Decimal
    fills: int


@dataclass
class DayMetrics:
    start_ns: int
    end_ns: int
    fills: int = 0
    buys: int = 0
    sells: int = 0
    maker_fills: int = 0
    notional: Decimal = ZERO
    fees_paid: Decimal = ZERO
    rebates: Decimal = ZERO
    gross: Decimal = ZERO
    net: Decimal = ZERO
    by_asset: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # asset -> (gross, net)
    position_start: dict[str, Decimal] = field(default_factory=dict)
    position_end: dict[str, Decimal] = field(default_factory=dict)
    marks_start: dict[str, Decimal | None] = field(default_factory=dict)
    marks_end: dict[str, Decimal | None] = field(default_factory=dict)
    outliers: list[Slippage] = field(default_factory=list)
    slippage_measured: int = 0
    markouts: list[Markout] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    regimes: dict[str, tuple[int, Decimal, int]] = field(default_factory=dict)  # regime -> (buckets, pnl, fills)
    curve: list[tuple[int, Decimal, dict[str, Decimal]]] = field(default_factory=list)  # (ts, net equity, positions)

    @property
    def fees(self) -> Decimal:
        return self.fees_paid + self.rebates

    @property
    def fee_verdict(self) -> str:
        if self.fills == 0:
            return "no trades"
        if self.gross > 0 and self.net > 0:
            return "profitable before and after fees"
        if self.gross > 0:
            return "profitable only before fees (fees turn the gain into a loss)"
        if self.net > 0:
            return "profitable only because of rebates"
        return "a loss before fees"

    @property
    def gross_bps(self) -> Decimal | None:
        return self.gross / self.notional * BPS if self.notional else None

    @property
    def fee_bps(self) -> Decimal | None:
        return self.fees / self.notional * BPS if self.notional else None


class _Book:
    __slots__ = ("asset", "q0", "q", "cash", "fees", "stop_ns")

    def __init__(self, asset: str, q0: Decimal, stop_ns: int | None) -> None:
        self.asset = asset
        self.q0 = q0
        self.q = q0
        self.cash = ZERO
        self.fees = ZERO
        self.stop_ns = stop_ns


def _mark(paths: Mapping[str, PricePath], asset: str, ts: int) -> Decimal | None:
    path = paths.get(asset)
    return path.at(ts) if path is not None else None


def compute(
    *,
    start_ns: int,
    end_ns: int,
    fills: Sequence[FillRec],
    books: Sequence[BookStart],
    paths: Mapping[str, PricePath],
    outliers: int = 5,
    bucket_min: int = 60,
    trend_er: float = 0.5,
    high_vol_mult: float = 2.0,
    sample_s: int = 60,
) -> DayMetrics:
    m = DayMetrics(start_ns, end_ns)
    fills = sorted(fills, key=lambda f: (f.ts_ns, f.fill_id))
    state: dict[str, _Book] = {b.book: _Book(b.asset, b.qty, b.stop_ns) for b in books}
    assets = sorted({b.asset for b in books} | {f.asset for f in fills})
    for a in assets:
        m.marks_start[a] = _mark(paths, a, start_ns)
        m.position_start[a] = sum((b.qty for b in books if b.asset == a), ZERO)

    def equity_by_asset(ts: int) -> dict[str, tuple[Decimal, Decimal]]:
        out: dict[str, tuple[Decimal, Decimal]] = {a: (ZERO, ZERO) for a in assets}
        for bk in state.values():
            at = ts if bk.stop_ns is None else min(ts, bk.stop_ns)
            mark = _mark(paths, bk.asset, at)
            m0 = m.marks_start.get(bk.asset)
            value = (bk.q * mark if mark is not None else ZERO) - (bk.q0 * m0 if m0 is not None else ZERO)
            gross = value + bk.cash
            g, n = out[bk.asset]
            out[bk.asset] = (g + gross, n + gross - bk.fees)
        return out

    def positions() -> dict[str, Decimal]:
        pos: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for bk in state.values():
            pos[bk.asset] += bk.q
        return dict(pos)

    # the equity curve: a sample every minute plus one right after every fill
    grid = list(range(start_ns, end_ns, sample_s * NS)) + [end_ns]
    samples = {*grid, *(f.ts_ns for f in fills)}
    bucket_ns = bucket_min * 60 * NS
    bucket_edges = list(range(start_ns, end_ns, bucket_ns)) + [end_ns]
    edge_set = set(bucket_edges)
    edge_equity: dict[int, dict[str, Decimal]] = {}
    fi = 0
    for ts in sorted(samples | edge_set):
        while fi < len(fills) and fills[fi].ts_ns <= ts:
            f = fills[fi]
            bk = state.get(f.book)
            if bk is None:
                bk = state[f.book] = _Book(f.asset, ZERO, None)
            bk.q += f.side * f.qty
            bk.cash -= f.side * f.qty * f.price
            bk.fees += f.fee
            fi += 1
        eq = equity_by_asset(ts)
        if ts in edge_set:
            edge_equity[ts] = {a: v[1] for a, v in eq.items()}
        if ts in samples:
            m.curve.append((ts, sum((v[1] for v in eq.values()), ZERO), positions()))
    final = equity_by_asset(end_ns)
    m.by_asset = final
    m.gross = sum((v[0] for v in final.values()), ZERO)
    m.net = sum((v[1] for v in final.values()), ZERO)
    m.position_end = positions()
    for a in assets:
        m.marks_end[a] = _mark(paths, a, end_ns)

    # totals and fees
    for f in fills:
        m.fills += 1
        m.buys += f.side > 0
        m.sells += f.side < 0
        m.maker_fills += f.is_maker
        m.notional += f.qty * f.price
        if f.fee >= 0:
            m.fees_paid += f.fee
        else:
            m.rebates += f.fee

    # slippage outliers
    measured: list[Slippage] = []
    for f in fills:
        if f.reference is None or f.reference <= 0:
            continue
        diff = f.side * (f.price - f.reference)
        measured.append(Slippage(f.fill_id, f.ts_ns, f.asset, f.side, f.qty, f.price, f.reference, f.reference_kind, diff / f.reference * BPS, diff * f.qty))
    m.slippage_measured = len(measured)
    adverse = sorted((s for s in measured if s.bps > 0), key=lambda s: (-s.bps, -s.cost, s.fill_id))
    m.outliers = adverse[:outliers]

    # markouts by asset, side and horizon
    acc: dict[tuple[str, int, int], list[Decimal]] = defaultdict(list)
    for f in fills:
        path = paths.get(f.asset)
        for h in MARKOUT_HORIZONS_S:
            t = f.ts_ns + h * NS
            if path is None or not path.covers(t):
                continue
            later = path.at(t)
            if later is None:
                continue
            acc[(f.asset, f.side, h)].append(f.side * (later - f.price) / f.price * BPS)
    for a in assets:
        for side in (1, -1):
            for h in MARKOUT_HORIZONS_S:
                vals = acc.get((a, side, h), [])
                mean = sum(vals, ZERO) / len(vals) if vals else None
                if any(f.asset == a and f.side == side for f in fills):
                    m.markouts.append(Markout(a, side, h, len(vals), mean))

    # regimes
    for a in assets:
        path = paths.get(a)
        raw: list[tuple[int, float | None, float | None, int]] = []
        for b0, b1 in zip(bucket_edges, bucket_edges[1:], strict=False):
            pts_f: list[float] = []
            if path is not None and path.end_ns is not None:
                for t in range(b0, b1 + 1, 60 * NS):
                    px = path.at(t) if t <= path.end_ns else None
                    if px is not None:
                        pts_f.append(float(px))
            n_fills = sum(1 for f in fills if f.asset == a and b0 <= f.ts_ns < b1)
            if len(pts_f) < 3:
                raw.append((b0, None, None, n_fills))
                continue
            path_len = sum(abs(y - x) for x, y in zip(pts_f, pts_f[1:], strict=False))
            er = abs(pts_f[-1] - pts_f[0]) / path_len if path_len > 0 else 0.0
            rets = [math.log(y / x) for x, y in zip(pts_f, pts_f[1:], strict=False)]
            vol = statistics.pstdev(rets) if len(rets) > 1 else 0.0
            raw.append((b0, er, vol, n_fills))
        vols = [v for _, _, v, _ in raw if v is not None]
        median = statistics.median(vols) if vols else 0.0
        for i, (b0, er, vol, n_fills) in enumerate(raw):
            b1 = bucket_edges[i + 1]
            if er is None or vol is None:
                regime = "unknown"
            elif vol > high_vol_mult * median and vol > 0:
                regime = "high-vol"
            elif er >= trend_er:
                regime = "trend"
            else:
                regime = "mean-revert"
            pnl = edge_equity[b1].get(a, ZERO) - edge_equity[b0].get(a, ZERO)
            m.buckets.append(Bucket(a, b0, regime, er, vol, pnl, n_fills))
    for regime in REGIMES:
        sel = [b for b in m.buckets if b.regime == regime]
        if sel:
            m.regimes[regime] = (len(sel), sum((b.pnl_net for b in sel), ZERO), sum(b.fills for b in sel))
    return m
