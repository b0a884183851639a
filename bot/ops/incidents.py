"""Incident reports (spec 13: Date, Duration, Impact, Root cause, Mitigation, Follow-up actions).

Drafted automatically when the trading state enters SAFE or HALTED (SAFE mode, a kill, a loss limit): the
desk subscribes to ``SafetyController.add_listener`` (``on_state_change``). The draft is prefilled with the
trigger, the audit timeline before it, positions, open orders and PnL at that moment, stored, and pushed to
the chat through the outbox. The operator completes it (root cause, mitigation, follow-ups, impact, notes)
through ``annotate`` — the control plane's Telegram command calls it. Leaving SAFE/HALTED closes the open
incident with the state at that moment (duration and PnL change).

Storage is append-only (``incident_entries``): an incident is the fold of its entries, every annotation
stays on record with who wrote it and when. One incident is open at a time; a further trigger while it is
open is added to it as another trigger rather than opening a second one.

Resume (spec 16.1 "any incident report drafted"): ``resume_check()`` is one of the risk engine's resume
checks: it passes when an incident is open for the halt and (by default) a person has entered its root cause.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.ports import Clock
from bot.ops.outbox import TEXT_LIMIT, enqueue
from bot.ops.scheduler import clock_now
from bot.risk.safety import INCIDENT_RECORDED, Check
from bot.store.audit import jsonable
from bot.store.models import (
    SCHEMA_VERSION,
    FillRow,
    IncidentEntryRow,
    OperatorCommandRow,
    OrderEventRow,
    ReconciliationRow,
    RiskVerdictRow,
    StateTransitionRow,
)

log = logging.getLogger(__name__)

INCIDENT_STATES = frozenset({"SAFE", "HALTED"})
FIELDS = {
    "root_cause": "Root cause",
    "mitigation": "Mitigation",
    "follow_up": "Follow-up actions",
    "impact": "Impact",
    "note": "Notes",
}
MAX_TEXT = 2000
TIMELINE_MAX = 25


class IncidentError(ValueError):
    """A refused incident operation; the message says why (shown to the operator as is)."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    mode: str
    version_hash: str
    config_hash: str


@dataclass(frozen=True)
class Note:
    ts: datetime
    author: str
    text: str


@dataclass
class Incident:
    incident_id: str
    opened_at: datetime
    mode: str
    triggers: list[dict[str, Any]] = field(default_factory=list)
    draft: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, list[Note]] = field(default_factory=dict)
    closed_at: datetime | None = None
    close: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def latest(self, fld: str) -> str | None:
        notes = self.notes.get(fld)
        return notes[-1].text if notes else None

    def duration(self, now: datetime) -> timedelta:
        return (self.closed_at or now) - self.opened_at


def _label(state: str, code: str | None, reason: str) -> str:
    if code == "KILL_SWITCH" or "kill" in reason.lower():
        return "kill switch"
    if "loss" in reason.lower():
        return "loss limit"
    return f"{state} mode"


def _e(text: object) -> str:
    return html.escape(str(text), quote=False)


