"""A real engine loop around an OMS and a venue, wired the way the composition root wires them, for the chaos
scenarios: reports arrive through ``engine.on_report``, commands and reconciliation run through ``engine.call``,
SAFE goes to a real ``SafetyController``. No strategy: the test submits intents through the command API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.instrument import Instrument
from bot.domain.intent import Intent, OrderType, Side
from bot.domain.market import Tick
from bot.domain.modes import Mode
from bot.domain.order import Order
from bot.domain.ports import Clock, Venue
from bot.domain.position import Portfolio
from bot.engine.loop import AutoGate, Engine
from bot.engine.market_state import MarketState
from bot.oms.feed import FeedHealth
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.oms.reconcile import Reconciler, ReconcileResult
from bot.risk.engine import RiskEngine, RiskLimits
from bot.risk.safety import Check, SafetyController, TradingState
from tests.oms.support import MemoryAudit

BOUND = 5.0


class IdleFeed:
    """A market feed that yields nothing until closed: the tests drive everything through ``engine.call``."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    async def batches(self) -> AsyncIterator[Sequence[Tick]]:
        await self._closed.wait()
        return
        yield  # pragma: no cover - makes this an async generator

    async def close(self) -> None:
        self._closed.set()


@dataclass
class EngineRig:
    engine: Engine
    oms: OrderManager
    reconciler: Reconciler
    safety: SafetyController
    audit: MemoryAudit
    portfolio: Portfolio
    clock: Clock
    alerts: list[tuple[str, str, str]]
    task: asyncio.Task[None]
    feed: IdleFeed
    submitted: list[Order | None] = field(default_factory=list)

    async def call(self, fn: Callable[[], Any]) -> Any:
        async with asyncio.timeout(BOUND):
            return await self.engine.call(fn)

    async def submit(self, side: Side, qty: str, price: str, asset: str = "BTC/USDT", strategy: str = "chaos") -> Order | None:
        def make() -> Any:
            intent = Intent(self.engine.next_id(), self.clock.now_ns(), strategy, asset, side, Decimal(qty), OrderType.LIMIT, Decimal(price))
            return self.engine.submit(intent)

        order = await self.call(make)
        self.submitted.append(order)
        return order

    async def cancel(self, coid: str) -> bool:
        return bool(await self.call(lambda: self.oms.cancel(coid, "chaos test")))

    async def settle(self) -> None:
        """Everything queued so far has been handled (the queue is FIFO)."""
        await self.call(lambda: None)

    async def reconcile(self) -> ReconcileResult:
        async with asyncio.timeout(BOUND):
            return await self.reconciler.reconcile_once(self.engine.call)

    async def stop(self) -> None:
        self.engine.stop()
        await self.feed.close()
        async with asyncio.timeout(BOUND):
            await self.task

    def refusal(self, asset: str = "BTC/USDT") -> ErrorCode | None:
        refusal = self.oms.check_new_order(asset)
        return refusal.code if refusal else None


async def start_rig(
    venue: Venue,
    instruments: Mapping[str, Instrument],
    clock: Clock,
    *,
    limits: OmsLimits | None = None,
    feed: FeedHealth | None = None,
    id_prefix: str = "chaos0",
    freshness_clock: Callable[[], int] | None = None,
    set_sink: bool = True,
) -> EngineRig:
    audit = MemoryAudit()
    portfolio = Portfolio()
    alerts: list[tuple[str, str, str]] = []
    safety = SafetyController(audit, clock)
    oms = OrderManager(
        venue=venue,
        venue_name=venue.name,
        portfolio=portfolio,
        audit=audit,
        clock=clock,
        instruments=instruments,
        limits=limits or OmsLimits(),
        on_safe=lambda code, reason: safety.enter(TradingState.SAFE, code, reason),
        alert=lambda sev, key, text: alerts.append((sev, key, text)),
        feed=feed,
        id_prefix=id_prefix,
        freshness_clock=freshness_clock,
    )
    reconciler = Reconciler(oms)
    safety.add_check(lambda: Check("positions_reconciled", *reconciler.resume_check()))
    engine = Engine(
        mode=Mode.DRY_RUN,
        clock=clock,
        audit=audit,
        risk=RiskEngine(RiskLimits(max_trade_qty=Decimal("10"), max_order_notional=Decimal("100000"), max_position_qty=Decimal("100")), safety),
        oms=oms,
        portfolio=portfolio,
        market=MarketState(),
        instruments=instruments,
        strategies=[],
        strategy_meta={},
        gate=AutoGate(),
        id_prefix=id_prefix,
    )
    engine.guards.append(oms.guard)
    if set_sink:
        venue.set_report_sink(engine.on_report)
    await reconciler.take_baseline(_direct)
    idle = IdleFeed()
    task = asyncio.create_task(engine.run(idle), name="chaos-engine")
    return EngineRig(engine, oms, reconciler, safety, audit, portfolio, clock, alerts, task, idle)


async def _direct(fn: Callable[[], Any]) -> Any:
    result = fn()
    if asyncio.iscoroutine(result):
        result = await result
    return result
