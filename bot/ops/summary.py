"""The daily summary (spec section 13) from the audit store: a Telegram HTML message and a PNG chart.

``build_daily_summary(db, day, tz, ...)`` is the one entry point: the scheduled job, ``bot report daily``
and the control plane's ``/report`` all call it. The report day is the span of ``bot.ops.triggers.DailyAt``
(it ends at the daily summary time); with ``now`` inside the day the report covers the day so far.
The formulas are in ``bot.ops.daymetrics``.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.ops.daymetrics import BookStart, DayMetrics, FillRec, compute
from bot.ops.marketdata import PricePath, PriceSource, fill_price_path
from bot.ops.outbox import kv_get, kv_put
from bot.ops.triggers import DailyAt
from bot.store.models import FillRow, IntentRow, OrderRow, RiskVerdictRow, Run, StateTransitionRow

NS = 1_000_000_000
CHECKPOINT_NS = "ops-ledger"  # state_kv namespace: positions per book at report-day ends
HALT_STATES = ("SAFE", "HALTED")
_CHUNK = 500
_STREAM = 2000


@dataclass(frozen=True)
class Summary:
    """``text_html`` for Telegram (HTML parse mode, under 4096 characters) and ``png_bytes`` (the chart)."""

    day: date
    start: datetime
    end: datetime
    text_html: str
    png_bytes: bytes
    metrics: DayMetrics
    caption_html: str = ""

    @property
    def text_plain(self) -> str:
        return html.unescape(re.sub(r"<[^>]+>", "", self.text_html))


@dataclass
class _Audit:
    intents: int
    orders: int
    modes: list[str]
    blocks: Counter[str]
    block_reasons: Counter[tuple[str, str]]
    halts: list[tuple[datetime, str, str, str]]


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


def _side(value: str) -> int:
    return 1 if value.upper() == "BUY" else -1


def _book(run_id: str, mode: str, asset: str) -> str:
    """LIVE: the venue account (carries across runs); otherwise each run's own simulated account."""
    return f"LIVE:{asset}" if mode == "LIVE" else f"{run_id}:{asset}"


