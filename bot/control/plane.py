"""The operator's commands, independent of Telegram: ``handle(name, args, sender, ref)`` -> ``Reply``.

Every command, accepted or refused, is appended to the audit store with its sender, its arguments (secrets
masked: the TOTP code of /arm never leaves this module) and its outcome. A refusal that is a failure (bad hash,
malformed or unknown command, wrong second factor) counts toward the sender's lockout.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp

from bot.config import TelegramSettings
from bot.control.approval import ConfigApproval
from bot.control.arming import Arming, ArmingRefused
from bot.control.command import EngineTimeout, Reply, Sender, in_engine, refused
from bot.control.fmt import duration, esc, money, signed_qty, units, utc_time
from bot.control.gate import LiveGate
from bot.control.intents import IntentCommands
from bot.control.lockout import Lockouts
from bot.control.parse import ARM_USAGE, ParseError, parse_hash_prefix, parse_ttl
from bot.control.stager import Stager
from bot.control.staging import IntentBook
from bot.control.views import mandate_progress, orders_html, pnl_html, positions_html
from bot.domain.ports import AuditSink, Clock
from bot.engine.loop import Engine
from bot.risk.safety import SafetyController, TradingState

log = logging.getLogger(__name__)
NS = 1_000_000_000
Handler = Callable[[Sender, list[str], str], Awaitable[Reply]]
ReportProvider = Callable[[], Awaitable[tuple[str, bytes | None]]]  # (HTML summary, optional PNG chart)
TextProvider = Callable[[], str | None]  # an HTML fragment for /status, or None when unknown

STATE_ICON = {TradingState.ACTIVE: "🟢", TradingState.REDUCING: "🟡", TradingState.HALTED: "🟠", TradingState.SAFE: "🛑"}
_STOPPED = (TradingState.SAFE, TradingState.HALTED)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    summary: str  # the setMyCommands description
    example: str
    handler: Handler


class ControlPlane:
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
        lockouts: Lockouts,
        approval: ConfigApproval,
        require_arming: bool,
        version: str,
        run_id: str,
        engine_timeout_s: float = 10.0,
        report_provider: ReportProvider | None = None,
        reconciliation: TextProvider | None = None,
        pnl_today: TextProvider | None = None,
        kill_file: Path | None = None,
        feed_stale_s: float = 30.0,
        incidents: Any = None,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.audit = audit
        self.settings = settings
        self.arming = arming
        self.safety = safety
        self.book = book
        self.gate = gate
        self.lockouts = lockouts
        self.approval = approval
        self.require_arming = require_arming
        self.version = version
        self.run_id = run_id
        self.timeout_s = engine_timeout_s
        self.report_provider = report_provider
        self.reconciliation = reconciliation
        self.pnl_today = pnl_today
        self.kill_file = kill_file
        self.feed_stale_s = feed_stale_s
        self.incidents = incidents  # ops' IncidentDesk (open_manual, annotate, open_incident, recent, render)
        self.started_mono = clock.monotonic_ns()
        self._totp = pyotp.TOTP(settings.totp_secret.get_secret_value()) if settings.totp_secret is not None else None
        self._last_totp_counter = -1
        self.intents = IntentCommands(
            engine=engine, clock=clock, audit=audit, settings=settings, arming=arming, safety=safety, book=book, stager=stager,
            gate=gate, require_arming=require_arming, engine_timeout_s=engine_timeout_s, config_approved=lambda: approval.approved,
        )
        specs = [
            CommandSpec("status", "Mode, trading state, arming, feeds, positions, PnL", "/status", self.status),
            CommandSpec("arm", "Arm LIVE for one window: /arm 15m", "/arm 15m" + (" 123456" if self._totp else ""), self.arm),
            CommandSpec("disarm", "Revoke arming now", "/disarm", self.disarm),
            CommandSpec("intent", "Stage an order or a mandate (no execution)", "/intent manual buy BTC/USDT 0.01 limit 60000", self.intents.intent),
            CommandSpec("confirm", "Execute a staged intent: /confirm <hash>", "/confirm 3f9a0c1d2e", self.intents.confirm),
            CommandSpec("intents", "Staged intents and running mandates", "/intents", self.intents.intents),
            CommandSpec("cancel", "Cancel a staged intent or end a mandate", "/cancel 3f9a0c1d2e", self.intents.cancel),
            CommandSpec("orders", "Open orders", "/orders", self.orders),
            CommandSpec("positions", "Positions", "/positions", self.positions),
            CommandSpec("pnl", "Profit and loss", "/pnl", self.pnl),
            CommandSpec("kill", "Cancel all orders and enter SAFE now", "/kill", self.kill),
            CommandSpec("resume", "Leave SAFE: runs the recovery checklist", "/resume", self.resume),
            CommandSpec("report", "Today's summary now", "/report", self.report),
            CommandSpec("incident", "Show or complete the incident report", "/incident 3 root_cause venue maintenance", self.incident),
            CommandSpec("approve", "Approve the running configuration", "/approve 5d41402abc", self.approve),
            CommandSpec("help", "Commands with examples", "/help", self.help),
        ]
        self.commands: dict[str, CommandSpec] = {s.name: s for s in specs}

    # ------------------------------------------------------------------ dispatch
    def bot_commands(self) -> list[tuple[str, str]]:
        return [(s.name, s.summary) for s in self.commands.values()]

    @staticmethod
    def mask_args(command: str | None, args: list[str]) -> str:
        """Arguments as audited: the second factor of /arm is never stored."""
        if command == "arm" and len(args) > 1:
            args = [args[0]] + ["******"] * (len(args) - 1)
        return " ".join(args)

    async def handle(self, name: str, args: list[str], sender: Sender, ref: str = "") -> Reply:
        spec = self.commands.get(name)
        try:
            if spec is None:
                reply = refused(f"❓ Unknown command /{esc(name)}. /help lists the commands.", failure="unknown command")
            else:
                reply = await spec.handler(sender, args, ref)
        except ParseError as exc:
            reply = refused(f"❌ {esc(exc)}", failure="malformed command", detail=str(exc))
        except EngineTimeout as exc:
            text = (
                "⏳ The engine did not answer in time: the command may still complete. Check /status and /orders."
                if exc.started else "⏳ The engine did not answer in time: the command was not executed. Check /status."
            )
            reply = Reply(text, outcome="error", detail=str(exc))
        except Exception as exc:  # a bug must not kill the bot, and must be visible
            log.exception("command /%s failed", name)
            reply = Reply(f"⚠️ /{esc(name)} failed: {esc(type(exc).__name__)}. Check /status.", outcome="error", detail=f"{type(exc).__name__}: {exc}")
        if reply.failure:
            until = await self.lockouts.fail(sender.user_id, reply.failure)
            if until is not None:
                reply.html += f"\n🔒 Too many failures: you are locked out until {utc_time(until)} (/kill and /disarm still work)."
        self.audit.record(
            "command",
            {"chat_id": sender.chat_id, "user_id": sender.user_id, "command": name[:32], "args": self.mask_args(name, args)[:2000],
             "outcome": reply.outcome, "detail": (reply.failure or reply.detail or "")[:2000]},
        )
        return reply

    # ------------------------------------------------------------------ arming
    def _verify_totp(self, code: str | None) -> str | None:
        """None when the code is valid and fresh; else why not."""
        assert self._totp is not None
        if not code:
            return "this bot requires a second factor: /arm <ttl> <6-digit code>"
        now_s = self.clock.now_ns() // NS
        current = self._totp.timecode(datetime.fromtimestamp(now_s, UTC))
        for offset in (0, -1, 1):  # one step of clock skew either way
            counter = current + offset
            if hmac.compare_digest(self._totp.generate_otp(counter), code):
                if counter <= self._last_totp_counter:
                    return "that code was already used: wait for the next one"
                self._last_totp_counter = counter
                return None
        return "wrong second-factor code"

    async def arm(self, sender: Sender, args: list[str], ref: str) -> Reply:
        if not args:
            raise ParseError(f"usage: {ARM_USAGE}")
        ttl = parse_ttl(args[0], what="arming time")
        extra = args[1:]
        if self._totp is None and extra:
            raise ParseError(f"unexpected {' '.join(extra)!r}: usage {ARM_USAGE}")
        if len(extra) > 1:
            raise ParseError(f"usage: {ARM_USAGE}")
        if ttl > self.arming.max_ttl_s:
            return refused(f"❌ {duration(ttl)} exceeds the maximum arming time {duration(self.arming.max_ttl_s)}. Not armed.")
        if self._totp is not None:
            problem = self._verify_totp(extra[0] if extra else None)
            if problem is not None:
                return refused(f"❌ Not armed: {esc(problem)}.", failure="second factor", detail=problem)
        if self.safety.state in _STOPPED:
            return refused(f"🛑 Not armed: trading state is <b>{self.safety.state}</b> ({esc(self.safety.reason)}). /resume first.")
        if self.kill_file is not None and self.kill_file.exists():
            return refused(f"🛑 Not armed: the kill file {esc(self.kill_file)} exists. Remove it and /resume first.")
        if self.require_arming and not self.approval.approved:
            return refused(
                f"🔒 Not armed: the running configuration is not approved. Review it, then /approve {self.approval.current_hash[:16]}."
            )
        if self.arming.is_armed():
            return refused(
                f"🔓 Already armed ({duration(self.arming.remaining_s())} left). A window is never extended: /disarm first to start a new one."
            )

        def do() -> int:
            return self.arming.arm(ttl, sender.label)

        try:
            expires = await in_engine(self.engine, do, self.timeout_s)
        except ArmingRefused as exc:
            return refused(f"❌ Not armed: {esc(exc)}")
        note = "" if self.require_arming else "\n<i>DRY_RUN: execution does not need arming; this arms for rehearsal.</i>"
        return Reply(
            f"🔓 <b>ARMED</b> for {duration(ttl)}, until {utc_time(expires)}. One window, never renewed; /disarm, SAFE or a kill revoke it. "
            f"Intents staged now can be confirmed within it.{note}",
            detail=f"armed {ttl}s",
        )

    async def disarm(self, sender: Sender, args: list[str], ref: str) -> Reply:
        was = await in_engine(self.engine, lambda: self.arming.disarm(f"/disarm by {sender.label}"), self.timeout_s)
        if not was:
            return Reply("🔒 Not armed (nothing to revoke).", detail="was not armed")
        return Reply("🔒 <b>Disarmed.</b> Staged intents of that window are void; running mandates ended.", detail="disarmed")

    # ------------------------------------------------------------------ kill and resume
    async def kill(self, sender: Sender, args: list[str], ref: str) -> Reply:
        reason = f"/kill by {sender.label}"
        # SAFE first, synchronously: from this instant no new order passes the gate, whatever the engine is doing
        self.safety.kill(reason)
        self.arming.disarm(reason)
        self.book.void_all(reason, self.clock.now_ns())
        try:
            cancelled = await in_engine(self.engine, lambda: self.engine.oms.cancel_all(reason="operator kill"), self.timeout_s)
        except EngineTimeout:
            return Reply(
                "🛑 <b>KILLED</b>: trading state SAFE, arming revoked, staged intents void. The engine did not answer in time: "
                "cancels are queued. Check /orders.",
                outcome="error", detail="kill: cancel timed out",
            )
        left = len(self.engine.oms.live)
        tail = f" {left} order(s) still open: check /orders." if left else ""
        return Reply(
            f"🛑 <b>KILLED</b>: trading state SAFE, {cancelled} resting order(s) cancelled, arming revoked, staged intents void.{tail} "
            "/resume runs the recovery checklist.",
            detail=f"kill: {cancelled} cancelled",
        )

    async def resume(self, sender: Sender, args: list[str], ref: str) -> Reply:
        if self.safety.state is TradingState.ACTIVE:
            return Reply("🟢 Trading state is already ACTIVE.", detail="already active")
        ok, checks = await in_engine(self.engine, lambda: self.safety.resume(sender.label), self.timeout_s)
        lines = [f"{'✅' if c.ok else '❌'} {esc(c.name)}" + (f": {esc(c.detail)}" if c.detail else "") for c in checks]
        if not checks:
            lines.append("(no recovery checks registered)")
        if not ok:
            missing = ", ".join(c.name for c in checks if not c.ok)
            return refused("🛑 <b>Still " + esc(self.safety.state) + "</b>: the recovery checklist is not complete.\n" + "\n".join(lines),
                           detail=f"resume refused: missing {missing}")
        tail = "\nLIVE still needs a fresh /arm." if self.require_arming else ""
        return Reply("🟢 <b>Trading state ACTIVE.</b>\n" + "\n".join(lines) + tail, detail="resumed")

    # ------------------------------------------------------------------ configuration and reports
    async def approve(self, sender: Sender, args: list[str], ref: str) -> Reply:
        prefix = parse_hash_prefix(args[0] if args else None, command="approve")
        ok, message = await self.approval.approve(prefix, sender.label)
        if not ok:
            return refused(f"❌ {esc(message)}", failure="bad hash")
        return Reply(f"✅ {esc(message)}.", detail=message)

    async def report(self, sender: Sender, args: list[str], ref: str) -> Reply:
        if self.report_provider is None:
            return refused("The daily report is not available in this build.")
        html, png = await self.report_provider()
        return Reply(html, photo=png, detail="report")

    async def incident(self, sender: Sender, args: list[str], ref: str) -> Reply:
        """``/incident`` (the open one), ``/incident new <text>``, ``/incident <id> <field> <text>``."""
        desk = self.incidents
        if desk is None:
            return refused("Incident reports are not available in this build.")
        if not args:
            inc = await desk.open_incident()
            if inc is None:
                recent = await desk.recent(3)
                if not recent:
                    return Reply("No incident reports.")
                return Reply("No open incident. Recent: " + ", ".join(esc(i.incident_id) for i in recent))
            return Reply(desk.render(inc))
        if args[0].lower() == "new":
            if len(args) < 2:
                raise ParseError("usage: /incident new <what happened>")
            inc = await desk.open_manual(" ".join(args[1:]), sender.label)
            return Reply(desk.render(inc), detail=f"incident {inc.incident_id} opened")
        if len(args) < 3:
            raise ParseError("usage: /incident <id> root_cause|mitigation|follow_up|impact|note <text>")
        try:
            inc = await desk.annotate(args[0], args[1].lower(), " ".join(args[2:]), sender.label)
        except ValueError as exc:  # IncidentError: an operator-readable message
            raise ParseError(str(exc)) from None
        return Reply(desk.render(inc), detail=f"incident {inc.incident_id} {args[1].lower()}")

    async def help(self, sender: Sender, args: list[str], ref: str) -> Reply:
        lines = ["<b>Commands</b>"]
        for s in self.commands.values():
            lines.append(f"<code>{esc(s.example)}</code> — {esc(s.summary)}")
        lines.append(
            "Mandate: <code>/intent quote max_notional=500 max_orders=100 max_loss=20 expiry=30m</code> lets a running strategy "
            "trade within those bounds once confirmed."
        )
        lines.append("Confirm with at least the first 10 characters of the hash; each hash works once and expires.")
        return Reply("\n".join(lines))

    # ------------------------------------------------------------------ read-only views
    async def orders(self, sender: Sender, args: list[str], ref: str) -> Reply:
        return Reply(orders_html(list(self.engine.oms.live.values()), self.engine.instruments))

    async def positions(self, sender: Sender, args: list[str], ref: str) -> Reply:
        return Reply(positions_html(self.engine.portfolio, self.engine.market, self.engine.instruments))

    async def pnl(self, sender: Sender, args: list[str], ref: str) -> Reply:
        today = self.pnl_today() if self.pnl_today is not None else None
        body = pnl_html(self.engine.portfolio, self.engine.market, "since start of this run")
        return Reply(body + (f"\nToday: {today}" if today else ""))

    async def status(self, sender: Sender, args: list[str], ref: str) -> Reply:
        return Reply(self.status_html(sender.user_id))

    def status_html(self, user_id: int | None = None) -> str:
        e = self.engine
        now = self.clock.now_ns()
        mono = self.clock.monotonic_ns()
        engine_mono = e.clock.monotonic_ns()  # market data ages are in the engine's time (event time in DRY_RUN)
        s = self.safety
        lines = [
            f"<b>{esc(e.mode.value)}</b> · {STATE_ICON[s.state]} <b>{esc(s.state)}</b>"
            + (f" ({esc(s.code)})" if s.code else "") + f": {esc(s.reason)}"
        ]
        if self.kill_file is not None and self.kill_file.exists():
            lines.append(f"🛑 kill file present: {esc(self.kill_file)}")
        if self.arming.is_armed():
            lines.append(f"🔓 Armed: {duration(self.arming.remaining_s())} left (until {utc_time(self.arming.expires_ns or 0)}, by {esc(self.arming.armed_by)})")
        else:
            lines.append("🔒 Not armed" + ("" if self.require_arming else " (not needed in DRY_RUN)"))
        if not self.approval.approved:
            lines.append(f"⚠️ Configuration not approved: /approve {self.approval.current_hash[:16]}")
        feeds = []
        for asset in sorted(e.instruments):
            seen = e.market.last_update_mono_ns.get(asset)
            if seen is None:
                feeds.append(f"{esc(asset)} no data ⚠️")
            else:
                age = (engine_mono - seen) / NS
                feeds.append(f"{esc(asset)} {age:.1f}s" + (" ⚠️" if age > self.feed_stale_s else ""))
        lines.append("Feeds: " + ", ".join(feeds))
        pos = [p for p in e.portfolio.positions.values() if p.qty != 0]
        lines.append("Positions: " + ("; ".join(f"{esc(p.asset)} {signed_qty(p.qty, units(p.asset)[0])}" for p in sorted(pos, key=lambda p: p.asset)) or "flat"))
        live = list(e.oms.live.values())
        buys = sum(1 for o in live if o.side.sign > 0)
        lines.append(f"Open orders: {len(live)}" + (f" ({buys} buy, {len(live) - buys} sell)" if live else ""))
        realised, unrealised, fees = e.pnl()
        quotes = {units(a)[1] for a in e.instruments}
        quote = quotes.pop() if len(quotes) == 1 else "quote"
        today = self.pnl_today() if self.pnl_today is not None else None
        lines.append(
            f"PnL today: {today}" if today else
            f"PnL (this run): {money(realised + unrealised - fees, quote, signed=True)} net, fees {money(fees, quote)}"
        )
        pending = self.book.pending(now)
        mandates = self.book.active_mandates()
        lines.append(f"Staged intents: {len(pending)} · mandates running: {len(mandates)}")
        lines.extend("  " + mandate_progress(m, now) for m in mandates[:3])
        recon = self.reconciliation() if self.reconciliation is not None else None
        lines.append(f"Reconciliation: {recon or 'n/a'}")
        locks = self.lockouts.active()
        if locks:
            lines.append("🔒 Lockouts: " + ", ".join(f"user {u} until {utc_time(t)}" + (" (you)" if u == user_id else "") for u, t in sorted(locks.items())))
        uptime = (mono - self.started_mono) / NS
        lines.append(f"<i>v{esc(self.version)} · up {duration(uptime)} · run {esc(self.run_id[:8])}</i>")
        return "\n".join(lines)

    # ------------------------------------------------------------------ housekeeping
    async def expire_due(self) -> None:
        """Arming expiry and staged-intent expiry (their listeners alert and void). Run every second or so."""

        def do() -> None:
            self.arming.check_expiry()
            self.book.expire_due(self.clock.now_ns())

        await in_engine(self.engine, do, self.timeout_s)
