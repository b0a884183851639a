"""The engine: one asyncio loop, one writer (DESIGN principle 1).

Everything that changes state arrives on one queue and is handled in order: batches of ticks from the
market feed, execution reports from the venue, and calls from the control plane (``await engine.call(fn)``).
Reports that the venue emits while the engine is handling an event (the simulated venue does this) are
handled right after that event, so DRY_RUN and REPLAY are deterministic.

Per tick: market state -> market listeners (the recorder) -> tick listeners (the simulated venue matches) ->
pending reports -> each of the asset's strategies ``on_tick`` -> for each intent: audit -> risk check (audited)
-> execution gate -> OMS. An L2 ``Book`` in a batch updates the market state and the book listeners only.

Audit rows are written in batches by a background flush while the loop goes on; the loop waits for the
store only when more than ``audit_high_water`` rows are waiting (back-pressure), and a failed write stops it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum
from typing import Any, NamedTuple, Protocol, TypeVar

from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.intent import Intent, IntentKind, Side
from bot.domain.market import Book, Tick
from bot.domain.modes import Mode
from bot.domain.money import ZERO
from bot.domain.order import Order
from bot.domain.ports import AuditSink, Clock, MarketFeed
from bot.domain.position import Portfolio
from bot.domain.venue import ExecutionReport, PositionUpdate
from bot.engine.market_state import MarketState
from bot.engine.strategy import Strategy, StrategyContext
from bot.oms.orders import OrderManager
from bot.risk.engine import RiskEngine
from bot.risk.verdict import Verdict

log = logging.getLogger(__name__)
T = TypeVar("T")


class Admission(str, Enum):
    EXECUTE = "EXECUTE"  # send now
    STAGED = "STAGED"  # held for an operator's confirmation
    REFUSED = "REFUSED"


class ExecutionGate(Protocol):
    """Decides whether an approved intent goes to the venue now (the LIVE gate needs arming + confirmation)."""

    def admit(self, intent: Intent) -> Admission: ...


class AutoGate:
    """DRY_RUN and REPLAY: approved intents execute against the simulated venue without confirmation."""

    def admit(self, intent: Intent) -> Admission:
        return Admission.EXECUTE


@dataclass(slots=True)
class Counters:
    ticks: int = 0
    decisions: int = 0
    intents: int = 0
    approved: int = 0
    blocked: int = 0
    staged: int = 0
    orders: int = 0
    fills: int = 0
    events: int = 0  # market events handled (ticks + books): the index recorded with decisions
    books: int = 0


@dataclass(frozen=True, slots=True)
class StrategyMeta:
    code_hash: str
    params_hash: str


class IntentOutcome(NamedTuple):
    """What became of one intent: the risk verdict (None for a cancel), the gate's admission, the order sent."""

    intent: Intent
    verdict: Verdict | None
    admission: Admission | None
    order: Order | None


class _Call:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


_FEED_END = object()
_STOP = object()


