"""Where risk meets the loop: the kill file, the per-iteration risk evaluation, cancels, gradual flattening,
triple-barrier exits, latency samples, connectivity loss, and the operator's risk commands.

Per iteration (``guard``, at the top of every engine iteration):
  1. the manual kill flag file: while it exists the engine acts on nothing (strategies are not called, every
     order is refused with KILL_SWITCH) and resting orders are cancelled within that iteration;
  2. ``RiskSupervisor.evaluate``: monitors move, automatic kill switches fire; transitions are audited;
  3. pending work: cancels of scopes that escalated, flatten slices, barrier exits.
After every iteration (``after``) the pending work runs again, so a trigger inside an iteration is acted on in it.

Per tick (``on_tick``, O(1)): the jump detector and, only for assets with an armed barrier, the barrier test.

Every order this module creates (flatten slices, barrier exits) is a reduce-only marketable limit IOC that is
recorded as an intent and checked by risk (stage ``flatten`` / ``barrier``: it must reduce the position). It is
executed without the arming gate (``exits_via_gate`` False, the default): SAFE revokes arming, and an auto-flatten
that waits for a human is not one; the limits that trigger it and the barriers (part of the confirmed entry
intent's hash) were authorised beforehand. With ``exits_via_gate`` True they go through the engine's gate
(in LIVE: staged for a confirmation).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.intent import Barrier, Intent, OrderType, Side, TimeInForce, Urgency
from bot.domain.market import Tick
from bot.domain.order import Order, OrderStatus
from bot.domain.streams import StreamStatus
from bot.domain.venue import ExecutionReport, OrderRequest, VenueError
from bot.engine.loop import Admission, Engine
from bot.risk.advice import NORMAL, Advice, QuoteMode
from bot.risk.barrier import BarrierBook
from bot.risk.engine import RiskEngine
from bot.risk.latency import LatencyState
from bot.risk.pnl import GLOBAL, iso
from bot.risk.safety import LIMITS_CONFIRMED, MARKET_DATA_FRESH, Check, TradingState
from bot.risk.supervisor import Action, CancelResting, Flatten, RiskSupervisor
from bot.risk.transition import Transition

log = logging.getLogger(__name__)
NS = 1_000_000_000
BPS = Decimal(10_000)
SYSTEM_STRATEGY = "_risk"  # owner of flatten orders no strategy position accounts for
EXIT_TAG = "exit"


class RiskRuntime:
    def __init__(
        self,
        engine: Engine,
        risk: RiskEngine,
        supervisor: RiskSupervisor,
        *,
        kill_file: Path,
        alert: Callable[[str, str, str], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.risk = risk
        self.supervisor = supervisor
        self.kill_file = Path(kill_file)
        self.alert = alert  # Notifier.alert(severity, key, text); the composition root sets it
        self.alert_global_halts = True  # False when something else (the incident desk) announces global SAFE/HALTED
        self.barriers = BarrierBook()
        self.flatten_plans: dict[str, str] = {}  # scope -> reason
        self.exits: dict[tuple[str, str], str] = {}  # (strategy, asset) -> barrier exit reason
        self._pending_cancel: dict[str, str] = {}  # scope -> reason
        self._last_slice: dict[tuple[str, str], int] = {}
        self._barrier_of: dict[str, Barrier] = {}  # client order id -> the barrier its intent carried
        self._tasks: set[asyncio.Task[Any]] = set()
        self._venue = engine.oms.venue_name
        self.exits_via_gate = False

    def install(self) -> RiskRuntime:
        e = self.engine
        e.guards.append(self.guard)
        e.after_dispatch.append(self.after)
        e.tick_listeners.append(self.on_tick)
        e.submit_listeners.append(self.on_submit)
        e.oms.fill_listeners.append(self.on_fill)
        for _, ctx in e.strategies.values():
            ctx.set_advice_source(self.advice)
        safety = self.risk.safety
        safety.add_scope_listener(self._on_state)
        safety.provide_check(MARKET_DATA_FRESH, self.check_market_data_fresh)
        safety.provide_check(LIMITS_CONFIRMED, self.check_limits_confirmed)
        safety.add_check(self.check_kill_file_absent)
        safety.add_check(self.check_kill_cooldown)
        return self

    # ------------------------------------------------------------------ audit and alerts
    def emit(self, t: Transition) -> None:
        self.engine.audit.record("state_transition", t.row())
        (log.warning if t.alert in ("warning", "critical") else log.info)("risk %s [%s] %s -> %s: %s", t.kind, t.scope, t.from_state, t.to_state, t.reason)
        if t.alert:
            self._alert(t.alert, f"risk:{t.kind}:{t.scope}:{t.to_state}", f"{t.kind} [{t.scope}] {t.to_state}: {t.reason}")

    def _alert(self, severity: str, key: str, text: str) -> None:
        if self.alert is None:
            return
        try:
            self.alert(severity, key, text)
        except Exception:
            log.exception("risk alert failed")

    def _on_state(self, scope: str, old: TradingState, new: TradingState, code: ErrorCode | None, reason: str) -> None:
        if new is not TradingState.ACTIVE:
            self._pending_cancel[scope] = f"{new.value}: {reason}"  # SAFE, HALTED, REDUCING: cancel resting orders
            if self.alert_global_halts or scope != "global" or new is TradingState.REDUCING:
                self._alert("critical", f"state:{scope}:{new.value}", f"trading state [{scope}] {old.value} -> {new.value} ({code or '-'}): {reason}")
            return
        # a human resumed the scope: limits re-based, its flatten plan ends (the human owns the position now)
        self.emit(self.supervisor.rebase(scope, self.engine.view))
        if self.flatten_plans.pop(scope, None) is not None:
            self.emit(Transition("flatten", scope, "STARTED", "STOPPED", None, f"scope resumed ({reason})", "info"))
        if self.alert_global_halts or scope != "global" or old is TradingState.REDUCING:
            self._alert("info", f"state:{scope}:ACTIVE", f"trading state [{scope}] {old.value} -> ACTIVE: {reason}")

    # ------------------------------------------------------------------ engine hooks
    async def guard(self) -> None:
        risk = self.risk
        if self.kill_file.exists():
            if not risk.manual_kill:
                risk.manual_kill = True
                self.engine.acting = False
                self.emit(Transition("kill_file", "global", "ABSENT", "PRESENT", ErrorCode.KILL_SWITCH,
                                     f"kill file {self.kill_file} exists: acting on nothing, cancelling resting orders", "critical"))
                risk.safety.kill(f"kill file {self.kill_file} exists")
            self._pending_cancel.clear()
            if self.engine.oms.live:
                await self.engine.oms.cancel_all(reason=f"kill file {self.kill_file}")
            return
        if risk.manual_kill:
            risk.manual_kill = False
            self.engine.acting = True
            self.emit(Transition("kill_file", "global", "PRESENT", "ABSENT", None,
                                 f"kill file {self.kill_file} removed: trading state stays {risk.safety.state.value} until a human resumes", "warning"))
        transitions, actions = self.supervisor.evaluate(self.engine.view)
        for t in transitions:
            self.emit(t)
        self._act(actions)
        if self._barrier_of:
            live = self.engine.oms.live
            for coid in [c for c in self._barrier_of if c not in live]:
                del self._barrier_of[coid]
        for b in self.barriers.expired(self.engine.clock.now_ns()):
            self._barrier_triggered(b.strategy_id, b.asset, b.triggered, b.entry)
        await self._work()

    async def after(self) -> None:
        if self._pending_cancel or self.flatten_plans or self.exits:
            await self._work()

    def on_tick(self, tick: Tick) -> None:
        jump = self.risk.events.on_price(tick.asset, tick.ts_local_ns, (float(tick.bid) + float(tick.ask)) / 2)
        if jump is not None:
            ev = self.risk.events
            self.emit(Transition("event", f"asset:{tick.asset}", "NORMAL", ev.jump_action.value, ErrorCode.RISK_BLOCKED,
                                 f"jump {jump.move_bps:+.1f} bps ({jump.sigmas:.1f} sigma within {self.risk.limits.events.jump_window_s:g}s): "
                                 f"{ev.jump_action.value.lower()} quotes until {iso(tick.ts_local_ns + ev.cooldown_ns)}", "warning"))
        if self.barriers.by_asset:
            for b in self.barriers.on_tick(tick):
                self._barrier_triggered(b.strategy_id, b.asset, b.triggered, b.entry)

    def on_submit(self, intent: Intent, order: Order) -> None:
        self.risk.latency.note_order(self._venue, self.engine.clock.monotonic_ns())
        if intent.barrier is not None:
            self._barrier_of[order.client_order_id] = intent.barrier

    def on_fill(self, fill: Fill, order: Order) -> None:
        self.supervisor.pnl_dirty = True
        key = (order.strategy_id, fill.asset)
        barrier = self._barrier_of.get(order.client_order_id)
        if barrier is None and key not in self.barriers.armed:
            return
        pos = self.engine.portfolio.by_strategy.get(key)
        if pos is None:
            return
        change = self.barriers.on_position(order.strategy_id, fill.asset, pos.qty, pos.avg_price, fill.ts_ns, barrier)
        if change == "armed":
            b = self.barriers.armed[key]
            self.emit(Transition("barrier", f"strategy:{order.strategy_id}", None, "ARMED", None,
                                 f"{fill.asset} {'long' if b.long else 'short'} {pos.qty} @ {b.entry}: take-profit {b.take_profit}, "
                                 f"stop-loss {b.stop_loss}, time limit {iso(b.deadline_ns) if b.deadline_ns else None}"))
        elif change == "disarmed":
            self.exits.pop(key, None)
            self.emit(Transition("barrier", f"strategy:{order.strategy_id}", "ARMED", "DISARMED", None, f"{fill.asset} position closed"))
        if order.is_terminal:
            self._barrier_of.pop(order.client_order_id, None)

    def _barrier_triggered(self, strategy_id: str, asset: str, which: str, entry: Decimal) -> None:
        reason = f"triple barrier {which} on {asset} (entry {entry})"
        self.exits[(strategy_id, asset)] = reason
        self.emit(Transition("barrier", f"strategy:{strategy_id}", "ARMED", "TRIGGERED", None, reason, "info"))

    # ------------------------------------------------------------------ what strategies read
    def advice(self, strategy_id: str, asset: str) -> Advice:
        r = self.risk
        if r.manual_kill:
            return Advice(QuoteMode.PULL, reason="kill file")
        st = r.safety.strategy_state(strategy_id)
        if st is not TradingState.ACTIVE:
            return Advice(QuoteMode.PULL, reason=f"trading state {st.value}")
        mono = self.engine.clock.monotonic_ns()
        if asset in r.stale.stale:
            return Advice(QuoteMode.PULL, reason="stale market data")
        if r.latency.state(self._venue) is LatencyState.BLOCKED:
            return Advice(QuoteMode.PULL, reason="latency breach")
        if r.breakers.global_.is_open(mono) or r.breakers.strategy_open(strategy_id, mono) is not None:
            return Advice(QuoteMode.PULL, reason="cooldown")
        now = self.engine.clock.now_ns()
        if r.loss.locked(GLOBAL, now) is not None or r.loss.locked(strategy_id, now) is not None:
            return Advice(QuoteMode.PULL, reason="daily loss lockout")
        tick = self.engine.market.last.get(asset)
        mode, why, until = r.events.mode(asset, tick.ts_local_ns if tick is not None else 0)
        scale = r.drawdown.scale(strategy_id)
        if mode is QuoteMode.NORMAL and scale == 1:
            return NORMAL
        mult = r.limits.events.widen_factor if mode is QuoteMode.WIDEN else Decimal(1)
        return Advice(mode, mult, scale, why or "drawdown throttle", until)

    # ------------------------------------------------------------------ actions
    def _act(self, actions: Sequence[Action]) -> None:
        for a in actions:
            if isinstance(a, CancelResting):
                self._pending_cancel[a.scope] = a.reason
            elif isinstance(a, Flatten) and a.scope not in self.flatten_plans:
                self.flatten_plans[a.scope] = a.reason
                self.emit(Transition("flatten", a.scope, None, "STARTED", ErrorCode.RISK_BLOCKED, a.reason, "critical"))

    async def _work(self) -> None:
        if self.risk.manual_kill:
            return
        if self._pending_cancel:
            await self._cancel_pending()
        if self.flatten_plans or self.exits:
            await self._exit_slices()

    async def _cancel_pending(self) -> None:
        pending, self._pending_cancel = self._pending_cancel, {}
        oms = self.engine.oms
        for scope, reason in pending.items():
            if scope == "global":
                await oms.cancel_all(reason=reason)
            else:
                sid = scope.removeprefix("strategy:")
                for o in oms.live_orders(sid):
                    await oms.cancel(o.client_order_id, reason)
        await self.engine.handle_pending()

    def _flatten_targets(self, scope: str) -> list[tuple[str, str, Decimal]]:
        """(strategy to attribute the order to, asset, signed quantity to trade) for one flatten plan."""
        pf = self.engine.portfolio
        out: list[tuple[str, str, Decimal]] = []
        if scope == "global":
            for asset, pos in pf.positions.items():
                if pos.qty == 0:
                    continue
                best, best_qty = SYSTEM_STRATEGY, abs(pos.qty)
                same = [(abs(p.qty), sid) for (sid, a), p in pf.by_strategy.items() if a == asset and p.qty * pos.qty > 0]
                if same:
                    q, best = max(same)
                    best_qty = min(best_qty, q)
                out.append((best, asset, -best_qty if pos.qty > 0 else best_qty))
        else:
            sid = scope.removeprefix("strategy:")
            for (s, asset), p in pf.by_strategy.items():
                if s == sid and p.qty != 0:
                    out.append((sid, asset, -p.qty))
        return out

    async def _exit_slices(self) -> None:
        targets: list[tuple[str, str, Decimal, str, str, str]] = []  # sid, asset, signed qty, reason, stage, scope
        for scope, reason in list(self.flatten_plans.items()):
            tg = [t for t in self._flatten_targets(scope) if not self._is_dust(t[1], abs(t[2]))]
            if not tg:
                del self.flatten_plans[scope]
                self.emit(Transition("flatten", scope, "STARTED", "DONE", None, f"flat ({reason})", "warning"))
                continue
            targets += [(sid, asset, q, reason, "flatten", scope) for sid, asset, q in tg]
        for (sid, asset), reason in list(self.exits.items()):
            pos = self.engine.portfolio.by_strategy.get((sid, asset))
            if pos is None or pos.qty == 0 or self._is_dust(asset, abs(pos.qty)):
                del self.exits[(sid, asset)]
                continue
            targets.append((sid, asset, -pos.qty, reason, "barrier", f"strategy:{sid}"))
        if not targets:
            return
        mono = self.engine.clock.monotonic_ns()
        interval = int(self.risk.limits.flatten.interval_s * NS)
        sent = False
        done: set[tuple[str, str]] = set()
        for sid, asset, signed, reason, stage, _scope in targets:
            key = (sid, asset)
            if key in done:
                continue
            done.add(key)
            if any(o.tag == EXIT_TAG for o in self.engine.oms.live_orders(sid, asset)):
                continue  # one exit slice in flight per position
            last = self._last_slice.get(key)
            if last is not None and mono - last < interval:
                continue
            if await self._send_exit(sid, asset, signed, reason, stage):
                self._last_slice[key] = mono
                sent = True
        if sent:
            await self.engine.handle_pending()

    def _is_dust(self, asset: str, qty: Decimal) -> bool:
        inst = self.engine.instruments.get(asset)
        if inst is None:
            return False
        q = inst.round_qty(qty)
        return q <= 0 or q < inst.min_qty

    async def _send_exit(self, sid: str, asset: str, signed: Decimal, reason: str, stage: str) -> bool:
        e = self.engine
        tick = e.market.last.get(asset)
        inst: Instrument | None = e.instruments.get(asset)
        if tick is None or inst is None:
            return False
        side = Side.BUY if signed > 0 else Side.SELL
        lim = self.risk.limits
        m = lim.flatten.max_slippage_bps / BPS
        if side is Side.SELL:
            price, shown = tick.bid * (1 - m), tick.bid_size
        else:
            price, shown = tick.ask * (1 + m), tick.ask_size
        slice_qty = lim.flatten.slice_qty or lim.max_trade_qty
        qty = inst.round_qty(min(abs(signed), slice_qty, shown if shown > 0 else abs(signed)))
        if qty <= 0 or qty < inst.min_qty:
            return False
        intent = Intent(
            id=e.next_id(), ts_ns=e.clock.now_ns(), strategy_id=sid, asset=asset, side=side, qty=qty,
            order_type=OrderType.LIMIT, limit_price=inst.round_price(price, is_buy=side is Side.BUY), tif=TimeInForce.IOC,
            urgency=Urgency.HIGH, risk_tags=(stage,), rationale=reason[:500], reduce_only=True, tag=EXIT_TAG,
        )
        e.counters.intents += 1
        e.record_intent(intent, None)
        verdict = e.check_risk(intent, stage)
        if not verdict.approved:
            return True  # audited; retried after the slice interval
        admission = e.gate.admit(intent) if self.exits_via_gate else Admission.EXECUTE
        if admission is Admission.EXECUTE:
            await e.submit(intent)
        elif admission is Admission.STAGED:
            e.counters.staged += 1
        return True

    # ------------------------------------------------------------------ injected callbacks (other parts call these)
    def on_safe(self, code: ErrorCode, reason: str) -> None:
        """Callback for any part: enter SAFE now (new orders refused at once); resting orders are cancelled in the
        engine loop. Safe to call from inside or outside the engine loop."""
        self.risk.safety.enter(TradingState.SAFE, code, reason)
        self._schedule_work()

    def on_disconnect(self, reason: str) -> None:
        """Connectivity to the venue lost (issue 6 raises it): SAFE and cancel-on-disconnect (best effort: the
        venue's own cancel-on-disconnect is the primary protection)."""
        self.on_safe(ErrorCode.VENUE_UNAVAILABLE, f"connectivity lost: {reason}")

    def on_stream_status(self, status: StreamStatus) -> None:
        """A venue stream's health (``on_status`` of the venue adapter). The user-data stream (fills, orders) down
        is connectivity loss: SAFE and cancel-on-disconnect (spec 4.7.4). Market-data staleness needs nothing
        here: the staleness monitor measures it from the market data itself. Recovery never leaves SAFE."""
        if status.stream == "user" and not status.healthy and status.asset is None:
            self.on_disconnect(f"{status.venue} user stream: {status.reason}")

    def _schedule_work(self) -> None:
        if self.engine._in_dispatch:  # inside the loop: the after hook of this iteration does it
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next iteration's guard does it
        task = loop.create_task(self._call_work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call_work(self) -> None:
        try:
            await self.engine.call(self._work)
        except RuntimeError:
            pass  # engine stopped; shutdown cancels every resting order anyway

    # ------------------------------------------------------------------ the operator's risk commands
    async def kill(self, by: str, reason: str = "") -> int:
        """Operator kill: SAFE, cancel every resting order now. Returns the number of cancels sent."""
        self.risk.safety.kill(f"operator {by}" + (f": {reason}" if reason else ""))
        self._pending_cancel.clear()
        n = await self.engine.oms.cancel_all(reason=f"kill by {by}")
        await self.engine.handle_pending()
        return n

    async def resume(self, by: str, scope: str = "global") -> tuple[bool, list[Check]]:
        """The human resume (spec 16.1): every check must pass. LIVE still needs a fresh arming afterwards."""
        return await self.risk.safety.resume_async(by, scope)

    def confirm_limits(self, by: str) -> None:
        lim = self.risk.limits
        self.risk.confirm_limits(by, self.engine.clock.now_ns())
        self.emit(Transition("limits", "global", None, "CONFIRMED", None,
                             f"limits confirmed by {by}: max_trade_qty {lim.max_trade_qty}, max_position_qty {lim.max_position_qty}, "
                             f"max_daily_loss {lim.loss.max_daily_loss}, max_portfolio_loss {lim.loss.max_portfolio_loss}"))

    def status(self) -> dict[str, Any]:
        r = self.risk
        view = self.engine.view
        now, mono = view.now_ns(), view.monotonic_ns()
        net = view.net_pnl(None)
        g = r.drawdown.scopes.get(GLOBAL)
        return {
            "state": r.safety.state.value,
            "code": r.safety.code.value if r.safety.code else None,
            "reason": r.safety.reason,
            "strategies": {k: v.state.value for k, v in r.safety.scoped.items()},
            "kill_file": r.manual_kill,
            "daily_pnl": r.loss.daily_pnl(GLOBAL, net),
            "max_daily_loss": r.limits.loss.max_daily_loss,
            "locked_until": {k: iso(v) for k, v in r.loss.lockout_until.items() if v > now},
            "drawdown": g.last if g is not None else None,
            "throttled": sorted(k for k, v in r.drawdown.scopes.items() if v.throttled),
            "stale_assets": sorted(r.stale.stale),
            "latency": r.latency.state(self._venue).value,
            "events": {a: r.events.jump_action.value for a in r.events.jumps},
            "flatten": dict(self.flatten_plans),
            "barriers": len(self.barriers.armed),
            "kill_cooldown_s": round(self.supervisor.cooldown_left_s(mono), 1),
        }

    # ------------------------------------------------------------------ recovery checks this part provides
    def check_market_data_fresh(self) -> Check:
        r, view = self.risk, self.engine.view
        mono = view.monotonic_ns()
        bad = [a for a in r.stale.assets if r.stale.blocked(a, view.last_update_ns(a), mono)]
        return Check(MARKET_DATA_FRESH, not bad, f"stale: {', '.join(bad)}" if bad else "every asset fresh")

    def check_limits_confirmed(self) -> Check:
        confirmed = self.risk.limits_confirmed
        since = self.risk.safety.last_escalation_ns
        if confirmed is None:
            return Check(LIMITS_CONFIRMED, False, "no operator has confirmed the limits since the halt")
        if since is not None and confirmed[0] < since:
            return Check(LIMITS_CONFIRMED, False, f"last confirmation ({confirmed[1]}) predates the last halt")
        return Check(LIMITS_CONFIRMED, True, f"confirmed by {confirmed[1]}")

    def check_kill_file_absent(self) -> Check:
        exists = self.kill_file.exists()
        return Check("kill_file_absent", not exists, f"{self.kill_file} exists: remove it first" if exists else "")

    def check_kill_cooldown(self) -> Check:
        left = self.supervisor.cooldown_left_s(self.engine.clock.monotonic_ns())
        return Check("kill_cooldown_elapsed", left <= 0, f"{left:.0f}s of the automated-kill cooldown left" if left > 0 else "")


class VenueTap:
    """Wraps the ``Venue`` port for risk: order-ack latency samples (``ExecutionReport.latency_ns``) and venue
    errors. Everything else passes through unchanged."""

    def __init__(self, venue: Any, clock: Any) -> None:
        self._venue = venue
        self._clock = clock
        self.on_latency: Callable[[int], None] | None = None
        self.on_error: Callable[[ErrorCode | None], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._venue, name)

    @property
    def inner(self) -> Any:
        return self._venue

    def _seen(self, report: ExecutionReport) -> None:
        if report.latency_ns is not None and self.on_latency is not None:
            self.on_latency(report.latency_ns)
        if report.status is OrderStatus.REJECTED and self.on_error is not None:
            self.on_error(report.code)

    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        try:
            report: ExecutionReport = await self._venue.place_order(request)
        except VenueError as exc:
            if self.on_error is not None:
                self.on_error(exc.code)
            raise
        self._seen(report)
        return report

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport:
        try:
            report: ExecutionReport = await self._venue.cancel_order(asset, client_order_id, venue_order_id)
        except VenueError as exc:
            if self.on_error is not None:
                self.on_error(exc.code)
            raise
        self._seen(report)
        return report


def connect_tap(tap: VenueTap, runtime: RiskRuntime) -> None:
    """Feed the tap's samples and errors to the runtime (both arrive inside the engine loop: OMS calls)."""

    def on_latency(latency_ns: int) -> None:
        t = runtime.risk.latency.observe(runtime._venue, latency_ns, runtime.engine.clock.monotonic_ns())
        if t is not None:
            runtime.emit(t)

    def on_error(code: ErrorCode | None) -> None:
        for t in runtime.supervisor.venue_error(runtime.engine.clock.monotonic_ns()):
            runtime.emit(t)

    tap.on_latency = on_latency
    tap.on_error = on_error


__all__ = ["RiskRuntime", "VenueTap", "connect_tap", "SYSTEM_STRATEGY"]