def _dur(td: timedelta) -> str:
    s = int(td.total_seconds())
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def _money(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{Decimal(str(value)).quantize(Decimal('0.01')):,f}"


def render_html(inc: Incident, *, now: datetime, tz: tzinfo) -> str:
    """The report in the spec's template, for Telegram (HTML, at most 4096 characters)."""
    local = lambda dt: dt.astimezone(tz)  # noqa: E731
    status = "open" if inc.is_open else "closed"
    first = inc.triggers[0] if inc.triggers else {}
    lines = [f"<b>Incident {_e(inc.incident_id)}</b> ({status}, {_e(inc.mode)})"]
    lines.append(f"<b>Date:</b> {local(inc.opened_at):%Y-%m-%d %H:%M:%S %Z}")
    lines.append(f"<b>Duration:</b> {_dur(inc.duration(now))}" + (" (ongoing)" if inc.is_open else ""))
    for t in inc.triggers:
        lines.append(
            f"<b>Trigger:</b> {_e(t.get('label', ''))}: {_e(t.get('from_state'))} → <b>{_e(t.get('to_state'))}</b> "
            f"{_e(t.get('code') or '')} {_e((t.get('reason') or '')[:200])} ({local(datetime.fromisoformat(t['ts'])):%H:%M:%S})"
        )
    pnl = inc.draft.get("pnl") or {}
    positions = inc.draft.get("positions") or {}
    pos_text = ", ".join(f"{_e(a)} {_e(p.get('qty'))}" for a, p in positions.items()) or "flat"
    orders = inc.draft.get("open_orders") or []
    impact = f"PnL at trigger: net {_money(pnl.get('net'))} (realised {_money(pnl.get('realised'))}, unrealised {_money(pnl.get('unrealised'))}, fees {_money(pnl.get('fees'))})"
    lines.append(f"<b>Impact:</b> {impact}; positions {pos_text}; {len(orders)} open order(s)")
    if inc.close:
        cp = inc.close.get("pnl") or {}
        change = None
        if cp.get("net") is not None and pnl.get("net") is not None:
            change = Decimal(str(cp["net"])) - Decimal(str(pnl["net"]))
        lines.append(f"  at close: net {_money(cp.get('net'))}" + (f", change during the incident {_money(change)}" if change is not None else ""))
    for n in inc.notes.get("impact", []):
        lines.append(f"  {_e(n.text)} <i>({_e(n.author)})</i>")
    root = inc.notes.get("root_cause", [])
    lines.append("<b>Root cause:</b> " + (f"{_e(root[-1].text)} <i>({_e(root[-1].author)})</i>" if root else f"<i>to be filled in: /incident {_e(inc.incident_id)} root_cause …</i>"))
    auto = "automatic: new orders stopped" + (", resting orders cancelled" if any(t.get("label") == "kill switch" for t in inc.triggers) else "")
    lines.append(f"<b>Mitigation:</b> {auto}")
    for n in inc.notes.get("mitigation", []):
        lines.append(f"  • {_e(n.text)} <i>({_e(n.author)})</i>")
    follow = inc.notes.get("follow_up", [])
    lines.append("<b>Follow-up actions:</b>" + ("" if follow else f" <i>none yet: /incident {_e(inc.incident_id)} follow_up …</i>"))
    for n in follow:
        lines.append(f"  • {_e(n.text)} <i>({_e(n.author)})</i>")
    for n in inc.notes.get("note", []):
        lines.append(f"Note: {_e(n.text)} <i>({_e(n.author)})</i>")
    if orders:
        lines.append("<b>Open orders at trigger:</b>")
        for o in orders[:10]:
            lines.append(f"  {_e(o.get('side'))} {_e(o.get('qty'))} {_e(o.get('asset'))} @ {_e(o.get('limit_price'))} {_e(o.get('status'))}")
        if len(orders) > 10:
            lines.append(f"  … and {len(orders) - 10} more")
    timeline = inc.draft.get("timeline") or []
    if timeline:
        lines.append("<b>Timeline</b> (audit store, before the trigger):")
        for item in timeline:
            lines.append(f"  {local(datetime.fromisoformat(item['ts'])):%H:%M:%S} {_e(item['text'])}")
    text = "\n".join(lines)
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 60].rsplit("\n", 1)[0] + "\n… (timeline cut)"
    return text