class Engine:
    def __init__(
        self,
        *,
        mode: Mode,
        clock: Clock,
        audit: AuditSink,
        risk: RiskEngine,
        oms: OrderManager,
        portfolio: Portfolio,
        market: MarketState,
        instruments: Mapping[str, Instrument],
        strategies: Sequence[Strategy],
        strategy_meta: Mapping[str, StrategyMeta],
        gate: ExecutionGate,
        id_prefix: str,
        queue_size: int = 10_000,
        audit_high_water: int = 50_000,
    ) -> None:
        self.mode = mode
        self.clock = clock
        self.audit = audit
        self.risk = risk
        self.oms = oms
        self.portfolio = portfolio
        self.market = market
        self.instruments = instruments
        self.gate = gate
        self.id_prefix = id_prefix
        self.counters = Counters()
        self.tick_listeners: list[Callable[[Tick], None]] = []  # e.g. the simulated venue's matcher
        self.book_listeners: list[Callable[[Book], None]] = []  # L2 books (the simulated venue's depth)
        # every market event with its index in the run (1-based, ticks and books): the recorder
        self.market_listeners: list[Callable[[int, Tick | Book], None]] = []
        # told the index of the first event of every batch (the recorder keeps batch boundaries: the engine's
        # guards run once per batch, so a replay that reproduces the batches reproduces when risk looked)
        self.batch_listeners: list[Callable[[int], None]] = []
        self.guards: list[Callable[[], Awaitable[None]]] = []  # run at the top of every iteration (kill file...)
        self.after_dispatch: list[Callable[[], Awaitable[None]]] = []  # run after every iteration (flatten, barrier exits)
        self.submit_listeners: list[Callable[[Intent, Order], None]] = []  # every order sent (risk: rate, barriers; stats)
        self.acting = True  # False while the kill file exists: strategies are not called, nothing is acted on
        self.strategy_meta = dict(strategy_meta)
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._pending_reports: deque[ExecutionReport] = deque()
        self._pending_fills: deque[tuple[Fill, Order]] = deque()
        self._in_dispatch = False
        self._accepting = True
        self._seq = 0
        self._observe = getattr(clock, "observe", None) or (lambda _ns: None)
        self._audit_high_water = audit_high_water
        self._flush_task: asyncio.Task[None] | None = None
        self.strategies: dict[str, tuple[Strategy, StrategyContext]] = {}
        self._by_asset: dict[str, list[tuple[Strategy, StrategyContext]]] = {}
        for strat in strategies:
            ctx = StrategyContext(
                strat.strategy_id, market, portfolio, oms.live_orders, instruments, self.next_id, strat.params
            )
            self.strategies[strat.strategy_id] = (strat, ctx)
            for asset in strat.assets if strat.wants_ticks else ():
                self._by_asset.setdefault(asset, []).append((strat, ctx))
        oms.fill_listeners.append(self._on_fill)
        self.view = _EngineView(self)

    # ------------------------------------------------------------------ ids
    def next_id(self) -> str:
        self._seq += 1
        return f"{self.id_prefix}-{self._seq}"

    # ------------------------------------------------------------------ inputs
    def on_report(self, report: ExecutionReport) -> None:
        """The venue's report sink. Inside a dispatch (simulated venue) reports are handled right after it."""
        if self._in_dispatch:
            self._pending_reports.append(report)
        else:
            self._queue.put_nowait(report)

    async def call(self, fn: Callable[[], T | Awaitable[T]]) -> T:
        """Run ``fn`` inside the engine loop, in order with market data and reports (the command API)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Call(fn, future))
        return await future

    def stop(self) -> None:
        """Stop intake: the loop finishes the event in hand and returns."""
        self._accepting = False
        try:
            self._queue.put_nowait(_STOP)
        except asyncio.QueueFull:
            pass

    # ------------------------------------------------------------------ main loop
    async def start(self) -> None:
        for strat, ctx in self.strategies.values():
            ctx.event_ns = self.clock.now_ns()
            intents = strat.on_start(ctx)
            if intents:
                await self._handle_intents(strat, ctx, intents, "start")

    async def run(self, feed: MarketFeed) -> None:
        """Consume the feed until it ends or ``stop()`` is called."""
        pump = asyncio.create_task(self._pump(feed), name="engine-feed-pump")
        try:
            while True:
                item = await self._queue.get()
                if item is _STOP or item is _FEED_END:
                    break
                await self._dispatch(item)
        finally:
            pump.cancel()
            try:
                await pump
            except asyncio.CancelledError:
                pass
            await feed.close()
            # answer calls that will never run
            while not self._queue.empty():
                item = self._queue.get_nowait()
                if isinstance(item, _Call) and not item.future.done():
                    item.future.set_exception(RuntimeError("engine stopped"))

    async def _pump(self, feed: MarketFeed) -> None:
        try:
            async for batch in feed.batches():
                if not self._accepting:
                    return
                await self._queue.put(batch)
        except Exception:
            log.exception("market feed failed")
            raise
        finally:
            if self._accepting:
                await self._queue.put(_FEED_END)

    async def _dispatch(self, item: Any) -> None:
        self._in_dispatch = True
        try:
            for guard in self.guards:
                await guard()
            kind = type(item)
            if kind is list or kind is tuple:
                await self._on_ticks(item)
            elif kind is ExecutionReport or kind is PositionUpdate:
                self.oms.on_report(item)  # the OMS routes position updates itself
            elif kind is _Call:
                await self._run_call(item)
            else:
                raise TypeError(f"engine queue: unexpected item {kind.__name__}")
            await self._drain()
            for hook in self.after_dispatch:
                await hook()
        finally:
            self._in_dispatch = False
        if self.audit.needs_flush():
            await self._flush_audit()

    async def _flush_audit(self) -> None:
        """Start a background write of the buffered rows; wait only past the high-water mark (back-pressure)."""
        task = self._flush_task
        if task is not None:
            if not task.done():
                if getattr(self.audit, "pending", 0) < self._audit_high_water:
                    return
                await asyncio.shield(task)
            self._flush_task = None
            task.result()  # a failed write stops the engine: trading on without an audit trail is not allowed
        self._flush_task = asyncio.create_task(self.audit.flush(), name="audit-flush")

    async def flush_audit(self) -> None:
        """Wait for any background write, then write everything buffered (shutdown, tests, reports)."""
        task, self._flush_task = self._flush_task, None
        if task is not None:
            await task
        await self.audit.flush()

    async def _run_call(self, call: _Call) -> None:
        try:
            result = call.fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
        except Exception as exc:
            if not call.future.done():
                call.future.set_exception(exc)
            return
        if not call.future.done():
            call.future.set_result(result)

    async def _on_ticks(self, ticks: Sequence[Tick | Book]) -> None:
        # The hot path. Counters live in locals and are written back before anything that may read them
        # (draining reports, handling intents) and at the end of the batch.
        counters = self.counters
        market = self.market
        listeners = self.tick_listeners
        recorders = self.market_listeners
        by_asset = self._by_asset
        observe = self._observe
        mono = self.clock.monotonic_ns
        update = market.update
        events = counters.events
        n_ticks = counters.ticks
        for start in self.batch_listeners:
            start(events + 1)
        try:
            for tick in ticks:
                events += 1
                if tick.__class__ is Book:
                    counters.events, counters.ticks = events, n_ticks
                    self._on_book(tick)  # type: ignore[arg-type]
                    continue
                n_ticks += 1
                ts = tick.ts_local_ns
                observe(ts)
                update(tick, mono())  # type: ignore[arg-type]
                if recorders:
                    for recorder in recorders:
                        recorder(events, tick)
                for listener in listeners:
                    listener(tick)  # type: ignore[arg-type]
                if self._pending_reports:
                    counters.events, counters.ticks = events, n_ticks
                    await self._drain()
                subscribed = by_asset.get(tick.asset)
                if subscribed and self.acting:
                    for strat, ctx in subscribed:
                        ctx.event_ns = ts
                        ctx.tick = tick
                        intents = strat.on_tick(ctx)
                        if intents:
                            counters.events, counters.ticks = events, n_ticks
                            await self._handle_intents(strat, ctx, intents, f"{tick.venue}:{tick.asset}:{tick.seq}")
        finally:
            counters.events, counters.ticks = events, n_ticks

    def _on_book(self, book: Book) -> None:
        self.counters.books += 1
        self._observe(book.ts_local_ns)
        self.market.update_book(book)
        for recorder in self.market_listeners:
            recorder(self.counters.events, book)
        for listener in self.book_listeners:
            listener(book)

    async def _drain(self) -> None:
        """Handle reports emitted during the current event, and the strategies' reactions to their fills."""
        while self._pending_reports or self._pending_fills:
            while self._pending_reports:
                self.oms.on_report(self._pending_reports.popleft())
            while self._pending_fills:
                fill, order = self._pending_fills.popleft()
                entry = self.strategies.get(order.strategy_id)
                if entry is None or not self.acting:
                    continue
                strat, ctx = entry
                ctx.event_ns = fill.ts_ns
                intents = strat.on_fill(ctx, fill)
                if intents:
                    await self._handle_intents(strat, ctx, intents, f"fill:{fill.venue}:{fill.fill_id}")

    async def handle_pending(self) -> None:
        """Handle the reports (and the strategies' reactions) produced by calls made inside a hook."""
        await self._drain()

    def _on_fill(self, fill: Fill, order: Order) -> None:
        self.counters.fills += 1
        self._pending_fills.append((fill, order))

    # ------------------------------------------------------------------ intents
    async def _handle_intents(
        self, strat: Strategy, ctx: StrategyContext, intents: Sequence[Intent], inputs_ref: str
    ) -> list[IntentOutcome]:
        audit = self.audit
        meta = self.strategy_meta.get(strat.strategy_id)
        self.counters.decisions += 1
        decision_id = f"{self.id_prefix}-d{self.counters.decisions}"
        outcomes: list[IntentOutcome] = []
        audit.record(
            "decision",
            {
                "ts_ns": ctx.event_ns,
                "strategy_id": strat.strategy_id,
                "decision_id": decision_id,
                "inputs_ref": inputs_ref,
                "rationale": "; ".join(i.rationale for i in intents if i.rationale)[:2000],
                "tags": ",".join(sorted({t for i in intents for t in i.risk_tags})),
                "code_hash": meta.code_hash if meta else "",
                "params_hash": meta.params_hash if meta else "",
                "data": {"event": self.counters.events},  # index of the market event in the run (replay divergence)
            },
        )
        for intent in intents:
            if not self._accepting or not self.acting:
                return outcomes
            self.counters.intents += 1
            self.record_intent(intent, decision_id)
            if intent.kind is IntentKind.CANCEL:
                target = self.oms.live.get(intent.target or "")
                if target is not None and target.strategy_id == strat.strategy_id:
                    await self.oms.cancel(target.client_order_id, intent.rationale or "strategy cancel")
                outcomes.append(IntentOutcome(intent, None, None, None))
                continue
            verdict = self.check_risk(intent, "staged")
            if not verdict.approved:
                outcomes.append(IntentOutcome(intent, verdict, None, None))
                continue
            if verdict.qty is not None:
                intent = replace(intent, qty=verdict.qty)  # risk approved a smaller size (drawdown throttle)
            admission = self.gate.admit(intent)
            order = None
            if admission is Admission.EXECUTE:
                order = await self.submit(intent)
            elif admission is Admission.STAGED:
                self.counters.staged += 1
            outcomes.append(IntentOutcome(intent, verdict, admission, order))
        return outcomes

    async def propose(self, strategy_id: str, request: object) -> list[IntentOutcome]:
        """An operator's request to a strategy (``Strategy.on_request``), e.g. a manual order. Run it inside the
        loop: ``await engine.call(lambda: engine.propose("manual", order))``. The intents go through the same
        pipeline as any strategy's (audit, risk, gate: staged for confirmation in LIVE). A request the strategy
        refuses raises its ValueError and records nothing."""
        intents = self.request_intents(strategy_id, request)
        if not intents:
            return []
        strat, ctx = self.strategies[strategy_id]
        return await self._handle_intents(strat, ctx, intents, f"request:{strategy_id}")

    def request_intents(self, strategy_id: str, request: object) -> list[Intent]:
        """The intents a strategy makes of an operator's request (``Strategy.on_request``), nothing more: for a
        caller that audits, checks and stages them itself (Telegram's ``/intent manual``). Inside the loop only.
        Raises LookupError for a strategy not in this run, and the strategy's ValueError for a request it refuses."""
        entry = self.strategies.get(strategy_id)
        if entry is None:
            raise LookupError(f"no strategy {strategy_id!r} in this run (running: {', '.join(sorted(self.strategies)) or 'none'})")
        strat, ctx = entry
        ctx.event_ns = self.clock.now_ns()
        ctx.tick = None
        return strat.on_request(ctx, request)

    def record_intent(self, intent: Intent, decision_id: str | None) -> None:
        self.audit.record(
            "intent",
            {
                "ts_ns": intent.ts_ns,
                "strategy_id": intent.strategy_id,
                "intent_id": intent.id,
                "decision_id": decision_id,
                "kind": intent.kind._value_,
                "asset": intent.asset,
                "side": intent.side._value_,
                "qty": intent.qty,
                "order_type": intent.order_type._value_,
                "limit_price": intent.limit_price,
                "tif": intent.tif._value_,
                "urgency": intent.urgency._value_,
                "risk_tags": ",".join(intent.risk_tags),
                "rationale": intent.rationale,
                "target": intent.target,
            },
        )

    def check_risk(self, intent: Intent, stage: str) -> Verdict:
        verdict = self.risk.check(intent, self.view)
        self.audit.record(
            "risk_verdict",
            {
                "strategy_id": intent.strategy_id,
                "intent_id": intent.id,
                "stage": stage,
                "approved": verdict.approved,
                "code": verdict.code.value if verdict.code else None,
                "reason": verdict.reason,
                "inputs": verdict.inputs,
            },
        )
        if verdict.approved:
            self.counters.approved += 1
        else:
            self.counters.blocked += 1
        return verdict

    async def submit(self, intent: Intent) -> Order | None:
        order = await self.oms.submit(intent)
        if order is not None:
            self.counters.orders += 1
            for listener in self.submit_listeners:
                listener(intent, order)
        return order

    async def execute_confirmed(self, intent: Intent) -> tuple[Verdict, Order | None]:
        """For a staged intent an operator confirmed: risk runs again now (the world may have moved)."""
        verdict = self.check_risk(intent, "execution")
        if not verdict.approved:
            return verdict, None
        if verdict.qty is not None:
            intent = replace(intent, qty=verdict.qty)  # only ever smaller than what was confirmed
        order = await self.submit(intent)
        await self._drain()
        return verdict, order

    # ------------------------------------------------------------------ shutdown
    async def shutdown(self, reason: str = "shutdown") -> int:
        """Stop intake, cancel every resting order, handle what that produced, flush the audit log."""
        self._accepting = False
        self._in_dispatch = True
        try:
            for strat, ctx in self.strategies.values():
                strat.on_stop(ctx)  # intents at stop are not executed
            cancelled = await self.oms.cancel_all(reason=reason)
            while self._pending_reports:
                self.oms.on_report(self._pending_reports.popleft())
            self._pending_fills.clear()
        finally:
            self._in_dispatch = False
        await self.flush_audit()
        return cancelled

    # ------------------------------------------------------------------ status
    def pnl(self) -> tuple[Decimal, Decimal, Decimal]:
        marks = {a: t.mid for a, t in self.market.last.items()}
        return self.portfolio.totals(marks)

    def heartbeat_line(self) -> str:
        c = self.counters
        realised, unrealised, fees = self.pnl()
        positions = " ".join(f"{a}={p.qty.normalize():f}" for a, p in sorted(self.portfolio.positions.items())) or "flat"
        return (
            f"heartbeat mode={self.mode.value} ticks={c.ticks} intents={c.intents} blocked={c.blocked} orders={c.orders} "
            f"fills={c.fills} open_orders={len(self.oms.live)} position[{positions}] "
            f"pnl_net={(realised + unrealised - fees).quantize(Decimal('0.01'))} fees={fees.quantize(Decimal('0.01'))}"
        )


