"""Order tracking: gated, idempotent submission; execution reports through the state machine; the running
sum of fills; dirty flags; spam guards.

The venue is the source of truth and the OMS never invents fills: an order's filled quantity is the sum of
its unique fills, never a status field, and the position is the signed sum of unique fills (spec 4.7.1).
Every placement, cancel, fill, refusal and refused transition is audited (see bot/oms/recorder.py).
Runs inside the engine loop (one writer); nothing here is safe to call from another task except reads.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from bot.domain.errors import DomainError, ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument, PositionSemantics
from bot.domain.intent import Intent, OrderType, Side, TimeInForce
from bot.domain.money import ZERO
from bot.domain.order import LIVE_STATES, Order, OrderStatus
from bot.domain.ports import AuditSink, Clock, Venue
from bot.domain.position import Portfolio
from bot.domain.streams import SequenceGap
from bot.domain.venue import ExecutionReport, OrderRequest, PositionUpdate, VenueError, VenueOrder
from bot.oms.feed import FeedHealth
from bot.oms.fills import FillSequence, RateLookup, SeqOutcome, fee_in_quote
from bot.oms.gating import Gates, Refusal
from bot.oms.limits import OmsLimits
from bot.oms.recorder import AlertCallback, OmsRecorder, SafeCallback

log = logging.getLogger(__name__)

FillListener = Callable[[Fill, Order], None]
S = OrderStatus
# a failed submit whose order may nevertheless exist at the venue: look it up by client id, never resubmit
_MAYBE_PLACED = frozenset({ErrorCode.UNKNOWN_ORDER_STATUS, ErrorCode.VENUE_UNAVAILABLE})
# a failed cancel whose outcome is unknown: keep PENDING_CANCEL, reconciliation re-sends or resolves it
_CANCEL_OUTCOME_UNKNOWN = frozenset({ErrorCode.UNKNOWN_ORDER_STATUS, ErrorCode.VENUE_UNAVAILABLE, ErrorCode.RATE_LIMITED})
_TERMINAL_EVENT = {S.CANCELED: "canceled", S.EXPIRED: "expired", S.REJECTED: "reject"}
# A fill's time may differ a little between the stream and REST, and the venue's clock from ours: an unknown fill
# is refused as beyond the dedup horizon only when it is older than the retention by more than this.
FILL_TIME_SLACK_NS = 60 * 1_000_000_000
RETIRE_EVERY_NS = 1_000_000_000  # how often (event time) check_timers looks for orders and fill ids to forget


def client_order_id(intent_id: str, attempt: int) -> str:
    """Deterministic from the intent id and the attempt (Binance allows 36 chars of [.A-Za-z0-9:/_-]).

    Intent ids are ``<run prefix>-<n>`` and the run prefix comes from the run id, so client order ids are
    unique across restarts as well as within a run.
    """
    coid = f"{intent_id}-{attempt}"
    if len(coid) > 36:
        raise ValueError(f"client order id {coid!r} is longer than 36 characters")
    return coid


class OrderManager:
    def __init__(
        self,
        *,
        venue: Venue,
        venue_name: str,
        portfolio: Portfolio,
        audit: AuditSink,
        clock: Clock,
        instruments: Mapping[str, Instrument],
        limits: OmsLimits | None = None,
        on_safe: SafeCallback | None = None,
        alert: AlertCallback | None = None,
        feed: FeedHealth | None = None,
        id_prefix: str | None = None,
        fee_rate: RateLookup | None = None,
        freshness_clock: Callable[[], int] | None = None,
    ) -> None:
        self.venue = venue
        self.venue_name = venue_name
        self.portfolio = portfolio
        self.audit = audit
        self.clock = clock
        self.instruments = instruments
        self.limits = limits or OmsLimits()
        self.id_prefix = id_prefix
        self.fee_rate = fee_rate
        self.rec = OmsRecorder(audit, on_safe, alert)
        self.gates = Gates(
            limits=self.limits,
            recorder=self.rec,
            venue_name=venue_name,
            feed=feed,
            assets=self.tracked_assets,
            freshness_clock=freshness_clock or clock.monotonic_ns,
        )
        self.orders: dict[str, Order] = {}
        self.live: dict[str, Order] = {}
        self.fill_listeners: list[FillListener] = []
        self._by_intent: dict[str, list[str]] = {}
        self._venue_rejected: set[str] = set()  # orders the venue itself refused (definitely never live)
        self._created_mono: dict[str, int] = {}
        self._pre_cancel: dict[str, OrderStatus] = {}
        self._awaiting_fills: dict[str, Decimal] = {}  # coid -> filled qty the venue reported beyond our fills
        self._retire: deque[tuple[int, str]] = deque()  # (last change ns, coid) of terminal orders, oldest first
        self._next_retire_ns = 0
        self.fill_seq: dict[str, FillSequence] = {}  # per asset: Fill.seq counts one asset's fills on one venue
        self.baseline: dict[str, Decimal] = {}  # venue position not made of this run's fills (holdings at start)
        self.base_fees: dict[str, Decimal] = {}  # spot fees charged in the base asset (they shrink the holding)
        self.fees_by_currency: dict[str, Decimal] = {}
        self.last_fill_mono: dict[str, int] = {}
        self.last_position_update: dict[str, tuple[Decimal, int]] = {}
        self.touched: set[str] = set()  # assets this run ever placed, tracked or got a fill in
        self.fills_applied = 0
        self.duplicate_fills = 0
        self.orphan_fills = 0
        self.orders_submitted = 0
        self.refusals = 0
        self.orders_retired = 0
        self.fill_ids_forgotten = 0
        self.fills_beyond_horizon = 0

    # ------------------------------------------------------------------ queries
    def live_orders(self, strategy_id: str | None = None, asset: str | None = None) -> list[Order]:
        return [
            o
            for o in self.live.values()
            if (strategy_id is None or o.strategy_id == strategy_id) and (asset is None or o.asset == asset)
        ]

    def open_exposure(self, asset: str) -> tuple[Decimal, Decimal]:
        buys = sells = ZERO
        for o in self.live.values():
            if o.asset == asset:
                if o.side is Side.BUY:
                    buys += o.open_qty
                else:
                    sells += o.open_qty
        return buys, sells

    def tracked_assets(self) -> list[str]:
        """Every asset the OMS has an interest in: configured instruments, positions, live orders."""
        assets = set(self.instruments) | set(self.portfolio.positions) | {o.asset for o in self.live.values()}
        return sorted(assets)

    def expected_venue_qty(self, asset: str) -> Decimal:
        """What the venue's position for ``asset`` should be: holdings at start + signed sum of fills - base fees."""
        return self.baseline.get(asset, ZERO) + self.portfolio.qty(asset) - self.base_fees.get(asset, ZERO)

    def check_new_order(self, asset: str) -> Refusal | None:
        """Why a new order for ``asset`` would be refused now (dirty, stream, unknown orders, rate...), or None."""
        return self.gates.check(asset, self.clock.monotonic_ns())

    @property
    def feed(self) -> FeedHealth | None:
        return self.gates.feed

    def status(self) -> dict[str, Any]:
        """A read-only summary for /status and snapshots."""
        now = self.clock.monotonic_ns()
        feed_ok = self.gates.observe_feed(now)
        return {
            "venue": self.venue_name,
            "open_orders": len(self.live),
            "unknown_orders": sorted(self.gates.unknown_orders),
            "dirty": {a: self.gates.dirty.get(a).reason for a in self.gates.dirty.assets()},  # type: ignore[union-attr]
            "feed_ok": feed_ok,
            "feed_reason": self.gates.feed_reason,
            "last_reconcile_ok_age_s": None
            if self.gates.last_reconcile_ok_ns is None
            else round((self.gates.freshness_clock() - self.gates.last_reconcile_ok_ns) / 1e9, 3),
            "fills": self.fills_applied,
            "duplicate_fills": self.duplicate_fills,
            "orphan_fills": self.orphan_fills,
            "orders_in_memory": len(self.orders),
            "orders_retired": self.orders_retired,
            "fills_beyond_horizon": self.fills_beyond_horizon,
            "missing_fill_seqs": {a: seq.missing for a, seq in self.fill_seq.items() if seq.missing_count()},
            "safe_requests": [(c.value, s, r) for c, s, r in self.rec.safe_requests],
        }

    # ------------------------------------------------------------------ timers (engine guard)
    def check_timers(self) -> None:
        """Stream staleness, dirty max age, reconciliation freshness. Cheap; run at the top of every iteration."""
        now = self.clock.monotonic_ns()
        self.gates.observe_feed(now)
        self.gates.overdue_dirty(now)
        self.gates.reconcile_freshness()
        now_ns = self.clock.now_ns()
        if now_ns >= self._next_retire_ns:
            self._next_retire_ns = now_ns + RETIRE_EVERY_NS
            self.retire(now_ns)

    # ------------------------------------------------------------------ memory horizon
    def retire(self, now_ns: int | None = None) -> int:
        """Forget terminal orders whose last change (and intent) is older than ``oms.retention_s``, and the ids
        of fills older than that. The audit store keeps all of it; what stays in memory is bounded by the
        retention, not by the length of the run. Returns how many orders were retired.

        Kept regardless of age: live and UNKNOWN orders, and orders the venue says are more filled than our fills
        (their asset stays dirty until the fills arrive). Afterwards an intent older than the retention is refused,
        a report for a retired order is audited as one for an order this OMS does not track, and an unknown fill
        older than the retention is never applied unverified (see ``_apply_fill``).
        """
        now = self.clock.now_ns() if now_ns is None else now_ns
        cutoff = now - self.limits.retention_ns
        queue = self._retire
        retired = 0
        while queue and queue[0][0] < cutoff:
            _, coid = queue.popleft()
            order = self.orders.get(coid)
            if order is None or not order.is_terminal:
                continue  # retired already (a second entry), or not terminal (cannot happen: terminal is final)
            last = max(order.updated_ns, order.intent_ts_ns)
            if last >= cutoff:
                queue.append((last, coid))  # changed since (a late fill): its turn comes again
                continue
            if coid in self._awaiting_fills:
                queue.append((now, coid))  # the venue reported fills we have not seen: keep it until they arrive
                continue
            del self.orders[coid]
            attempts = self._by_intent.get(order.intent_id)
            if attempts is not None:
                if coid in attempts:
                    attempts.remove(coid)
                if not attempts:
                    del self._by_intent[order.intent_id]
            self._venue_rejected.discard(coid)
            self._created_mono.pop(coid, None)
            self._pre_cancel.pop(coid, None)
            retired += 1
        self.orders_retired += retired
        self.fill_ids_forgotten += self.portfolio.seen_fill_ids.forget_before(cutoff)
        return retired

    def fill_horizon_ns(self) -> int:
        """Fills that happened before this (venue time) are beyond what the fill-id dedup still remembers."""
        return self.clock.now_ns() - self.limits.retention_ns + FILL_TIME_SLACK_NS

    def placed_by_this_run(self, client_order_id: str) -> bool:
        """A client order id this run's OMS made (carries the run's prefix): ours even if retired from memory."""
        return self.id_prefix is not None and client_order_id.startswith(self.id_prefix + "-")

    async def guard(self) -> None:
        """For ``Engine.guards``."""
        self.check_timers()

    # ------------------------------------------------------------------ state changes
    def _sync(self, order: Order) -> None:
        """Keep the live and unknown indexes in step with the order's status."""
        coid = order.client_order_id
        if order.status in LIVE_STATES:
            self.live[coid] = order
        else:
            self.live.pop(coid, None)
            self._created_mono.pop(coid, None)
        if order.status is S.UNKNOWN:
            self.gates.unknown_orders[coid] = order.asset
        else:
            self.gates.unknown_orders.pop(coid, None)
        if order.status is not S.PENDING_CANCEL:
            self._pre_cancel.pop(coid, None)
        if order.is_terminal:
            self._retire.append((order.updated_ns, coid))

    def _set_status(self, order: Order, dst: OrderStatus, event: str, code: ErrorCode | None = None, reason: str = "") -> bool:
        """Apply a transition from the table, or refuse and audit it (never applied)."""
        src = order.status
        if src is dst:
            return True  # duplicate report: idempotent
        try:
            order.transition(dst, self.clock.now_ns())
        except DomainError as exc:
            self.rec.order_event(order, "illegal", src, ErrorCode.ILLEGAL_TRANSITION, f"{exc.message} ({event}: {reason})".strip(), dst=dst)
            return False
        self.rec.order_event(order, event, src, code, reason)
        self._sync(order)
        return True

    def mark_dirty(self, asset: str, reason: str) -> None:
        self.gates.mark_dirty(asset, self.clock.monotonic_ns(), reason)

    def try_clean(self, asset: str, reason: str) -> bool:
        """Clean ``asset`` unless an order of it still waits for fills the venue says happened."""
        if self._awaiting_fills and any(self.orders[c].asset == asset for c in self._awaiting_fills):
            return False
        return self.gates.clean(asset, reason)

    # ------------------------------------------------------------------ building
    def build(self, intent: Intent, attempt: int = 0) -> Order:
        """Round to the venue grid and validate; raises DomainError(INVALID_ORDER)."""
        inst = self.instruments.get(intent.asset)
        if inst is None:
            raise DomainError(ErrorCode.INVALID_ORDER, f"unknown instrument {intent.asset}")
        qty = inst.round_qty(intent.qty)
        price = None
        if intent.order_type is not OrderType.MARKET:
            if intent.limit_price is None:
                raise DomainError(ErrorCode.INVALID_ORDER, f"{intent.order_type.value} order without a limit price")
            price = inst.round_price(intent.limit_price, is_buy=intent.side is Side.BUY)
        inst.validate_order(qty, price)
        return Order(
            client_order_id=client_order_id(intent.id, attempt),
            intent_id=intent.id,
            strategy_id=intent.strategy_id,
            venue=self.venue_name,
            asset=intent.asset,
            side=intent.side,
            qty=qty,
            order_type=intent.order_type,
            limit_price=price,
            tif=intent.tif,
            created_ns=self.clock.now_ns(),
            tag=intent.tag,
            reduce_only=intent.reduce_only,
            intent_ts_ns=intent.ts_ns,
        )

    def _refuse(self, intent: Intent, attempt: int, code: ErrorCode, reason: str) -> None:
        self.refusals += 1
        self.rec.bare_event(
            f"{intent.id}-{attempt}", "refused", strategy_id=intent.strategy_id, to_status=S.REJECTED.value, code=code, reason=reason
        )

    def _identity_problem(self, intent: Intent, attempt: int) -> str | None:
        if self.id_prefix and not intent.id.startswith(self.id_prefix + "-"):
            return f"intent id {intent.id!r} does not carry this run's prefix {self.id_prefix!r}: its client order id would not be unique across restarts"
        age_ns = self.clock.now_ns() - intent.ts_ns
        if age_ns > self.limits.retention_ns:
            # orders of intents this old may have been retired from memory: the one-order-per-intent check could not see them
            return f"intent {intent.id} is {age_ns / 1e9:.0f}s old, older than oms.retention_s ({self.limits.retention_s:g}s): never executed"
        prior = self._by_intent.get(intent.id)
        if prior:
            if attempt == 0 or any(c not in self._venue_rejected for c in prior):
                return f"intent {intent.id} was already submitted as {', '.join(prior)}: never a second order for the same intent"
        elif attempt != 0:
            return f"attempt {attempt} of intent {intent.id} without an earlier attempt"
        return None

    # ------------------------------------------------------------------ commands
    async def submit(self, intent: Intent, attempt: int = 0) -> Order | None:
        """Place one order for an approved intent. Returns None when refused (audited with the code).

        Never sends a second order for the same intent: a retry needs ``attempt`` > 0 and every earlier attempt
        refused by the venue itself. When the outcome of the send is unknown the order is looked up by client id.
        """
        problem = self._identity_problem(intent, attempt)
        if problem is not None:
            self._refuse(intent, attempt, ErrorCode.INVALID_ORDER, problem)
            return None
        try:
            order = self.build(intent, attempt)
        except (DomainError, ValueError) as exc:
            code = exc.code if isinstance(exc, DomainError) else ErrorCode.INVALID_ORDER
            self._refuse(intent, attempt, code, exc.message if isinstance(exc, DomainError) else str(exc))
            return None
        now = self.clock.monotonic_ns()
        refusal = self.gates.check(intent.asset, now)
        if refusal is not None:
            self._refuse(intent, attempt, refusal.code, refusal.reason)
            if refusal.code is ErrorCode.ORDER_RATE_LIMIT_BREACH:
                self.rec.safe(ErrorCode.ORDER_RATE_LIMIT_BREACH, intent.asset, refusal.reason, {"asset": intent.asset, "strategy_id": intent.strategy_id})
            return None
        self.rec.episode_over(ErrorCode.ORDER_RATE_LIMIT_BREACH, intent.asset)
        coid = order.client_order_id
        if coid in self.orders:  # cannot happen given the intent check; kept as the last line of defence
            self._refuse(intent, attempt, ErrorCode.INVALID_ORDER, f"client order id {coid} already used")
            return None
        self.gates.rate.record(intent.asset, now)
        self.touched.add(order.asset)
        self.orders[coid] = order
        self._created_mono[coid] = now
        self._by_intent.setdefault(intent.id, []).append(coid)
        self.audit.record(
            "order",
            {
                "strategy_id": order.strategy_id,
                "client_order_id": coid,
                "intent_id": order.intent_id,
                "correlation_id": intent.id,
                "venue": order.venue,
                "asset": order.asset,
                "side": order.side.value,
                "qty": order.qty,
                "order_type": order.order_type.value,
                "limit_price": order.limit_price,
                "tif": order.tif.value,
                "status": order.status.value,
            },
        )
        self._sync(order)
        self._set_status(order, S.PENDING_SUBMIT, "submit")
        self.orders_submitted += 1
        request = OrderRequest(coid, order.asset, order.side, order.qty, order.order_type, order.limit_price, order.tif, order.reduce_only)
        try:
            report = await self.venue.place_order(request)
        except VenueError as exc:
            if exc.code in _MAYBE_PLACED:
                await self._resolve_unknown(order, exc.code, exc.message)
            else:
                self._venue_rejected.add(coid)
                self._set_status(order, S.REJECTED, "reject", exc.code, exc.message)
            return order
        except Exception as exc:  # an adapter failure we cannot classify: the request may have gone out
            await self._resolve_unknown(order, ErrorCode.UNKNOWN_ORDER_STATUS, f"{type(exc).__name__}: {exc}")
            return order
        self.on_report(report)
        return order

    async def _resolve_unknown(self, order: Order, code: ErrorCode, message: str) -> None:
        """The submit may or may not have reached the venue: ask by client id before anything else, never resubmit."""
        self.rec.order_event(order, "lookup", order.status, code, f"submit outcome unknown ({message}); looking up by client id")
        try:
            snapshot = await self.venue.fetch_order(order.asset, order.client_order_id)
        except Exception as exc:
            reason = f"lookup failed ({type(exc).__name__}: {getattr(exc, 'message', exc)}); reconciliation will resolve it"
            self._to_unknown(order, code, reason)
            return
        if snapshot is None:
            self._to_unknown(order, code, "venue does not list it (yet); reconciliation looks again after the grace window")
            return
        self.apply_venue_order(order, snapshot, "lookup")

    def _to_unknown(self, order: Order, code: ErrorCode | None, reason: str) -> None:
        if order.status is S.UNKNOWN or order.is_terminal:
            return
        if self._set_status(order, S.UNKNOWN, "unknown", code, reason):
            self.rec.warn(f"oms:unknown:{order.client_order_id}", f"order {order.client_order_id} ({order.asset}) status unknown: {reason}")

    def apply_venue_order(self, order: Order, vo: VenueOrder, source: str) -> Decimal:
        """Adopt the venue's view of an order's status (never of its fills: those come only as fills, with ids).

        Returns the quantity the venue says is filled beyond the fills we have (0 when none); when positive the
        asset stays dirty until those fills arrive.
        """
        if vo.venue_order_id and not order.venue_order_id:
            order.venue_order_id = vo.venue_order_id
        st = vo.status
        if st in (S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.NEW, S.PENDING_SUBMIT):
            if order.status in (S.PENDING_SUBMIT, S.UNKNOWN):
                self._set_status(order, S.PARTIALLY_FILLED if order.filled_qty else S.ACCEPTED, "resolved", reason=f"{source}: venue has it {st.value}")
        elif st in (S.CANCELED, S.EXPIRED):
            if order.status is not S.FILLED and order.status is not st:
                self._set_status(order, st, _TERMINAL_EVENT[st], reason=f"{source}: venue has it {st.value}")
        elif st is S.REJECTED:
            if order.status not in (S.REJECTED, S.FILLED):
                self._venue_rejected.add(order.client_order_id)
                self._set_status(order, S.REJECTED, "reject", reason=f"{source}: venue has it REJECTED")
        return self._note_venue_filled(order, vo.filled_qty, source)

    def _note_venue_filled(self, order: Order, venue_filled: Decimal | None, source: str) -> Decimal:
        coid = order.client_order_id
        if venue_filled is None:
            return ZERO
        missing = venue_filled - order.filled_qty
        if missing > 0:
            if self._awaiting_fills.get(coid) != venue_filled:
                self._awaiting_fills[coid] = venue_filled
                self.mark_dirty(order.asset, f"{source}: venue reports {venue_filled} filled on {coid}, our fills sum to {order.filled_qty}")
            return missing
        self._awaiting_fills.pop(coid, None)
        return ZERO

    async def cancel(self, client_order_id: str, reason: str = "", *, churn: bool = True, retry: bool = False) -> bool:
        """Request a cancel. ``churn``: counts as a place/cancel cycle for the flip-flop detector (strategy
        cancels do; shutdown, kill and reconciliation cancels do not). ``retry``: send again even if a cancel is
        already pending. Returns True when the venue accepted the request."""
        order = self.live.get(client_order_id)
        if order is None:
            return False
        if order.status is S.PENDING_CANCEL and not retry:
            return True
        now = self.clock.monotonic_ns()
        if churn and order.filled_qty == 0 and order.status is not S.PENDING_CANCEL:
            cycles = self.gates.flipflop.record_cycle(order.asset, now)
            if cycles > self.limits.flipflop_max_cycles:
                self.rec.safe(
                    ErrorCode.FLIPFLOP_DETECTED,
                    order.asset,
                    f"{order.asset}: {cycles} place/cancel cycles within {self.limits.flipflop_window_s:g}s (limit {self.limits.flipflop_max_cycles})",
                    {"asset": order.asset, "cycles": cycles, "strategy_id": order.strategy_id},
                )
            else:
                self.rec.episode_over(ErrorCode.FLIPFLOP_DETECTED, order.asset)
        if order.status is not S.PENDING_CANCEL:
            self._pre_cancel[client_order_id] = order.status
            self._set_status(order, S.PENDING_CANCEL, "cancel_request", reason=reason)
        else:
            self.rec.order_event(order, "cancel_retry", order.status, reason=reason)
        try:
            report = await self.venue.cancel_order(order.asset, order.client_order_id, order.venue_order_id)
        except VenueError as exc:
            await self._cancel_failed(order, exc.code, exc.message)
            return False
        except Exception as exc:
            await self._cancel_failed(order, ErrorCode.UNKNOWN_ORDER_STATUS, f"{type(exc).__name__}: {exc}")
            return False
        self.on_report(report)
        return True

    async def _cancel_failed(self, order: Order, code: ErrorCode, message: str) -> None:
        self.rec.order_event(order, "cancel_failed", order.status, code, message)
        if code in _CANCEL_OUTCOME_UNKNOWN:
            return  # stays PENDING_CANCEL: reconciliation re-sends it if the venue still lists the order
        # the venue refused the cancel (typically: no such open order): ask what happened to it
        try:
            vo = await self.venue.fetch_order(order.asset, order.client_order_id)
        except Exception as exc:
            self._to_unknown(order, code, f"cancel refused and lookup failed ({type(exc).__name__})")
            return
        if vo is None:
            self._to_unknown(order, code, "cancel refused and the venue does not know the order")
            return
        if vo.status in (S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.NEW):
            self._revert_cancel(order, code, f"cancel refused, order still open at the venue: {message}")
        self.apply_venue_order(order, vo, "lookup after refused cancel")

    def _revert_cancel(self, order: Order, code: ErrorCode | None, reason: str) -> None:
        if order.status is not S.PENDING_CANCEL:
            return
        prior = self._pre_cancel.get(order.client_order_id)
        if prior in (S.PENDING_SUBMIT, S.UNKNOWN) and not order.venue_order_id:
            dst = S.UNKNOWN
        else:
            dst = S.PARTIALLY_FILLED if order.filled_qty else S.ACCEPTED
        self._set_status(order, dst, "cancel_rejected", code, reason)

    async def cancel_all(self, asset: str | None = None, reason: str = "") -> int:
        count = 0
        for order in list(self.live.values()):
            if asset is None or order.asset == asset:
                if await self.cancel(order.client_order_id, reason, churn=False):
                    count += 1
        return count

    # ------------------------------------------------------------------ venue events
    def on_event(self, event: ExecutionReport | PositionUpdate) -> None:
        """The venue's stream: order updates and fills, and position updates."""
        if type(event) is PositionUpdate:
            self.on_position(event)
        else:
            self.on_report(event)  # type: ignore[arg-type]

    def on_report(self, report: ExecutionReport) -> None:
        if type(report) is PositionUpdate:  # tolerated here so one sink serves both
            self.on_position(report)  # type: ignore[arg-type]
            return
        order = self.orders.get(report.client_order_id)
        if order is None:
            self.rec.bare_event(
                report.client_order_id,
                "unknown_order",
                venue_order_id=report.venue_order_id,
                to_status=report.status.value,
                reason="execution report for an order of this run retired from memory (terminal for longer than oms.retention_s)"
                if self.placed_by_this_run(report.client_order_id)
                else "execution report for an order this OMS does not track",
            )
            if report.fill is not None:
                self._apply_fill(None, report.fill, "stream")
            return
        if report.venue_order_id and not order.venue_order_id:
            order.venue_order_id = report.venue_order_id
        if report.fill is not None:
            self._apply_fill(order, report.fill, "stream")
        status = report.status
        if status is S.NEW:  # an adapter passing the venue's NEW through: it means acknowledged
            status = S.ACCEPTED
        if status in (S.PENDING_SUBMIT, S.PENDING_CANCEL):
            return  # the venue received the request; the outcome comes in a later report
        if status in (S.PARTIALLY_FILLED, S.FILLED):
            # filled quantity comes from fills only; a fill status without the fill is an acknowledgement
            if order.status in (S.PENDING_SUBMIT, S.UNKNOWN):
                self._set_status(order, S.PARTIALLY_FILLED if order.filled_qty else S.ACCEPTED, "ack")
            self._note_venue_filled(order, report.cum_filled_qty, "report")
            return
        if status is S.ACCEPTED:
            if order.status in (S.PENDING_SUBMIT, S.NEW, S.UNKNOWN):
                self._set_status(order, S.PARTIALLY_FILLED if order.filled_qty else S.ACCEPTED, "ack")
            elif order.status is S.PENDING_CANCEL and report.code is not None:
                self._revert_cancel(order, report.code, report.reason or "cancel rejected")
            elif order.status is not S.ACCEPTED and order.status is not S.PENDING_CANCEL:
                self.rec.order_event(order, "stale", order.status, reason=f"{status.value} report after {order.status.value}: not applied", dst=status)
            return
        if status in (S.CANCELED, S.EXPIRED, S.REJECTED):
            if order.status is S.FILLED:
                return  # already complete: a late cancel confirmation changes nothing
            if status is S.REJECTED and order.status in (S.PENDING_SUBMIT, S.UNKNOWN, S.NEW):
                self._venue_rejected.add(order.client_order_id)
            self._set_status(order, status, _TERMINAL_EVENT[status], report.code, report.reason)
            self._note_venue_filled(order, report.cum_filled_qty, "report")
            return
        self.rec.order_event(order, "stale", order.status, report.code, f"venue reported {status.value}: not a venue status, ignored", dst=status)

    def on_position(self, update: PositionUpdate) -> None:
        """A position update from the venue's stream: cleans a dirty asset when it agrees with our fills."""
        asset = update.asset
        expected = self.expected_venue_qty(asset)
        self.last_position_update[asset] = (update.qty, self.clock.monotonic_ns())
        if self.limits.agrees(expected, update.qty):
            if self.gates.dirty.is_dirty(asset):
                self.try_clean(asset, f"venue position update agrees: venue {update.qty}, internal {expected}")
        else:
            self.mark_dirty(asset, f"venue position update disagrees: venue {update.qty}, internal {expected}")

    def on_sequence_gap(self, gap: SequenceGap) -> None:
        """The venue adapter's ``on_gap`` callback. A fill gap (the adapter found fills the stream skipped)
        is SAFE material (spec 4.7.1) and makes the asset dirty; book gaps are market data, not ours."""
        if gap.kind != "fill":
            return
        reason = f"{gap.venue} {gap.stream} stream skipped fill(s) on {gap.asset}: expected {gap.expected}, received {gap.received}" + (
            f" ({gap.detail})" if gap.detail else ""
        )
        self.mark_dirty(gap.asset, reason)
        self.rec.safe(
            ErrorCode.FILL_SEQ_GAP,
            f"{gap.asset}@{gap.venue}:gap:{gap.ts_ns}",
            reason,
            {"asset": gap.asset, "expected": gap.expected, "received": gap.received, "detail": gap.detail},
            incident=True,
        )

    # ------------------------------------------------------------------ fills
    def apply_reconciled_fill(self, fill: Fill) -> bool:
        """A fill found by reconciliation (REST) that the stream never delivered: applied once, with its real id."""
        return self._apply_fill(self.orders.get(fill.client_order_id), fill, "reconciliation")

    def _apply_fill(self, order: Order | None, fill: Fill, source: str) -> bool:
        key = (fill.venue, fill.fill_id)
        if key in self.portfolio.seen_fill_ids:
            self.duplicate_fills += 1
            return False  # duplicate execution report: idempotent
        if fill.ts_ns < self.fill_horizon_ns():
            self._beyond_horizon(fill, source)
            return False
        now = self.clock.monotonic_ns()
        inst = self.instruments.get(fill.asset)
        fee_quote, fee_note = fee_in_quote(fill, inst, self.fee_rate)
        orphan = ""
        if order is not None:
            fill = replace(
                fill, fee_quote=fee_quote, intent_id=order.intent_id, strategy_id=order.strategy_id, client_order_id=order.client_order_id
            )
            src = order.status
            try:
                order.apply_fill(fill.fill_id, fill.qty, fill.price, fee_quote, fill.ts_ns)
            except DomainError as exc:
                orphan = exc.message
                fill = replace(fill, strategy_id="")
            else:
                self._sync(order)
                if order.client_order_id in self._awaiting_fills:
                    self._note_venue_filled(order, self._awaiting_fills[order.client_order_id], source)
        else:
            fill = replace(fill, fee_quote=fee_quote, strategy_id="")
            orphan = "fill for an order this OMS does not track"
        # the fill happened at the venue: it always counts in the account's running sum
        self.portfolio.apply_fill(fill)
        self.touched.add(fill.asset)
        self.fills_applied += 1
        ccy = fill.fee_currency.upper()
        if fill.fee:
            self.fees_by_currency[ccy] = self.fees_by_currency.get(ccy, ZERO) + fill.fee
            if inst is not None and inst.semantics is PositionSemantics.SPOT and ccy == inst.base:
                self.base_fees[fill.asset] = self.base_fees.get(fill.asset, ZERO) + fill.fee
        self.last_fill_mono[fill.asset] = now
        data: dict[str, Any] = {"source": source}
        if fee_note:
            data["fee_note"] = fee_note
        if orphan:
            data["orphan"] = orphan
        self.audit.record(
            "fill",
            {
                "strategy_id": fill.strategy_id or None,
                "fill_id": fill.fill_id,
                "client_order_id": fill.client_order_id,
                "venue_order_id": fill.venue_order_id or (order.venue_order_id if order else None),
                "intent_id": fill.intent_id,
                "venue": fill.venue,
                "asset": fill.asset,
                "side": fill.side.value,
                "qty": fill.qty,
                "price": fill.price,
                "fee": fill.fee,
                "fee_currency": fill.fee_currency,
                "fee_quote": fill.fee_quote,
                "is_maker": fill.is_maker,
                "seq": fill.seq,
                "venue_ts_ns": fill.ts_ns,
                "data": data,
            },
        )
        self.mark_dirty(fill.asset, f"fill {fill.fill_id} ({source})")
        if fill.seq is not None:
            self._check_seq(fill)
        if orphan:
            self.orphan_fills += 1
            if order is not None:
                self.rec.order_event(order, "orphan_fill", order.status, ErrorCode.POSITION_MISMATCH, f"{fill.qty}@{fill.price} id={fill.fill_id}: {orphan}")
                self.rec.safe(
                    ErrorCode.POSITION_MISMATCH,
                    fill.asset,
                    f"fill {fill.fill_id} on {order.client_order_id} does not fit the order: {orphan}",
                    {"fill_id": fill.fill_id, "client_order_id": order.client_order_id, "qty": fill.qty, "order_qty": order.qty, "filled": order.filled_qty},
                    incident=True,
                )
            else:
                self.rec.bare_event(fill.client_order_id, "orphan_fill", venue_order_id=fill.venue_order_id, reason=f"{fill.qty}@{fill.price} id={fill.fill_id}: {orphan}")
                self.rec.warn(
                    f"oms:orphan:{fill.asset}",
                    f"fill {fill.fill_id} {fill.side.value} {fill.qty} {fill.asset} @ {fill.price} on order {fill.client_order_id} that this bot did not place: counted in the position",
                )
            return True
        assert order is not None
        self.rec.order_event(order, "fill", src, reason=f"{fill.qty}@{fill.price} id={fill.fill_id} ({source})")
        for listener in self.fill_listeners:
            listener(fill, order)
        return True

    def _beyond_horizon(self, fill: Fill, source: str) -> None:
        """A fill we have no id for, older than the retention: its id may have been forgotten, so it may be a
        duplicate. Never applied unverified: the asset goes dirty (no new orders on it) and reconciliation's
        position check decides (agreement cleans it; a real missed fill shows as a mismatch and goes SAFE)."""
        self.fills_beyond_horizon += 1
        age_s = (self.clock.now_ns() - fill.ts_ns) / 1e9
        reason = (
            f"fill {fill.fill_id} {fill.side.value} {fill.qty} {fill.asset} @ {fill.price} ({source}) happened {age_s:.0f}s ago, "
            f"beyond oms.retention_s ({self.limits.retention_s:g}s): not applied; the position check decides"
        )
        self.rec.bare_event(fill.client_order_id, "stale_fill", venue_order_id=fill.venue_order_id, code=ErrorCode.POSITION_MISMATCH, reason=reason)
        self.rec.warn(f"oms:stale_fill:{fill.asset}", reason)
        self.mark_dirty(fill.asset, reason)

    def _check_seq(self, fill: Fill) -> None:
        assert fill.seq is not None
        seq = self.fill_seq.get(fill.asset)
        if seq is None:
            seq = self.fill_seq[fill.asset] = FillSequence()
        scope = f"{fill.asset}@{self.venue_name}"
        outcome, gap = seq.observe(fill.seq)
        if outcome is SeqOutcome.GAP:
            assert gap is not None
            lo, hi = gap
            self.rec.safe(
                ErrorCode.FILL_SEQ_GAP,
                f"{scope}:{lo}",
                f"{fill.asset} fill sequence jumped to {fill.seq}: {hi - lo + 1} fill(s) ({lo}..{hi}) missing from the stream",
                {"missing_from": lo, "missing_to": hi, "fill_id": fill.fill_id},
                incident=True,
            )
        elif outcome is SeqOutcome.GAP_FILLED:
            self.rec.transition("fill_seq", scope, "GAP", "GAP" if seq.missing_count() else "CONTIGUOUS", None, f"late fill {fill.fill_id} with seq {fill.seq} filled a gap")
        elif outcome is SeqOutcome.REUSED:
            self.rec.safe(
                ErrorCode.FILL_SEQ_GAP,
                f"{scope}:reuse:{fill.seq}",
                f"fill {fill.fill_id} reuses {fill.asset} sequence number {fill.seq} (last {seq.last}): the fill sequence cannot be trusted",
                {"seq": fill.seq, "fill_id": fill.fill_id},
                incident=True,
            )

    # ------------------------------------------------------------------ orders we did not place
    def track_venue_order(self, vo: VenueOrder, policy: str) -> Order:
        """Start tracking an open venue order this OMS did not place (from an earlier run, or placed by hand).

        Tracked with the quantity still open at the venue (fills before this moment are in the baseline or
        arrived as orphan fills), no strategy, tag ``adopted`` or ``unknown``. ``policy`` is recorded.
        """
        remaining = vo.qty - vo.filled_qty
        order = Order(
            client_order_id=vo.client_order_id,
            intent_id="",
            strategy_id="",
            venue=self.venue_name,
            asset=vo.asset,
            side=vo.side,
            qty=remaining if remaining > 0 else vo.qty,
            order_type=vo.order_type,
            limit_price=vo.limit_price,
            tif=TimeInForce.GTC,
            created_ns=self.clock.now_ns(),
            status=S.ACCEPTED,
            venue_order_id=vo.venue_order_id,
            tag="adopted" if policy == "adopt" else "unknown",
        )
        self.orders[order.client_order_id] = order
        self.touched.add(order.asset)
        self._created_mono[order.client_order_id] = self.clock.monotonic_ns()
        self.audit.record(
            "order",
            {
                "strategy_id": None,
                "client_order_id": order.client_order_id,
                "intent_id": "",
                "correlation_id": f"venue:{vo.venue_order_id}",
                "venue": order.venue,
                "asset": order.asset,
                "side": order.side.value,
                "qty": order.qty,
                "order_type": order.order_type.value,
                "limit_price": order.limit_price,
                "tif": order.tif.value,
                "status": order.status.value,
                "data": {"origin": "venue", "policy": policy, "venue_qty": vo.qty, "venue_filled": vo.filled_qty},
            },
        )
        self.rec.order_event(order, "adopted" if policy == "adopt" else "unknown_found", None, reason=f"open at the venue, not placed by this run (policy: {policy})")
        self._sync(order)
        return order

    def created_mono(self, client_order_id: str) -> int | None:
        return self._created_mono.get(client_order_id)

    def awaiting_fills(self) -> dict[str, Decimal]:
        return dict(self._awaiting_fills)

    def seed_baseline(self, positions: Mapping[str, Decimal], source: str, assets: Iterable[str] | None = None) -> None:
        """Holdings at start (spot balances, open contracts): the venue position that no fill of this run made."""
        for asset in sorted(assets if assets is not None else positions):
            qty = positions.get(asset, ZERO)
            old = self.baseline.get(asset)
            new = qty - self.portfolio.qty(asset) + self.base_fees.get(asset, ZERO)
            self.baseline[asset] = new
            self.rec.transition(
                "baseline",
                asset,
                None if old is None else "SET",
                "SET",
                None,
                f"holdings not made by this run's fills: {new} (venue position {qty}, {source})",
                {"baseline": new, "previous": old, "venue_qty": qty},
            )
