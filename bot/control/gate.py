"""The LIVE execution gate and the venue guard behind it.

``LiveGate`` implements the engine's ``ExecutionGate`` for running strategies' intents (after risk approved
them): an intent covered by a confirmed, running mandate of its strategy executes (while armed); any other is
staged for an operator's confirmation and pushed to the chat (at most one per strategy per
``push_interval_s``; the rest are refused and counted). Operator confirmations issue a one-shot *permit*.

``GatedVenue`` wraps the venue the OMS talks to: ``place_order`` refuses any order without a permit for its
intent (and, in LIVE, without an unexpired arming), whatever code path produced it. So nothing reaches a LIVE
venue unless an operator armed, and confirmed that intent or a mandate covering it. It also reports rejections
and fills to the control plane (alerts).

``SafetyGate`` wraps another gate (DRY_RUN's ``AutoGate``) so SAFE and HALTED stop new orders at the gate too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.control.arming import Arming
from bot.control.stager import Stager
from bot.control.staging import EntryStatus, IntentBook, Staged
from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.intent import Intent
from bot.domain.money import ZERO
from bot.domain.order import OrderStatus
from bot.domain.ports import AuditSink, Clock, ReportSink, Venue
from bot.domain.position import Portfolio
from bot.domain.venue import ExecutionReport, OrderRequest, VenueError, VenueOrder
from bot.engine.loop import Admission, ExecutionGate
from bot.engine.market_state import MarketState
from bot.risk.safety import SafetyController, TradingState

log = logging.getLogger(__name__)

NS = 1_000_000_000
_STOPPED = (TradingState.SAFE, TradingState.HALTED)
_MAYBE_PLACED = (ErrorCode.UNKNOWN_ORDER_STATUS, ErrorCode.VENUE_UNAVAILABLE)

StagedListener = Callable[[Staged, int], None]  # (entry, intents suppressed since the last push)
MandateEndListener = Callable[[Staged, str], None]


def strategy_net_pnl(portfolio: Portfolio, market: MarketState, strategy_id: str) -> Decimal:
    total = ZERO
    for (sid, asset), pos in portfolio.by_strategy.items():
        if sid == strategy_id:
            tick = market.last.get(asset)
            total += pos.net_pnl(tick.mid if tick is not None else None)
    return total


def _gate_verdict(audit: AuditSink, intent: Intent, approved: bool, code: ErrorCode | None, reason: str, inputs: dict[str, Any] | None = None) -> None:
    audit.record(
        "risk_verdict",
        {
            "strategy_id": intent.strategy_id,
            "intent_id": intent.id,
            "stage": "gate",
            "approved": approved,
            "code": code.value if code else None,
            "reason": reason,
            "inputs": inputs or {},
        },
    )


class LiveGate:
    def __init__(
        self,
        *,
        clock: Clock,
        audit: AuditSink,
        book: IntentBook,
        stager: Stager,
        arming: Arming,
        safety: SafetyController,
        require_arming: bool,
        market: MarketState,
        portfolio: Portfolio,
        instruments: Mapping[str, Instrument],
        push_interval_s: int,
    ) -> None:
        self.clock = clock
        self.audit = audit
        self.book = book
        self.stager = stager
        self.arming = arming
        self.safety = safety
        self.require_arming = require_arming
        self.market = market
        self.portfolio = portfolio
        self.instruments = instruments
        self.push_interval_ns = push_interval_s * NS
        self._permits: dict[str, str] = {}  # intent id -> what allowed it (confirmation hash / mandate hash)
        self._last_push: dict[str, int] = {}
        self._suppressed: dict[str, int] = {}
        self.refused = 0
        self.executed_under_mandate = 0
        self.staged_listeners: list[StagedListener] = []
        self.mandate_end_listeners: list[MandateEndListener] = []

    # ------------------------------------------------------------------ ExecutionGate
    def admit(self, intent: Intent) -> Admission:
        now = self.clock.now_ns()
        if self.safety.state in _STOPPED:
            return self._refuse(intent, ErrorCode.SAFE_MODE, f"trading state {self.safety.state}: no new orders")
        if self.require_arming and not self.arming.is_armed():
            return self._refuse(intent, ErrorCode.NOT_ARMED, "not armed: strategy intents are neither staged nor executed")
        entry = self.book.active_mandate(intent.strategy_id)
        if entry is not None and entry.mandate is not None:
            m = entry.mandate
            notional = self.notional(intent)
            loss = m.start_pnl - strategy_net_pnl(self.portfolio, self.market, m.strategy_id)
            reason = m.refusal(intent, notional, now, loss)
            if self.require_arming and entry.arming_epoch != self.arming.epoch:
                reason = "the arming window of the mandate ended"
            if reason is None and notional is not None:
                m.used_orders += 1
                m.used_notional += notional
                self._permits[intent.id] = entry.hash
                self.executed_under_mandate += 1
                _gate_verdict(
                    self.audit, intent, True, None, f"covered by mandate {entry.short}",
                    {"mandate": entry.hash, "notional": notional, "used_notional": m.used_notional, "used_orders": m.used_orders},
                )
                if m.exhausted:
                    self.end_mandate(entry, "bounds used up")
                return Admission.EXECUTE
            if m.exhausted or now >= m.ends_ns or loss >= m.max_loss or reason.startswith("the arming"):  # type: ignore[union-attr]
                self.end_mandate(entry, reason or "ended")
        return self._stage(intent, now)

    def _stage(self, intent: Intent, now: int) -> Admission:
        sid = intent.strategy_id
        last = self._last_push.get(sid)
        if last is not None and now - last < self.push_interval_ns:
            self._suppressed[sid] = self._suppressed.get(sid, 0) + 1
            return self._refuse(intent, ErrorCode.NOT_CONFIRMED, "not staged: one staged intent per strategy per push interval (confirm a mandate to let it run)")
        entry = self.stager.stage_order(intent, "passed", source="strategy", staged_by=f"strategy {sid}", user_id=None)
        self._last_push[sid] = now
        suppressed = self._suppressed.pop(sid, 0)
        _gate_verdict(self.audit, intent, False, ErrorCode.NOT_CONFIRMED, f"staged for confirmation as {entry.short}", {"hash": entry.hash})
        for fn in self.staged_listeners:
            try:
                fn(entry, suppressed)
            except Exception:
                log.exception("staged-intent listener failed")
        return Admission.STAGED

    def _refuse(self, intent: Intent, code: ErrorCode, reason: str) -> Admission:
        self.refused += 1
        _gate_verdict(self.audit, intent, False, code, reason)
        return Admission.REFUSED

    # ------------------------------------------------------------------ mandates and permits
    def end_mandate(self, entry: Staged, reason: str) -> None:
        if entry.status is not EntryStatus.ACTIVE:
            return
        entry.close(EntryStatus.ENDED, reason, self.clock.now_ns())
        self.audit.record(
            "state_transition",
            {"kind": "mandate", "scope": f"strategy:{entry.strategy_id}", "from_state": "ACTIVE", "to_state": "ENDED", "reason": f"{entry.short}: {reason}"},
        )
        for fn in self.mandate_end_listeners:
            try:
                fn(entry, reason)
            except Exception:
                log.exception("mandate-end listener failed")

    def notional(self, intent: Intent) -> Decimal | None:
        price = intent.limit_price
        if price is None:
            tick = self.market.last.get(intent.asset)
            price = tick.mid if tick is not None else None
        if price is None:
            return None
        inst = self.instruments.get(intent.asset)
        return inst.notional(intent.qty, price) if inst is not None else intent.qty * price

    def permit(self, intent_id: str, why: str) -> None:
        """One order for this intent may pass the venue guard (an operator confirmed it)."""
        self._permits[intent_id] = why

    def revoke(self, intent_id: str) -> None:
        self._permits.pop(intent_id, None)

    def take_permit(self, intent_id: str) -> str | None:
        """Consume the permit of ``intent_id``. Returns why the order is refused, or None when it may go."""
        if self.require_arming and not self.arming.is_armed():
            self._permits.pop(intent_id, None)
            return "not armed"
        if self._permits.pop(intent_id, None) is None:
            return "no confirmed intent or mandate covers it"
        return None


class SafetyGate:
    """DRY_RUN: the inner gate (``AutoGate``) behind a SAFE / HALTED stop."""

    def __init__(self, inner: ExecutionGate, safety: SafetyController, audit: AuditSink) -> None:
        self.inner = inner
        self.safety = safety
        self.audit = audit

    def admit(self, intent: Intent) -> Admission:
        if self.safety.state in _STOPPED:
            _gate_verdict(self.audit, intent, False, ErrorCode.SAFE_MODE, f"trading state {self.safety.state}: no new orders")
            return Admission.REFUSED
        return self.inner.admit(intent)


ReportListener = Callable[[ExecutionReport], None]


class GatedVenue:
    """The venue as the OMS sees it. ``permits`` None: no gate (DRY_RUN), observation only."""

    def __init__(self, inner: Venue, permits: LiveGate | None, report_listeners: Sequence[ReportListener] = ()) -> None:
        self._inner = inner
        self._permits = permits
        self.report_listeners: list[ReportListener] = list(report_listeners)
        self.refused: list[OrderRequest] = []

    @property
    def name(self) -> str:
        return self._inner.name

    def __getattr__(self, item: str) -> Any:  # on_tick, on_book, fills... of the wrapped venue
        return getattr(self._inner, item)

    async def connect(self) -> None:
        await self._inner.connect()

    async def close(self) -> None:
        await self._inner.close()

    async def load_instruments(self) -> Mapping[str, Instrument]:
        return await self._inner.load_instruments()

    def set_report_sink(self, sink: ReportSink) -> None:
        def observed(report: Any) -> None:  # ExecutionReport | PositionUpdate
            sink(report)
            if isinstance(report, ExecutionReport):
                self._observe(report)

        self._inner.set_report_sink(observed)

    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        if self._permits is not None:
            intent_id = request.client_order_id.rsplit("-", 1)[0]
            refusal = self._permits.take_permit(intent_id)
            if refusal is not None:
                self.refused.append(request)
                log.error("LIVE gate refused order %s: %s", request.client_order_id, refusal)
                exc = VenueError(
                    ErrorCode.NOT_ARMED if refusal == "not armed" else ErrorCode.NOT_CONFIRMED,
                    f"refused by the LIVE gate: {refusal}",
                )
                self._observe_error(request, exc)
                raise exc
        try:
            report = await self._inner.place_order(request)
        except VenueError as exc:
            if exc.code not in _MAYBE_PLACED:
                self._observe_error(request, exc)
            raise
        self._observe(report)
        return report

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport:
        return await self._inner.cancel_order(asset, client_order_id, venue_order_id)

    async def fetch_order(self, asset: str, client_order_id: str) -> VenueOrder | None:
        return await self._inner.fetch_order(asset, client_order_id)

    async def get_open_orders(self, asset: str | None = None) -> Sequence[VenueOrder]:
        return await self._inner.get_open_orders(asset)

    async def get_balances(self) -> Mapping[str, Any]:
        return await self._inner.get_balances()

    async def get_positions(self) -> Mapping[str, Decimal]:
        return await self._inner.get_positions()

    async def fetch_position_snapshot(self, asset: str) -> Decimal:
        return await self._inner.fetch_position_snapshot(asset)

    async def fetch_fills(self, asset: str, since_fill_id: str | None = None) -> Sequence[Fill]:
        return await self._inner.fetch_fills(asset, since_fill_id)

    def _observe_error(self, request: OrderRequest, exc: VenueError) -> None:
        self._observe(
            ExecutionReport(
                venue=self.name, client_order_id=request.client_order_id, venue_order_id=None, status=OrderStatus.REJECTED,
                ts_ns=0, local_ts_ns=0, code=exc.code, reason=exc.message,
            )
        )

    def _observe(self, report: ExecutionReport) -> None:
        if report.status is OrderStatus.REJECTED or report.fill is not None:
            for fn in self.report_listeners:
                try:
                    fn(report)
                except Exception:
                    log.exception("venue report listener failed")


__all__ = ["GatedVenue", "LiveGate", "SafetyGate", "strategy_net_pnl"]