@dataclass
class Ledger:
    """Positions per book from every fill before an instant; checkpointed at report-day ends (state_kv) so a
    summary reads only the new fills, not the whole history. ``max_fill_id`` marks which rows it includes: a
    fill row written later with an older timestamp (e.g. found by reconciliation) is still picked up."""

    qty: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    last_price: dict[str, tuple[int, Decimal]] = field(default_factory=dict)
    max_fill_id: int = 0

    def add(self, fill_id: int, book: str, asset: str, side: str, qty: Decimal) -> None:
        key = (book, asset)
        self.qty[key] = self.qty.get(key, Decimal(0)) + _side(side) * qty
        self.max_fill_id = max(self.max_fill_id, fill_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "max_fill_id": self.max_fill_id,
            "books": [[b, a, format(q, "f")] for (b, a), q in sorted(self.qty.items()) if q != 0],
            "last_price": {a: [t, format(p, "f")] for a, (t, p) in sorted(self.last_price.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Ledger:
        return cls(
            qty={(b, a): Decimal(q) for b, a, q in data.get("books", [])},
            last_price={a: (int(t), Decimal(p)) for a, (t, p) in data.get("last_price", {}).items()},
            max_fill_id=int(data.get("max_fill_id", 0)),
        )


async def _ledger_at(conn: Any, start: datetime) -> Ledger:
    checkpoint = await kv_get(conn, CHECKPOINT_NS, start.isoformat())
    ledger = Ledger.from_json(checkpoint) if checkpoint else Ledger()
    query = select(FillRow.id, FillRow.run_id, FillRow.mode, FillRow.asset, FillRow.side, FillRow.qty).where(FillRow.ts < start)
    if checkpoint:
        query = query.where(FillRow.id > ledger.max_fill_id)
    late = False
    # streamed in partitions: a long history (no checkpoint yet) must not hold the event loop in one piece
    result = await conn.stream(query.execution_options(yield_per=_STREAM))
    async for part in result.partitions():
        for r in part:
            ledger.add(r.id, _book(r.run_id, r.mode, r.asset), r.asset, r.side, r.qty)
            late = True
        await asyncio.sleep(0)  # let the engine loop run between partitions
    if late or not checkpoint:
        for asset in {a for _, a in ledger.qty}:
            row = (
                await conn.execute(
                    select(FillRow.ts, FillRow.price).where(FillRow.asset == asset, FillRow.ts < start).order_by(FillRow.ts.desc(), FillRow.id.desc()).limit(1)
                )
            ).first()
            if row is not None:
                ledger.last_price[asset] = (_ns(row.ts), row.price)
    return ledger


async def _load(
    db: AsyncEngine, start: datetime, end: datetime
) -> tuple[list[Any], Ledger, list[Any], dict[str, Any], _Audit]:
    async with db.connect() as conn:
        window_fills: list[Any] = []
        result = await conn.stream(
            select(
                FillRow.id, FillRow.fill_id, FillRow.ts, FillRow.run_id, FillRow.mode, FillRow.asset, FillRow.side, FillRow.qty,
                FillRow.price, FillRow.fee_quote, FillRow.is_maker, FillRow.client_order_id,
            ).where(FillRow.ts >= start, FillRow.ts < end).order_by(FillRow.ts, FillRow.id).execution_options(yield_per=_STREAM)
        )
        async for part in result.partitions():
            window_fills.extend(part)
            await asyncio.sleep(0)  # a busy day must not hold the event loop in one piece either
        ledger = await _ledger_at(conn, start)
        runs = (await conn.execute(select(Run.run_id, Run.run_kind, Run.ts, Run.mode).where(Run.ts < end))).all()
        coids = sorted({f.client_order_id for f in window_fills})
        orders: dict[str, Any] = {}
        for i in range(0, len(coids), _CHUNK):
            chunk = coids[i : i + _CHUNK]
            for row in (
                await conn.execute(
                    select(OrderRow.client_order_id, OrderRow.ts, OrderRow.order_type, OrderRow.limit_price).where(OrderRow.client_order_id.in_(chunk))
                )
            ).all():
                orders[row.client_order_id] = row
        n_intents = (await conn.execute(select(func.count()).select_from(IntentRow).where(IntentRow.ts >= start, IntentRow.ts < end))).scalar_one()
        n_orders = (await conn.execute(select(func.count()).select_from(OrderRow).where(OrderRow.ts >= start, OrderRow.ts < end))).scalar_one()
        modes: set[str] = set()
        for model in (Run, IntentRow, OrderRow, FillRow):
            modes.update(m for (m,) in (await conn.execute(select(distinct(model.mode)).where(model.ts >= start, model.ts < end))).all())
        blocked = (
            await conn.execute(
                select(RiskVerdictRow.code, RiskVerdictRow.reason).where(
                    RiskVerdictRow.ts >= start, RiskVerdictRow.ts < end, RiskVerdictRow.approved.is_(False)
                )
            )
        ).all()
        halts = (
            await conn.execute(
                select(StateTransitionRow.ts, StateTransitionRow.to_state, StateTransitionRow.code, StateTransitionRow.reason)
                .where(StateTransitionRow.ts >= start, StateTransitionRow.ts < end, StateTransitionRow.to_state.in_(HALT_STATES))
                .order_by(StateTransitionRow.ts)
            )
        ).all()
    audit = _Audit(
        intents=int(n_intents),
        orders=int(n_orders),
        modes=sorted(modes),
        blocks=Counter(b.code or "UNSPECIFIED" for b in blocked),
        block_reasons=Counter((b.code or "UNSPECIFIED", (b.reason or "").strip()[:80]) for b in blocked),
        halts=[(h.ts, h.to_state, h.code or "", h.reason or "") for h in halts],
    )
    return window_fills, ledger, runs, orders, audit


def run_ends(runs: Sequence[Any]) -> dict[str, int]:
    """When each run ended: its stop row, or, for a run that died without one, the start of the next run of
    the same mode (one service per database and mode: a new run means the previous process is gone; a
    REPLAY beside a running DRY_RUN ends nothing)."""
    ends = {r.run_id: _ns(r.ts) for r in runs if r.run_kind == "stop"}
    by_mode: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for r in runs:
        if r.run_kind == "start":
            by_mode[r.mode].append((_ns(r.ts), r.run_id))
    for starts in by_mode.values():
        starts.sort()
        for (_, run_id), (next_start, _) in zip(starts, starts[1:], strict=False):
            ends.setdefault(run_id, next_start)
    return ends


def _books(ledger: Ledger, runs: Sequence[Any], start: datetime) -> list[BookStart]:
    stops = run_ends(runs)
    start_ns = _ns(start)
    books: list[BookStart] = []
    for (book, asset), q in sorted(ledger.qty.items()):
        run_id = book.split(":", 1)[0]
        stop = None if book.startswith("LIVE:") else stops.get(run_id)
        if stop is not None and stop <= start_ns:
            continue  # a simulated account that ended before the day: nothing of it is exposed any more
        if q != 0:
            books.append(BookStart(book, asset, q, stop))
    return books


def _fmt(x: Decimal | None, places: str = "0.01", sign: bool = False) -> str:
    if x is None:
        return "n/a"
    q = x.quantize(Decimal(places), rounding=ROUND_HALF_UP)
    text = f"{q:,f}"
    return ("+" + text) if sign and q > 0 else text


def _qty(x: Decimal) -> str:
    text = f"{x.normalize():f}"
    return "0" if text in ("-0", "0E-8") else text


def _e(text: object) -> str:
    return html.escape(str(text), quote=False)


def render_text(
    *, day: date, start: datetime, end: datetime, tz: tzinfo, partial_until: datetime | None, metrics: DayMetrics, audit: _Audit,
    configured_mode: str, price_sources: dict[str, str], quote: str,
) -> str:
    m = metrics
    local = lambda dt: dt.astimezone(tz)  # noqa: E731
    hours = (end - start).total_seconds() / 3600
    span = f"{local(start):%d %b %H:%M} → {local(end):%d %b %H:%M} {_e(tz)}, {hours:g} h"
    lines = [f"<b>Daily summary {day.isoformat()}</b>", f"<i>{span}</i>"]
    if partial_until is not None:
        lines.append(f"<i>so far: until {local(partial_until):%H:%M:%S}</i>")
    lines.append(f"Mode: <b>{_e(', '.join(audit.modes) or configured_mode)}</b>")
    lines.append(
        f"Intents {audit.intents} · orders {audit.orders} · fills {m.fills} (buy {m.buys}, sell {m.sells}, maker {m.maker_fills})"
        f" · notional {_fmt(m.notional)} {_e(quote)}"
    )
    lines.append("")
    lines.append(f"<b>PnL</b> gross {_fmt(m.gross, sign=True)} · fees {_fmt(m.fees)} · net <b>{_fmt(m.net, sign=True)} {_e(quote)}</b>")
    if m.rebates:
        lines.append(f"Fees paid {_fmt(m.fees_paid)}, rebates {_fmt(-m.rebates)}")
    fee_line = f"Fee check: {_e(m.fee_verdict)}"
    if m.notional:
        fee_line += f" (gross {_fmt(m.gross_bps, '0.1', sign=True)} bps, fees {_fmt(m.fee_bps, '0.1')} bps of notional)"
    lines.append(fee_line)
    for asset in sorted(m.position_end):
        lines.append(
            f"{_e(asset)}: position {_qty(m.position_start.get(asset, Decimal(0)))} → {_qty(m.position_end[asset])}, "
            f"mark {_fmt(m.marks_end.get(asset))}, gross {_fmt(m.by_asset.get(asset, (Decimal(0), Decimal(0)))[0], sign=True)}"
        )
    lines.append("")
    lines.append(f"<b>Top slippage</b> ({m.slippage_measured} fills measured)")
    if m.outliers:
        for i, s in enumerate(m.outliers, 1):
            side = "BUY" if s.side > 0 else "SELL"
            lines.append(
                f"{i}. {side} {_qty(s.qty)} {_e(s.asset)} @ {_fmt(s.price)} vs {_e(s.reference_kind)} {_fmt(s.reference)}: "
                f"{_fmt(s.bps, '0.1', sign=True)} bps ({_fmt(s.cost, '0.0001')} {_e(quote)}) <code>{_e(s.fill_id)}</code>"
            )
    else:
        lines.append("no fill worse than its reference")
    lines.append("")
    total_blocks = sum(audit.blocks.values())
    lines.append(f"<b>Risk blocks</b> {total_blocks}" + (": " + ", ".join(f"{_e(c)} ×{n}" for c, n in audit.blocks.most_common()) if total_blocks else ""))
    for (code, reason), n in audit.block_reasons.most_common(3):
        if reason:
            lines.append(f"  {_e(code)} ×{n}: {_e(reason)}")
    for ts, state, code, reason in audit.halts[:5]:
        lines.append(f"  {local(ts):%H:%M:%S} → <b>{_e(state)}</b> {_e(code)} {_e(reason[:80])}")
    if len(audit.halts) > 5:
        lines.append(f"  … and {len(audit.halts) - 5} more SAFE/HALTED transitions")
    lines.append("")
    if m.regimes:
        bucket_min = round((m.buckets[1].start_ns - m.buckets[0].start_ns) / NS / 60) if len(m.buckets) > 1 else None
        head = "<b>Regimes</b>" + (f" ({bucket_min}-min buckets)" if bucket_min else "")
        parts = [f"{_e(r)} {n} ({_fmt(pnl, sign=True)}, {fills} fills)" for r, (n, pnl, fills) in m.regimes.items()]
        lines.append(head + ": " + " · ".join(parts))
    if m.markouts:
        lines.append("<b>Markouts</b> (bps, positive = price moved our way; n)")
        by_key: dict[tuple[str, int], list[str]] = defaultdict(list)
        for mk in m.markouts:
            by_key[(mk.asset, mk.side)].append(f"+{mk.horizon_s}s {_fmt(mk.mean_bps, '0.1', sign=True)} ({mk.n})")
        for (asset, side), parts in by_key.items():
            lines.append(f"  {_e(asset)} {'BUY' if side > 0 else 'SELL'}: " + " · ".join(parts))
    if price_sources:
        srcs = ", ".join(f"{_e(a)} {'recorded market data' if s == 'recorded' else 'our fill prices (approximate)' if s == 'fills' else 'none'}" for a, s in sorted(price_sources.items()))
        lines.append(f"<i>Prices: {srcs}</i>")
    return "\n".join(lines)


async def build_daily_summary(
    db: AsyncEngine,
    day: date,
    tz: tzinfo,
    *,
    at: time = time(21, 0),
    prices: PriceSource | None = None,
    now: datetime | None = None,
    configured_mode: str = "",
    outliers: int = 5,
    bucket_min: int = 60,
    trend_er: float = 0.5,
    high_vol_mult: float = 2.0,
    save_checkpoint: bool = False,
) -> Summary:
    """The summary of report day ``day`` (it ends at ``at`` local time in ``tz``; see ``DailyAt``).
    ``save_checkpoint`` (the scheduled job) stores the positions at the day's end, so the next day's
    summary reads only that day's fills; only a complete day is checkpointed."""
    trigger = DailyAt(at, tz)
    start, end = trigger.window(day)
    partial_until = None
    if now is not None and now < end:
        if now <= start:
            raise ValueError(f"report day {day.isoformat()} has not started yet (it starts {start.astimezone(tz):%Y-%m-%d %H:%M %Z})")
        end, partial_until = now, now
    window_fills, ledger, runs, orders, audit = await _load(db, start, end)
    summary = await asyncio.to_thread(
        _assemble, day, start, end, tz, partial_until, window_fills, ledger, runs, orders, audit, prices,
        configured_mode, outliers, bucket_min, trend_er, high_vol_mult,
    )
    if save_checkpoint and partial_until is None:
        closing = Ledger(dict(ledger.qty), dict(ledger.last_price), ledger.max_fill_id)
        for f in window_fills:
            closing.add(f.id, _book(f.run_id, f.mode, f.asset), f.asset, f.side, f.qty)
            closing.last_price[f.asset] = (_ns(f.ts), f.price)
        ended = {run_id for run_id, t in run_ends(runs).items() if t <= _ns(end)}
        closing.qty = {(b, a): q for (b, a), q in closing.qty.items() if b.startswith("LIVE:") or b.split(":", 1)[0] not in ended}
        async with db.begin() as conn:
            await kv_put(conn, CHECKPOINT_NS, end.isoformat(), closing.to_json(), end)
    return summary


def _assemble(
    day: date, start: datetime, end: datetime, tz: tzinfo, partial_until: datetime | None, window_fills: Sequence[Any], ledger: Ledger,
    runs: Sequence[Any], orders: dict[str, Any], audit: _Audit, prices: PriceSource | None, configured_mode: str,
    outliers: int, bucket_min: int, trend_er: float, high_vol_mult: float,
) -> Summary:
    start_ns, end_ns = _ns(start), _ns(end)
    books = _books(ledger, runs, start)
    last_prior_price = ledger.last_price
    assets = sorted({f.asset for f in window_fills} | {b.asset for b in books})
    paths: dict[str, PricePath] = {}
    sources: dict[str, str] = {}
    for asset in assets:
        path = prices.path(asset, start_ns, end_ns + 60 * NS) if prices is not None else None
        if path is None or not len(path):
            seed = [last_prior_price[asset]] if asset in last_prior_price else []
            path = fill_price_path(asset, seed + [(_ns(f.ts), f.price) for f in window_fills if f.asset == asset])
        paths[asset] = path
        sources[asset] = path.source if len(path) else "none"
    recs: list[FillRec] = []
    for f in window_fills:
        ref, kind = None, ""
        order = orders.get(f.client_order_id)
        path = paths.get(f.asset)
        if order is not None and path is not None and path.source == "recorded":
            ref = path.at(_ns(order.ts))
            kind = "arrival mid" if ref is not None else ""
        if ref is None and order is not None and order.limit_price is not None:
            ref, kind = order.limit_price, "limit price"
        recs.append(
            FillRec(
                fill_id=f.fill_id, ts_ns=_ns(f.ts), book=_book(f.run_id, f.mode, f.asset),
                asset=f.asset, side=_side(f.side), qty=f.qty, price=f.price, fee=f.fee_quote, is_maker=bool(f.is_maker),
                reference=ref, reference_kind=kind,
            )
        )
    metrics = compute(
        start_ns=start_ns, end_ns=end_ns, fills=recs, books=books, paths=paths, outliers=outliers,
        bucket_min=bucket_min, trend_er=trend_er, high_vol_mult=high_vol_mult,
    )
    quotes = {a.split("/")[-1] for a in assets}
    quote = quotes.pop() if len(quotes) == 1 else "(quote)"
    text = render_text(
        day=day, start=start, end=end, tz=tz, partial_until=partial_until, metrics=metrics, audit=audit,
        configured_mode=configured_mode, price_sources=sources, quote=quote,
    )
    if len(text) > 4096:
        text = text[:4000].rsplit("\n", 1)[0] + "\n… (cut: run <code>bot report daily</code> for the full report)"
    title = f"{day.isoformat()}  net {_fmt(metrics.net, sign=True)} {quote}"
    from bot.ops.chart import render_chart  # matplotlib is imported when the first chart is drawn, not at start-up

    png = render_chart(metrics, tz=tz, title=title, quote=quote)
    caption = f"<b>Daily summary {day.isoformat()}</b>: net PnL and position through the day"
    return Summary(day=day, start=start, end=end, text_html=text, png_bytes=png, metrics=metrics, caption_html=caption)


def utc_now_from_ns(ns: int) -> datetime:
    return datetime.fromtimestamp(ns // NS, UTC).replace(microsecond=(ns // 1000) % 1_000_000)
