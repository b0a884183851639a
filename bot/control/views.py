"""What the operator reads: staged intents, status, orders, positions, PnL. Pure functions returning HTML.

Each view fits one phone screen (long lists are cut with a count of what was left out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from bot.control.fmt import bps, duration, esc, money, price, qty, signed_qty, units, utc_time
from bot.control.staging import EntryStatus, Staged
from bot.domain.instrument import Instrument
from bot.domain.money import ZERO
from bot.domain.order import Order
from bot.domain.position import Portfolio
from bot.engine.market_state import MarketState

NS = 1_000_000_000
MAX_ROWS = 10


def _tick(asset: str, instruments: Mapping[str, Instrument]) -> Decimal | None:
    inst = instruments.get(asset)
    return inst.tick_size if inst is not None else None


def order_line(side: str, q: Decimal, asset: str, order_type: str, limit: Decimal | None, tif: str, instruments: Mapping[str, Instrument]) -> str:
    base, quote = units(asset)
    at = f" @ {price(limit, quote, _tick(asset, instruments))}" if limit is not None else ""
    return f"<b>{esc(side)} {qty(q, base)}</b> on {esc(asset)} · {esc(order_type)}{at} · {esc(tif)}"


def staged_html(entry: Staged, *, now_ns: int, max_drift_bps: Decimal, instruments: Mapping[str, Instrument], note: str = "") -> str:
    lines: list[str] = []
    if entry.mandate is not None:
        m = entry.mandate
        lines.append(f"📝 <b>Mandate</b> <code>{entry.short}</code> · strategy <b>{esc(m.strategy_id)}</b>")
        params = ", ".join(f"{esc(k)}={esc(v)}" for k, v in sorted(m.params.items())) or "none"
        lines.append(f"Parameters: {params}")
        lines.append(f"Assets: {esc(', '.join(m.assets))}")
        lines.append(
            f"Bounds: notional ≤ {money(m.max_notional, m.quote)} · ≤ {m.max_orders} orders · loss ≤ {money(m.max_loss, m.quote)}"
        )
        lines.append(f"Runs for {duration(m.run_s)} after confirmation, or until the bounds are used, /disarm, SAFE or a kill.")
        lines.append(f"Risk: {esc(entry.risk_text)}")
    else:
        i = entry.intent
        assert i is not None
        _, quote = units(i.asset)
        lines.append(f"📝 <b>Intent</b> <code>{entry.short}</code> · {esc(entry.staged_by)}")
        lines.append(order_line(i.side.value, i.qty, i.asset, i.order_type.value, i.limit_price, i.tif.value, instruments))
        est = entry.estimate
        lines.append(f"Risk pre-check: ✅ {esc(entry.risk_text)}")
        if est is not None and est.notional is not None:
            fee = money(est.fee or ZERO, quote, 4 if (est.fee or ZERO) < 1 else 2)
            lines.append(f"Notional ≈ {money(est.notional, quote)} · fee ≈ {fee} ({'taker' if est.taker else 'maker'})")
        else:
            lines.append("Notional: unknown (no market data)")
        if est is not None and not est.taker and est.notional is not None:
            lines.append("Slippage: none (a passive limit fills at its price or not at all)")
        elif est is not None and est.slippage_bps is not None and est.slippage_cost is not None:
            lines.append(f"Slippage vs mid ≈ {bps(est.slippage_bps)} ({money(est.slippage_cost, quote, 2, signed=True)})")
        if est is not None and est.mid is not None:
            lines.append(f"Mid at staging {price(est.mid, quote, _tick(i.asset, instruments))}; confirm refused if it moves > {bps(max_drift_bps)}")
    if entry.confirmations_needed > 1:
        lines.append(f"👥 Needs {entry.confirmations_needed} confirmations from different operators (four-eyes).")
    left = (entry.expires_ns - now_ns) / NS
    lines.append(f"Expires {utc_time(entry.expires_ns)} (in {duration(left)}) · single use")
    lines.append(f"Confirm: <code>/confirm {entry.short}</code>")
    lines.append(f"Hash <code>{entry.hash}</code>")
    if note:
        lines.append(note)
    return "\n".join(lines)


def staged_buttons(entry: Staged) -> list[list[tuple[str, str]]]:
    return [[("✅ Confirm", f"c:{entry.hash[:32]}"), ("❌ Reject", f"r:{entry.hash[:32]}")]]


def mandate_progress(entry: Staged, now_ns: int) -> str:
    m = entry.mandate
    assert m is not None
    return (
        f"<code>{entry.short}</code> {esc(m.strategy_id)}: {money(m.used_notional, m.quote)} of {money(m.max_notional, m.quote)}, "
        f"{m.used_orders}/{m.max_orders} orders, {duration((m.ends_ns - now_ns) / NS)} left"
    )


def intents_html(pending: Sequence[Staged], mandates: Sequence[Staged], now_ns: int, instruments: Mapping[str, Instrument]) -> str:
    if not pending and not mandates:
        return "No staged intents and no running mandates."
    lines: list[str] = []
    if pending:
        lines.append(f"<b>Staged</b> ({len(pending)}):")
        for e in pending[:MAX_ROWS]:
            left = duration((e.expires_ns - now_ns) / NS)
            if e.intent is not None:
                i = e.intent
                what = order_line(i.side.value, i.qty, i.asset, i.order_type.value, i.limit_price, i.tif.value, instruments)
            else:
                what = f"mandate for <b>{esc(e.strategy_id)}</b>"
            votes = f" · {len(set(e.confirmed_by))}/{e.confirmations_needed} confirmed" if e.confirmations_needed > 1 else ""
            lines.append(f"• <code>{e.short}</code> {what} · {left} left{votes}")
        if len(pending) > MAX_ROWS:
            lines.append(f"… and {len(pending) - MAX_ROWS} more")
    if mandates:
        lines.append(f"<b>Running mandates</b> ({len(mandates)}):")
        lines.extend("• " + mandate_progress(e, now_ns) for e in mandates[:MAX_ROWS])
    return "\n".join(lines)


def orders_html(orders: Sequence[Order], instruments: Mapping[str, Instrument]) -> str:
    if not orders:
        return "No open orders."
    lines = [f"<b>Open orders</b> ({len(orders)}):"]
    for o in orders[:MAX_ROWS]:
        base, _ = units(o.asset)
        filled = f" · filled {qty(o.filled_qty, base)}" if o.filled_qty else ""
        lines.append(
            "• " + order_line(o.side.value, o.qty, o.asset, o.order_type.value, o.limit_price, o.tif.value, instruments)
            + f" · {esc(o.status.value)}{filled} · <code>{esc(o.client_order_id)}</code> ({esc(o.strategy_id)})"
        )
    if len(orders) > MAX_ROWS:
        lines.append(f"… and {len(orders) - MAX_ROWS} more")
    return "\n".join(lines)


def positions_html(portfolio: Portfolio, market: MarketState, instruments: Mapping[str, Instrument]) -> str:
    rows = [p for p in portfolio.positions.values() if p.qty != 0]
    if not rows:
        return "Flat: no open positions."
    lines = ["<b>Positions</b>:"]
    for p in sorted(rows, key=lambda p: p.asset)[:MAX_ROWS]:
        base, quote = units(p.asset)
        tick = market.last.get(p.asset)
        upnl = money(p.unrealised(tick.mid), quote, signed=True) if tick is not None else "no mark"
        lines.append(
            f"• {esc(p.asset)} <b>{signed_qty(p.qty, base)}</b> @ {price(p.avg_price, quote, _tick(p.asset, instruments))} · unrealised {upnl}"
        )
    return "\n".join(lines)


def pnl_html(portfolio: Portfolio, market: MarketState, label: str) -> str:
    if not portfolio.positions:
        return f"<b>PnL</b> ({esc(label)}): no fills yet."
    lines = [f"<b>PnL</b> ({esc(label)}):"]
    by_quote: dict[str, list[Decimal]] = {}
    for p in portfolio.positions.values():
        _, quote = units(p.asset)
        tick = market.last.get(p.asset)
        u = p.unrealised(tick.mid) if tick is not None else ZERO
        acc = by_quote.setdefault(quote, [ZERO, ZERO, ZERO])
        acc[0] += p.realised_pnl
        acc[1] += u
        acc[2] += p.fees
    for quote, (r, u, f) in sorted(by_quote.items()):
        net = r + u - f
        lines.append(
            f"Net <b>{money(net, quote, signed=True)}</b> = realised {money(r, quote, signed=True)} "
            f"+ unrealised {money(u, quote, signed=True)} − fees {money(f, quote)}"
        )
    per_strategy: dict[tuple[str, str], Decimal] = {}
    for (sid, asset), p in portfolio.by_strategy.items():
        _, quote = units(asset)
        tick = market.last.get(asset)
        per_strategy[(sid, quote)] = per_strategy.get((sid, quote), ZERO) + p.net_pnl(tick.mid if tick is not None else None)
    if per_strategy:
        lines.append("By strategy: " + ", ".join(f"{esc(s)} {money(v, q, signed=True)}" for (s, q), v in sorted(per_strategy.items())))
    return "\n".join(lines)


def entry_outcome(entry: Staged) -> str:
    """Why a non-pending entry cannot be confirmed (for a late or repeated /confirm)."""
    s = entry.status
    if s in (EntryStatus.EXECUTED, EntryStatus.BLOCKED, EntryStatus.ACTIVE, EntryStatus.ENDED) and entry.confirmed_by:
        return f"was already confirmed at {utc_time(entry.status_ns)} (single use): {esc(s.value.lower())}"
    if s is EntryStatus.EXPIRED:
        return f"expired at {utc_time(entry.expires_ns)} without confirmation: stage it again"
    if s is EntryStatus.CANCELLED:
        return f"was cancelled at {utc_time(entry.status_ns)} ({esc(entry.status_reason)})"
    if s is EntryStatus.VOIDED:
        return f"was voided at {utc_time(entry.status_ns)}: {esc(entry.status_reason)}"
    return f"is {esc(s.value.lower())}: {esc(entry.status_reason)}"


def reconciliation_line(ok: bool, problems: list[str], age_s: float | None) -> str:
    """The /status line for the last reconciliation with the venue."""
    when = f"{duration(age_s)} ago" if age_s is not None else "time unknown"
    if ok:
        return f"✅ {when}"
    return f"⚠️ {when}: " + esc("; ".join(problems[:2]) or "mismatch")


def daily_pnl_line(pnl: Decimal, cap: Decimal | None, quote: str) -> str:
    """The /status PnL line: today's net PnL against the daily loss cap."""
    text = money(pnl, quote, signed=True)
    return text + (f" (daily loss cap {money(cap, quote)})" if cap is not None else "")
