"""/intent, /confirm, /cancel, /intents: staging and confirming single orders and mandates.

Everything that reads or changes trading state runs inside the engine loop (``in_engine``), so the checks of a
confirmation and its execution see one consistent state. A confirmation executes only if, at that moment:
- the hash prefix (>= 10 hex) matches exactly one pending, unexpired entry;
- LIVE: the system is armed and the entry was staged in the current arming window;
- the trading state allows new orders;
- four-eyes (optional): enough distinct operators confirmed;
- one order: the mid has not moved more than ``max_price_drift_bps`` since staging (else it is re-staged with a
  new hash), and the risk engine approves it again now (``Engine.execute_confirmed``).
The entry is marked used before the order is sent: a second confirmation is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

from bot.config import TelegramSettings
from bot.control.arming import Arming
from bot.control.command import Reply, Sender, in_engine, refused
from bot.control.estimate import drift_bps
from bot.control.fmt import bps, duration, esc, money, price, qty, units, utc_time
from bot.control.gate import LiveGate, strategy_net_pnl
from bot.control.parse import ParseError, parse_hash_prefix, parse_mandate, parse_manual
from bot.control.stager import Stager
from bot.control.staging import EntryStatus, IntentBook, Mandate, Staged
from bot.control.views import entry_outcome, intents_html, staged_buttons, staged_html
from bot.domain.errors import DomainError
from bot.domain.intent import Intent
from bot.domain.ports import AuditSink, Clock
from bot.engine.loop import Engine
from bot.risk.safety import SafetyController, TradingState
from bot.strategies.manual import MANUAL, ManualOrderError

log = logging.getLogger(__name__)
NS = 1_000_000_000
_STOPPED = (TradingState.SAFE, TradingState.HALTED)


class IntentCommands:
    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        audit: AuditSink,
        settings: TelegramSettings,
        arming: Arming,
        safety: SafetyController,
        book: IntentBook,
        stager: Stager,
        gate: LiveGate | None,
        require_arming: bool,
        engine_timeout_s: float,
        config_approved: Callable[[], bool],
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.audit = audit
        self.settings = settings
        self.arming = arming
        self.safety = safety
        self.book = book
        self.stager = stager
        self.gate = gate
        self.require_arming = require_arming
        self.timeout_s = engine_timeout_s
        self.config_approved = config_approved
        self.max_drift = settings.max_price_drift_bps

    # ------------------------------------------------------------------ helpers
    def _view(self, entry: Staged, note: str = "") -> str:
        return staged_html(entry, now_ns=self.clock.now_ns(), max_drift_bps=self.max_drift, instruments=self.engine.instruments, note=note)

    def _staged_reply(self, entry: Staged, head: str = "") -> Reply:
        confirmable = not self.require_arming or (self.arming.is_armed() and entry.arming_epoch == self.arming.epoch)
        note = "" if confirmable else "🔒 <b>Not armed: preview only.</b> /arm, then stage it again to be able to confirm it."
        html = (head + "\n" if head else "") + self._view(entry, note)
        return Reply(html, buttons=staged_buttons(entry) if confirmable else None, detail=f"staged {entry.hash}")

    def _stopped(self) -> Reply | None:
        if self.safety.state in _STOPPED:
            return refused(
                f"🛑 Trading state is <b>{self.safety.state}</b> ({esc(self.safety.reason)}): no new orders. /resume first.",
                detail=f"trading state {self.safety.state}",
            )
        return None

    # ------------------------------------------------------------------ /intent
    async def intent(self, sender: Sender, args: list[str], ref: str) -> Reply:
        if not args:
            raise ParseError("usage: /intent manual buy BTC/USDT 0.01 limit 60000  or  /intent <strategy> key=value ... (see /help)")
        name = args[0].lower()
        if name == MANUAL:
            return await self._stage_manual(sender, args[1:], ref)
        return await self._stage_mandate(sender, name, args[1:], ref)

    async def _stage_manual(self, sender: Sender, args: list[str], ref: str) -> Reply:
        """One order, through the ``manual`` strategy (its grammar, its intent), rounded to the grid first: the
        preview says what was rounded, and only what the preview shows can be confirmed."""
        typed = parse_manual(args)
        inst = self.engine.instruments.get(typed.asset)
        if inst is None:
            raise ParseError(f"unknown asset {typed.asset}; known: {', '.join(sorted(self.engine.instruments))}")
        stop = self._stopped()
        if stop is not None:
            return stop
        try:
            order = typed.rounded(inst)
        except ManualOrderError as exc:
            return refused(f"❌ Not staged: {esc(str(exc))}", detail=str(exc))
        notes = []
        if order.qty != typed.qty:
            notes.append(f"quantity rounded down to the lot: {qty(order.qty)}")
        if order.limit_price != typed.limit_price:
            notes.append(f"price rounded to the tick (passive side): {price(order.limit_price, units(order.asset)[1], inst.tick_size)}")
        try:
            inst.validate_order(order.qty, order.limit_price)
        except DomainError as exc:
            return refused(f"❌ Not staged: {esc(exc.message)}", detail=exc.message)

        def stage() -> tuple[str | None, Staged | None, Intent | None]:
            try:
                [made] = self.engine.request_intents(MANUAL, order)
            except (ManualOrderError, LookupError) as exc:  # LookupError: a run wired without the manual strategy
                return str(exc), None, None
            intent = replace(made, rationale=f"operator {sender.label} via Telegram: {order.text()}")
            self._record_decision(intent, ref)
            verdict = self.engine.check_risk(intent, "staged")
            if not verdict.approved:
                return f"{verdict.code}: {verdict.reason}", None, intent
            return None, self.stager.stage_order(intent, "passed", source="operator", staged_by=sender.label, user_id=sender.user_id), intent

        blocked, entry, intent = await in_engine(self.engine, stage, self.timeout_s)
        if intent is None:
            return refused(f"❌ Not staged: {esc(blocked or '')}", detail=blocked or "")
        if entry is None:
            return refused(f"❌ Risk pre-check <b>blocked</b> intent {esc(intent.id)}: {esc(blocked)}. Nothing staged.", detail=blocked or "")
        return self._staged_reply(entry, "; ".join(notes))

    def _record_decision(self, intent: Intent, ref: str) -> None:
        decision_id = f"{intent.id}-op"
        self.audit.record(
            "decision",
            {"ts_ns": intent.ts_ns, "strategy_id": intent.strategy_id, "decision_id": decision_id, "inputs_ref": ref[:128],
             "rationale": intent.rationale, "tags": ",".join(intent.risk_tags), "code_hash": "", "params_hash": ""},
        )
        self.engine.record_intent(intent, decision_id)

    async def _stage_mandate(self, sender: Sender, strategy_id: str, args: list[str], ref: str) -> Reply:
        found = self.engine.strategies.get(strategy_id)
        if found is None:
            known = ", ".join(sorted(self.engine.strategies)) or "none running"
            raise ParseError(f"unknown strategy {strategy_id!r}: use 'manual' for one order, or a running strategy ({known})")
        if self.gate is None:
            return refused(
                "Mandates gate running strategies in LIVE. In this DRY_RUN, strategies already trade against the simulated venue "
                "(set telegram.gate_in_dry_run = true to rehearse mandates).",
            )
        spec = parse_mandate(strategy_id, args)
        strat, _ctx = found
        for key, value in spec.params.items():
            if key not in strat.params:
                raise ParseError(f"{strategy_id} has no parameter {key!r} (it has: {', '.join(sorted(strat.params)) or 'none'})")
            if str(strat.params[key]) != value:
                return refused(
                    f"❌ {esc(key)}={esc(value)} differs from the running configuration ({esc(key)}={esc(strat.params[key])}). "
                    "A mandate bounds the strategy as configured; change the configuration (and /approve it) to change its parameters.",
                )
        assets = spec.assets or tuple(strat.assets)
        stray = [a for a in assets if a not in strat.assets]
        if stray:
            raise ParseError(f"{strategy_id} does not trade {', '.join(stray)} (it trades {', '.join(strat.assets)})")
        if spec.expiry_s > self.settings.mandate_max_ttl_s:
            return refused(f"❌ expiry {duration(spec.expiry_s)} exceeds the maximum {duration(self.settings.mandate_max_ttl_s)}.")
        stop = self._stopped()
        if stop is not None:
            return stop
        quotes = {units(a)[1] for a in assets}
        mandate = Mandate(
            strategy_id=strategy_id, params={k: str(v) for k, v in strat.params.items()}, assets=assets,
            quote=quotes.pop() if len(quotes) == 1 else "quote", max_notional=spec.max_notional, max_orders=spec.max_orders,
            max_loss=spec.max_loss, run_s=spec.expiry_s,
        )

        def stage() -> Staged:
            entry = self.stager.stage_mandate(mandate, "every order of the mandate still passes the risk engine", staged_by=sender.label, user_id=sender.user_id)
            self.audit.record(
                "state_transition",
                {"kind": "mandate", "scope": f"strategy:{strategy_id}", "from_state": None, "to_state": "STAGED",
                 "reason": f"{entry.hash} by {sender.label}: notional<={spec.max_notional} orders<={spec.max_orders} "
                           f"loss<={spec.max_loss} run={spec.expiry_s}s assets={','.join(assets)} ref={ref}"},
            )
            return entry

        entry = await in_engine(self.engine, stage, self.timeout_s)
        return self._staged_reply(entry)

    # ------------------------------------------------------------------ /confirm
    async def confirm(self, sender: Sender, args: list[str], ref: str) -> Reply:
        prefix = parse_hash_prefix(args[0] if args else None, command="confirm")
        if len(args) > 1:
            raise ParseError("usage: /confirm <hash>")
        return await in_engine(self.engine, lambda: self._confirm(sender, prefix), self.timeout_s)

    async def _confirm(self, sender: Sender, prefix: str) -> Reply:
        now = self.clock.now_ns()
        if self.require_arming:
            self.arming.check_expiry()  # settle an arming that just expired (its listeners void what it covered)
        found = self.book.lookup(prefix, now)
        if found.ambiguous:
            return refused(f"❓ {found.pending_matches} staged intents start with <code>{esc(prefix)}</code>: give more characters.")
        entry = found.entry
        if entry is None:
            return refused(f"❌ No staged intent matches <code>{esc(prefix)}</code>.", failure="bad hash")
        if not found.found:
            return refused(f"❌ Intent <code>{entry.short}</code> {entry_outcome(entry)}. Not executed.", detail=f"{entry.hash} {entry.status}")
        if self.require_arming:
            if not self.arming.is_armed():
                return refused(f"🔒 Not armed: intent <code>{entry.short}</code> not executed. /arm, then stage it again.", detail="not armed")
            if entry.arming_epoch != self.arming.epoch:
                return refused(
                    f"🔒 Intent <code>{entry.short}</code> was staged outside the current arming window: not executed. Stage it again.",
                    detail="other arming window",
                )
            if not self.config_approved():
                return refused("🔒 The running configuration is not approved: /approve it first. Not executed.", detail="config not approved")
        stop = self._stopped()
        if stop is not None:
            return stop
        if entry.confirmations_needed > 1:
            if sender.user_id in entry.confirmed_by:
                return refused(f"👥 You already confirmed <code>{entry.short}</code>: it needs another operator.")
            entry.confirmed_by.append(sender.user_id)
            if len(set(entry.confirmed_by)) < entry.confirmations_needed:
                self.audit.record(
                    "state_transition",
                    {"kind": "confirmation", "scope": f"strategy:{entry.strategy_id}", "from_state": "PENDING", "to_state": "PENDING",
                     "reason": f"{entry.hash}: confirmation {len(set(entry.confirmed_by))} of {entry.confirmations_needed} by {sender.label}"},
                )
                return Reply(
                    f"👥 Confirmation {len(set(entry.confirmed_by))} of {entry.confirmations_needed} recorded for <code>{entry.short}</code>. "
                    f"Another operator must /confirm {entry.short} before {utc_time(entry.expires_ns)}.",
                    detail="four-eyes: first confirmation",
                )
        else:
            entry.confirmed_by.append(sender.user_id)
        if entry.mandate is not None:
            return self._start_mandate(entry, sender, now)
        return await self._execute(entry, sender, now)

    def _start_mandate(self, entry: Staged, sender: Sender, now: int) -> Reply:
        m = entry.mandate
        assert m is not None
        m.ends_ns = now + m.run_s * NS
        m.start_pnl = strategy_net_pnl(self.engine.portfolio, self.engine.market, m.strategy_id)
        entry.close(EntryStatus.ACTIVE, f"confirmed by {sender.label}", now)
        self.audit.record(
            "state_transition",
            {"kind": "mandate", "scope": f"strategy:{m.strategy_id}", "from_state": "STAGED", "to_state": "ACTIVE",
             "reason": f"{entry.hash} confirmed by {sender.label}; runs until {m.ends_ns}"},
        )
        return Reply(
            f"✅ Mandate <code>{entry.short}</code> running: <b>{esc(m.strategy_id)}</b> may place orders on {esc(', '.join(m.assets))} "
            f"within {money(m.max_notional, m.quote)}, {m.max_orders} orders and a loss of {money(m.max_loss, m.quote)}, "
            f"until {utc_time(m.ends_ns)}. Every order still passes the risk engine. /cancel {entry.short} ends it.",
            detail=f"mandate {entry.hash} active",
        )

    async def _execute(self, entry: Staged, sender: Sender, now: int) -> Reply:
        intent = entry.intent
        assert intent is not None
        quote = units(intent.asset)[1]
        ref_mid = entry.estimate.mid if entry.estimate is not None else None
        tick = self.engine.market.last.get(intent.asset)
        if ref_mid is None or tick is None:
            entry.confirmed_by.remove(sender.user_id)
            return refused("❌ No market price to check the drift against: not executed (fail closed). Try again when data flows.", detail="no price")
        drift = drift_bps(ref_mid, tick.mid)
        if drift > self.max_drift:
            return self._restage(entry, sender, drift, tick.mid, quote)
        entry.close(EntryStatus.EXECUTED, f"confirmed by {sender.label}", now)
        if self.gate is not None:
            self.gate.permit(intent.id, entry.hash)
        try:
            verdict, order = await self.engine.execute_confirmed(intent)
        finally:
            if self.gate is not None:
                self.gate.revoke(intent.id)
        if not verdict.approved:
            entry.close(EntryStatus.BLOCKED, f"{verdict.code}: {verdict.reason}", now)
            return refused(f"❌ Risk <b>blocked</b> <code>{entry.short}</code> at execution: {esc(verdict.code)} {esc(verdict.reason)}. Not executed.",
                           detail=f"blocked {verdict.code}")
        if order is None:
            return refused(f"❌ <code>{entry.short}</code> was refused before reaching the venue (invalid order: see the audit log).", detail="not sent")
        entry.client_order_id = order.client_order_id
        base, _ = units(order.asset)
        state = order.status.value
        if state == "REJECTED":
            return Reply(
                f"❌ <code>{entry.short}</code> was confirmed and sent, but order <code>{esc(order.client_order_id)}</code> was "
                "<b>REJECTED</b> (the alert says why). Nothing is open.",
                outcome="refused", detail=f"order {order.client_order_id} REJECTED",
            )
        filled = f", filled {qty(order.filled_qty, base)}" + (f" @ {price(order.avg_price, quote)}" if order.avg_price else "") if order.filled_qty else ""
        return Reply(
            f"✅ Executed <code>{entry.short}</code>: {esc(order.side.value)} {qty(order.qty, base)} on {esc(order.asset)} → order "
            f"<code>{esc(order.client_order_id)}</code> <b>{esc(state)}</b>{filled}. Drift {bps(drift)}.",
            detail=f"order {order.client_order_id} {state}",
        )

    def _restage(self, entry: Staged, sender: Sender, drift: Decimal, mid: Decimal, quote: str) -> Reply:
        old = entry.intent
        assert old is not None
        entry.close(EntryStatus.VOIDED, f"price drifted {drift:.1f} bps since staging (limit {self.max_drift} bps): re-staged", self.clock.now_ns())
        intent = replace(old, id=self.engine.next_id(), ts_ns=self.engine.clock.now_ns(), rationale=f"{old.rationale}; re-staged after price drift")
        self._record_decision(intent, f"restage:{entry.hash}")
        verdict = self.engine.check_risk(intent, "staged")
        head = f"⚠️ The price moved <b>{bps(drift)}</b> since staging (now {price(mid, quote)}; limit {bps(self.max_drift)}): <code>{entry.short}</code> was not executed."
        if not verdict.approved:
            return refused(f"{head}\nRe-staging was <b>blocked</b> by risk: {esc(verdict.code)} {esc(verdict.reason)}.", detail="drift; restage blocked")
        new = self.stager.stage_order(intent, "passed", source=entry.source, staged_by=entry.staged_by, user_id=entry.staged_by_user)
        reply = self._staged_reply(new, head + " Re-staged at the current price with a new hash:")
        reply.outcome = "refused"
        reply.detail = f"drift {drift:.1f} bps; re-staged as {new.hash}"
        return reply

    # ------------------------------------------------------------------ /cancel and /intents
    async def cancel(self, sender: Sender, args: list[str], ref: str) -> Reply:
        prefix = parse_hash_prefix(args[0] if args else None, command="cancel")
        if len(args) > 1:
            raise ParseError("usage: /cancel <hash>")

        def do() -> Reply:
            now = self.clock.now_ns()
            running = [e for e in self.book.active_mandates() if e.hash.startswith(prefix)]
            if len(running) == 1 and self.gate is not None:
                self.gate.end_mandate(running[0], f"cancelled by {sender.label}")
                return Reply(f"⏹ Mandate <code>{running[0].short}</code> ended: no further orders under it.")
            found = self.book.lookup(prefix, now)
            if found.ambiguous:
                return refused(f"❓ {found.pending_matches} staged intents start with <code>{esc(prefix)}</code>: give more characters.")
            if found.entry is None:
                return refused(f"❌ No staged intent matches <code>{esc(prefix)}</code>.", failure="bad hash")
            if not found.found:
                return refused(f"Intent <code>{found.entry.short}</code> {entry_outcome(found.entry)}.")
            found.entry.close(EntryStatus.CANCELLED, f"by {sender.label}", now)
            return Reply(f"🗑 Intent <code>{found.entry.short}</code> cancelled. It can no longer be confirmed.")

        return await in_engine(self.engine, do, self.timeout_s)

    def is_pending(self, prefix: str) -> bool:
        """True while ``prefix`` matches a pending, unexpired entry (its buttons stay on the message)."""
        if not prefix:
            return False
        return self.book.lookup(prefix.lower(), self.clock.now_ns()).pending_matches > 0

    async def intents(self, sender: Sender, args: list[str], ref: str) -> Reply:
        now = self.clock.now_ns()
        return Reply(intents_html(self.book.pending(now), self.book.active_mandates(), now, self.engine.instruments))