class IncidentDesk:
    def __init__(
        self,
        db: AsyncEngine,
        *,
        clock: Clock,
        run: RunInfo,
        tz: tzinfo = UTC,
        state_provider: Callable[[], Mapping[str, Any]] | None = None,
        flush: Callable[[], Awaitable[None]] | None = None,
        lookback_s: int = 900,
        requires_root_cause: bool = True,
    ) -> None:
        self.db = db
        self.clock = clock
        self.run = run
        self.tz = tz
        self.state_provider = state_provider
        self.flush = flush
        self.lookback = timedelta(seconds=lookback_s)
        self.requires_root_cause = requires_root_cause
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._open: Incident | None = None  # cached for the synchronous resume check
        self._loaded = False

    # ------------------------------------------------------------------ the SafetyController listener
    def on_state_change(self, old: Any, new: Any, code: Any, reason: str) -> None:
        """Listener for ``SafetyController.add_listener``: fn(old, new, code, reason). Synchronous and quick:
        the state is captured now (inside the engine loop), the writing happens in a task."""
        old_s, new_s = _name(old), _name(new)
        code_s = _name(code) if code is not None else None
        ts = clock_now(self.clock)
        if new_s in INCIDENT_STATES:
            state = self._capture()
            trigger = {"ts": ts.isoformat(), "from_state": old_s, "to_state": new_s, "code": code_s, "reason": reason or "", "label": _label(new_s, code_s, reason or "")}
            self._spawn(self.open_or_add_trigger(trigger, state))
        elif old_s in INCIDENT_STATES:
            state = self._capture()
            self._spawn(self.close(by="state change", reason=f"{old_s} → {new_s}: {reason}", state=state))

    def _capture(self) -> dict[str, Any]:
        if self.state_provider is None:
            return {}
        try:
            return dict(self.state_provider())
        except Exception as exc:
            log.exception("incident: could not capture the state")
            return {"error": type(exc).__name__}

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("incident draft failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every drafted incident is written (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ writing
    async def _append(self, conn: Any, incident_id: str, entry: str, *, fld: str | None = None, text: str = "", author: str = "", data: Any = None) -> None:
        await conn.execute(
            insert(IncidentEntryRow).values(
                ts=clock_now(self.clock),
                run_id=self.run.run_id,
                mode=self.run.mode,
                strategy_id=None,
                version_hash=self.run.version_hash,
                config_hash=self.run.config_hash,
                schema_version=SCHEMA_VERSION,
                data=None if data is None else jsonable(data),
                incident_id=incident_id,
                entry=entry,
                field=fld,
                text=text,
                author=author,
            )
        )

    async def _new_id(self, conn: Any, now: datetime) -> str:
        day = now.strftime("%Y%m%d")
        n = (
            await conn.execute(
                select(func.count()).select_from(IncidentEntryRow).where(IncidentEntryRow.entry == "open", IncidentEntryRow.incident_id.like(f"{day}-%"))
            )
        ).scalar_one()
        return f"{day}-{int(n) + 1}"

    async def open_or_add_trigger(self, trigger: dict[str, Any], state: Mapping[str, Any]) -> Incident:
        async with self._lock:
            if self.flush is not None:
                try:
                    await self.flush()
                except Exception:
                    log.exception("incident: audit flush failed; the timeline may miss the newest rows")
            current = await self.open_incident()
            now = clock_now(self.clock)
            async with self.db.begin() as conn:
                if current is not None:
                    await self._append(conn, current.incident_id, "trigger", text=trigger["label"], data=trigger)
                    incident_id, is_new = current.incident_id, False
                else:
                    incident_id, is_new = await self._new_id(conn, now), True
                    timeline = await self._timeline(conn, datetime.fromisoformat(trigger["ts"]))
                    draft = {
                        "trigger": trigger,
                        "positions": state.get("positions", {}),
                        "open_orders": state.get("open_orders", []),
                        "pnl": state.get("pnl", {}),
                        "trading_state": state.get("trading_state"),
                        "timeline": timeline,
                    }
                    await self._append(conn, incident_id, "open", text=trigger["label"], data=draft)
            inc = await self.get(incident_id)
            assert inc is not None
            text = render_html(inc, now=now, tz=self.tz)
            async with self.db.begin() as conn:
                key = f"incident:{incident_id}:open" if is_new else f"incident:{incident_id}:trigger:{len(inc.triggers)}"
                await enqueue(conn, now=now, severity="CRITICAL", dedup_key=key, text=text)
            log.warning("incident %s %s: %s", incident_id, "opened" if is_new else "trigger added", trigger["label"])
            await self.load()
            return inc

    async def open_manual(self, text: str, by: str) -> Incident:
        """Open an incident by hand (e.g. the bot was halted before the desk was listening)."""
        text = _clean(text)
        trigger = {"ts": clock_now(self.clock).isoformat(), "from_state": None, "to_state": "manual", "code": None, "reason": text, "label": f"opened by {by}"}
        return await self.open_or_add_trigger(trigger, self._capture())

    async def annotate(self, incident_id: str, field: str, text: str, by: str) -> Incident:
        """Add the operator's text to a field (root_cause, mitigation, follow_up, impact, note). Returns the
        updated incident; raises IncidentError with a message for the operator."""
        if field not in FIELDS:
            raise IncidentError(f"unknown field {field!r}: use one of {', '.join(FIELDS)}")
        text = _clean(text)
        if not by.strip():
            raise IncidentError("who is writing? (by must name the operator)")
        async with self._lock:
            inc = await self.get(incident_id)
            if inc is None:
                raise IncidentError(f"no incident {incident_id!r}")
            async with self.db.begin() as conn:
                await self._append(conn, incident_id, "annotate", fld=field, text=text, author=by.strip()[:64])
            await self.load()
        updated = await self.get(incident_id)
        assert updated is not None
        return updated

    async def close(self, *, by: str, reason: str = "", state: Mapping[str, Any] | None = None, incident_id: str | None = None) -> Incident | None:
        async with self._lock:
            inc = await (self.get(incident_id) if incident_id else self.open_incident())
            if inc is None or not inc.is_open:
                return None
            snapshot = dict(state) if state is not None else self._capture()
            async with self.db.begin() as conn:
                await self._append(conn, inc.incident_id, "close", text=reason[:MAX_TEXT], author=by[:64], data={"pnl": snapshot.get("pnl", {}), "positions": snapshot.get("positions", {})})
            closed = await self.get(inc.incident_id)
            assert closed is not None
            now = clock_now(self.clock)
            async with self.db.begin() as conn:
                await enqueue(conn, now=now, severity="WARNING", dedup_key=f"incident:{inc.incident_id}:close", text=render_html(closed, now=now, tz=self.tz))
            await self.load()
            return closed

    # ------------------------------------------------------------------ reading
    async def get(self, incident_id: str) -> Incident | None:
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        IncidentEntryRow.ts, IncidentEntryRow.mode, IncidentEntryRow.entry, IncidentEntryRow.field,
                        IncidentEntryRow.text, IncidentEntryRow.author, IncidentEntryRow.data,
                    ).where(IncidentEntryRow.incident_id == incident_id).order_by(IncidentEntryRow.id)
                )
            ).all()
        return _fold(incident_id, rows)

    async def open_incident(self) -> Incident | None:
        """The open incident (the newest, if several were ever left open)."""
        async with self.db.connect() as conn:
            opened = (
                await conn.execute(select(IncidentEntryRow.incident_id).where(IncidentEntryRow.entry == "open").order_by(IncidentEntryRow.id.desc()).limit(50))
            ).all()
            closed = {
                r[0]
                for r in (
                    await conn.execute(select(IncidentEntryRow.incident_id).where(IncidentEntryRow.entry == "close", IncidentEntryRow.incident_id.in_([o[0] for o in opened])))
                ).all()
            } if opened else set()
        for (incident_id,) in opened:
            if incident_id not in closed:
                return await self.get(incident_id)
        return None

    async def recent(self, limit: int = 5) -> list[Incident]:
        async with self.db.connect() as conn:
            ids = [r[0] for r in (await conn.execute(select(IncidentEntryRow.incident_id).where(IncidentEntryRow.entry == "open").order_by(IncidentEntryRow.id.desc()).limit(limit))).all()]
        out = [await self.get(i) for i in ids]
        return [i for i in out if i is not None]

    async def load(self) -> Incident | None:
        """Refresh the cached open incident (at start and after every write)."""
        self._open = await self.open_incident()
        self._loaded = True
        return self._open

    def resume_check_item(self) -> Check:
        """The synchronous resume check for ``SafetyController.add_check`` (from the cached open incident; a
        draft still being written does not count yet: fail closed)."""
        if not self._loaded:
            return Check(INCIDENT_RECORDED, False, "incident reports not loaded yet")
        ok, detail = self._evaluate(self._open)
        return Check(INCIDENT_RECORDED, ok, detail)

    def _evaluate(self, inc: Incident | None) -> tuple[bool, str]:
        if inc is None:
            return False, "no incident report is open for this halt: open one (/incident new <text>) before resuming"
        root = inc.latest("root_cause")
        if self.requires_root_cause and not root:
            return False, f"incident {inc.incident_id} has no root cause yet: /incident {inc.incident_id} root_cause <text>"
        return True, f"incident {inc.incident_id} drafted" + (f", root cause: {root[:80]}" if root else "")

    async def has_open_incident_report(self) -> bool:
        return await self.open_incident() is not None

    async def resume_check(self) -> tuple[bool, str]:
        """For the risk engine's resume checklist: (passed, what is missing or what was found)."""
        await self.drain()
        return self._evaluate(await self.open_incident())

    def render(self, inc: Incident) -> str:
        return render_html(inc, now=clock_now(self.clock), tz=self.tz)

    # ------------------------------------------------------------------ timeline
    async def _timeline(self, conn: Any, at: datetime) -> list[dict[str, str]]:
        lo, hi = at - self.lookback, at + timedelta(seconds=1)
        items: list[tuple[datetime, str]] = []
        for r in (await conn.execute(select(StateTransitionRow).where(StateTransitionRow.ts >= lo, StateTransitionRow.ts <= hi))).all():
            items.append((r.ts, f"{r.kind} {r.scope}: {r.from_state or '-'} → {r.to_state} {r.code or ''} {r.reason[:100]}"))
        for r in (await conn.execute(select(RiskVerdictRow).where(RiskVerdictRow.ts >= lo, RiskVerdictRow.ts <= hi, RiskVerdictRow.approved.is_(False)))).all():
            items.append((r.ts, f"risk blocked {r.intent_id}: {r.code or ''} {r.reason[:100]}"))
        for r in (await conn.execute(select(OrderEventRow).where(OrderEventRow.ts >= lo, OrderEventRow.ts <= hi, OrderEventRow.code.is_not(None)))).all():
            items.append((r.ts, f"order {r.client_order_id} {r.event}: {r.code} {r.reason[:100]}"))
        for r in (await conn.execute(select(ReconciliationRow).where(ReconciliationRow.ts >= lo, ReconciliationRow.ts <= hi, ReconciliationRow.ok.is_(False)))).all():
            items.append((r.ts, f"reconciliation {r.venue} {r.asset or ''} mismatch: internal {r.internal_qty} venue {r.venue_qty} {r.code or ''} {r.detail[:80]}"))
        for r in (await conn.execute(select(OperatorCommandRow).where(OperatorCommandRow.ts >= lo, OperatorCommandRow.ts <= hi))).all():
            items.append((r.ts, f"operator {r.command} {r.outcome}"))
        for r in (await conn.execute(select(FillRow).where(FillRow.ts >= lo, FillRow.ts <= hi).order_by(FillRow.ts.desc()).limit(10))).all():
            items.append((r.ts, f"fill {r.side} {r.qty} {r.asset} @ {r.price}"))
        items.sort(key=lambda i: i[0])
        return [{"ts": ts.isoformat(), "text": text.strip()} for ts, text in items[-TIMELINE_MAX:]]


def _clean(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise IncidentError("the text is empty")
    if len(text) > MAX_TEXT:
        raise IncidentError(f"the text is {len(text)} characters; at most {MAX_TEXT}")
    return text


def _name(value: Any) -> str:
    return str(getattr(value, "value", value))


def _fold(incident_id: str, rows: list[Any]) -> Incident | None:
    if not rows:
        return None
    inc: Incident | None = None
    for r in rows:
        if r.entry == "open":
            draft = dict(r.data or {})
            inc = Incident(incident_id, r.ts, r.mode, triggers=[draft.get("trigger", {})], draft=draft)
        elif inc is None:
            continue
        elif r.entry == "trigger":
            inc.triggers.append(dict(r.data or {}))
        elif r.entry == "annotate" and r.field:
            inc.notes.setdefault(r.field, []).append(Note(r.ts, r.author, r.text))
        elif r.entry == "close":
            inc.closed_at = r.ts
            inc.close = dict(r.data or {})
    return inc
