"""What the control plane does when something happens elsewhere: revoke, void, and alert.

- Trading state SAFE or HALTED (a kill included): arming is revoked, every staged intent is voided and every
  mandate ends; a CRITICAL alert says why. REDUCING is a WARNING; back to ACTIVE is a WARNING too (a human
  resumed).
- Arming ends (``/disarm``, expiry, SAFE): in LIVE every staged intent and mandate of that window is voided;
  an alert says so.
- Mandates that end, fills, rejections: alerts.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.control.arming import Arming
from bot.control.fmt import esc, money, price, qty, units
from bot.control.staging import IntentBook, Staged
from bot.domain.errors import ErrorCode
from bot.domain.instrument import Instrument
from bot.domain.ports import Clock, Notifier
from bot.domain.venue import ExecutionReport
from bot.risk.safety import TradingState

_STOPPED = (TradingState.SAFE, TradingState.HALTED)


class ControlEvents:
    def __init__(
        self,
        *,
        notifier: Notifier,
        clock: Clock,
        arming: Arming,
        book: IntentBook,
        instruments: Mapping[str, Instrument],
        require_arming: bool,
    ) -> None:
        self.notifier = notifier
        self.clock = clock
        self.arming = arming
        self.book = book
        self.instruments = instruments
        self.require_arming = require_arming
        # False when another part announces trading-state changes (the service: risk and ops' incident desk)
        self.announce_trading_state = True

    # SafetyController listener
    def on_trading_state(self, old: TradingState, new: TradingState, code: ErrorCode | None, reason: str) -> None:
        label = f"{new}" + (f" ({code})" if code else "")
        announce = self.announce_trading_state
        if new in _STOPPED:
            voided = self.book.void_all(f"trading state {new}: {reason}", self.clock.now_ns())
            was_armed = self.arming.expires_ns is not None
            kill = code is ErrorCode.KILL_SWITCH
            head = "🛑 <b>KILL</b>" if kill else f"<b>Trading state {esc(label)}</b>"
            text = f"{head}: {esc(reason)}. New orders stop" + ("; arming revoked" if was_armed else "")
            if voided:
                text += f"; {len(voided)} staged intent(s)/mandate(s) voided"
            text += ". Leaving it takes /resume (recovery checklist)" + (" and a fresh /arm." if self.require_arming else ".")
            if announce:
                self.notifier.alert("CRITICAL", f"state:{new}:{code}", text)
            self.arming.disarm(f"trading state {new}: {reason}")
        elif not announce:
            return
        elif new is TradingState.REDUCING:
            self.notifier.alert("WARNING", f"state:{new}:{code}", f"<b>Trading state {esc(label)}</b>: {esc(reason)}. Only orders that reduce exposure.")
        elif old is not TradingState.ACTIVE and new is TradingState.ACTIVE:
            extra = " LIVE still needs /arm." if self.require_arming else ""
            self.notifier.alert("WARNING", f"state:{new}:{self.clock.now_ns()}", f"✅ <b>Trading state ACTIVE</b> again (was {esc(old)}): {esc(reason)}.{extra}")

    # Arming listener
    def on_arming(self, armed: bool, reason: str) -> None:
        if armed:
            self.notifier.alert("INFO", f"arming:on:{self.arming.epoch}", f"🔓 <b>Armed</b>: {esc(reason)}.")
            return
        voided = self.book.void_all(f"arming ended: {reason}", self.clock.now_ns()) if self.require_arming else []
        text = "🔒 <b>Arming expired</b>" if reason == "arming expired" else f"🔒 <b>Disarmed</b>: {esc(reason)}"
        if voided:
            text += f"; {len(voided)} staged intent(s)/mandate(s) voided"
        self.notifier.alert("WARNING", f"arming:off:{self.arming.epoch}", text + ".")

    # LiveGate listener
    def on_mandate_end(self, entry: Staged, reason: str) -> None:
        m = entry.mandate
        assert m is not None
        self.notifier.alert(
            "WARNING", f"mandate:{entry.hash}",
            f"⏹ <b>Mandate</b> <code>{entry.short}</code> ({esc(m.strategy_id)}) ended: {esc(reason)}. Used {money(m.used_notional, m.quote)} "
            f"of {money(m.max_notional, m.quote)}, {m.used_orders}/{m.max_orders} orders.",
        )

    # GatedVenue report listener
    def on_report(self, report: ExecutionReport) -> None:
        fill = report.fill
        if fill is not None:
            base, quote = units(fill.asset)
            inst = self.instruments.get(fill.asset)
            self.notifier.alert(
                "INFO", f"fill:{fill.venue}:{fill.fill_id}",
                f"💱 <b>Fill</b> {esc(fill.side.value)} {qty(fill.qty, base)} {esc(fill.asset)} @ "
                f"{price(fill.price, quote, inst.tick_size if inst else None)} (fee {money(fill.fee_quote, quote, 4)}, "
                f"{'maker' if fill.is_maker else 'taker'}) · <code>{esc(report.client_order_id)}</code>",
            )
            return
        self.notifier.alert(
            "WARNING", f"reject:{report.client_order_id}",
            f"❌ <b>Order rejected</b> <code>{esc(report.client_order_id)}</code>: {esc(report.code or '')} {esc(report.reason)}",
        )