class _EngineView:
    """The RiskView the engine gives the risk engine: read-only, no copies."""

    __slots__ = ("_e",)

    def __init__(self, engine: Engine) -> None:
        self._e = engine

    def position(self, asset: str) -> Decimal:
        return self._e.portfolio.qty(asset)

    def open_exposure(self, asset: str) -> tuple[Decimal, Decimal]:
        return self._e.oms.open_exposure(asset)

    def strategy_position(self, strategy_id: str, asset: str) -> Decimal:
        pos = self._e.portfolio.by_strategy.get((strategy_id, asset))
        return pos.qty if pos is not None else ZERO

    def strategy_exposure(self, strategy_id: str, asset: str) -> tuple[Decimal, Decimal]:
        _, _, buys, sells = self.exposures(asset, strategy_id)
        return buys, sells

    def exposures(self, asset: str, strategy_id: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(buys, sells) resting and in flight of the asset, then of one strategy in it: one pass over live orders."""
        buys = sells = sbuys = ssells = ZERO
        for o in self._e.oms.live.values():
            if o.asset == asset:
                q = o.open_qty
                if o.side is Side.BUY:
                    buys += q
                    if o.strategy_id == strategy_id:
                        sbuys += q
                else:
                    sells += q
                    if o.strategy_id == strategy_id:
                        ssells += q
        return buys, sells, sbuys, ssells

    def mark(self, asset: str) -> Decimal | None:
        tick = self._e.market.last.get(asset)
        return tick.mid if tick is not None else None

    def marks(self) -> dict[str, Decimal]:
        return {a: t.mid for a, t in self._e.market.last.items()}

    def tick(self, asset: str) -> Tick | None:
        return self._e.market.last.get(asset)

    def book(self, asset: str) -> Book | None:
        return self._e.market.books.get(asset)

    def last_update_ns(self, asset: str) -> int | None:
        return self._e.market.last_update_mono_ns.get(asset)

    def net_pnl(self, strategy_id: str | None = None) -> Decimal:
        portfolio, last = self._e.portfolio, self._e.market.last
        total = ZERO
        if strategy_id is None:
            for asset, pos in portfolio.positions.items():
                t = last.get(asset)
                total += pos.net_pnl(t.mid if t is not None else None)
        else:
            for (sid, asset), pos in portfolio.by_strategy.items():
                if sid == strategy_id:
                    t = last.get(asset)
                    total += pos.net_pnl(t.mid if t is not None else None)
        return total

    def strategy_ids(self) -> Iterable[str]:
        return {sid for sid, _ in self._e.portfolio.by_strategy if not sid.startswith("_")}  # "_risk": system orders

    def now_ns(self) -> int:
        return self._e.clock.now_ns()

    def monotonic_ns(self) -> int:
        return self._e.clock.monotonic_ns()

    def venue(self) -> str:
        return self._e.oms.venue_name


__all__ = ["Admission", "AutoGate", "Counters", "Engine", "ExecutionGate", "IntentOutcome", "StrategyMeta", "ZERO"]
