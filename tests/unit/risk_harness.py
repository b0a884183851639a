"""A real engine + simulated venue + risk runtime on an injected clock, for the risk tests (no database).

``Harness.send(*ticks)`` hands one batch to the running engine and returns once that batch has been handled
completely (its iteration's guards, ticks, reports, strategy reactions and after-hooks).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from decimal import Decimal as D
from pathlib import Path
from typing import Any

from bot.control.arming import Arming
from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import Intent, OrderType, Side, TimeInForce
from bot.domain.market import Tick
from bot.domain.modes import Mode
from bot.domain.position import Portfolio
from bot.domain.venue import PositionUpdate
from bot.engine.clock import ManualClock
from bot.engine.loop import AutoGate, Engine, StrategyMeta
from bot.engine.market_state import MarketState
from bot.engine.risk_runtime import RiskRuntime, VenueTap, connect_tap
from bot.engine.sim_venue import SimulatedVenue
from bot.engine.strategy import Strategy, StrategyContext
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.risk.drawdown import AccountValue
from bot.risk.engine import RiskEngine
from bot.risk.limits import RiskLimits, StaleLimits
from bot.risk.safety import RECOVERY_CHECKLIST, SafetyController, TradingState
from bot.risk.supervisor import RiskSupervisor

T0 = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
MS = 1_000_000
S = 1_000_000_000
BTC = "BTC/USDT"


def instrument(asset: str = BTC, fee: str = "0") -> Instrument:
    base, quote = asset.split("/")
    return Instrument(asset, "sim", base + quote, base, quote, D("0.01"), D("0.00001"), D("0.00001"), D("5"),
                      fees=FeeModel(maker=D(fee), taker=D(fee)))


class ListAudit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.append((kind, dict(row)))

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for k, r in self.rows if k == kind]

    def transitions(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.of("state_transition") if kind is None or r["kind"] == kind]


class QueueFeed:
    def __init__(self) -> None:
        self.q: asyncio.Queue[list[Tick] | None] = asyncio.Queue()

    async def batches(self) -> AsyncIterator[list[Tick]]:
        while True:
            batch = await self.q.get()
            if batch is None:
                return
            yield batch

    async def close(self) -> None:
        return None


class Scripted(Strategy):
    """Emits whatever the test queued, on the next tick of its asset (``plan``), and records what it saw."""

    name = "scripted"

    def __init__(self, strategy_id: str = "s1", assets: Sequence[str] = (BTC,)) -> None:
        super().__init__(strategy_id, {}, assets)
        self.plan: deque[Callable[[StrategyContext], list[Intent]]] = deque()
        self.on_tick_hook: Callable[[StrategyContext], None] | None = None
        self.ticks = 0
        self.advice_seen: list[Any] = []

    def on_tick(self, ctx: StrategyContext) -> list[Intent]:
        self.ticks += 1
        assert ctx.tick is not None
        self.advice_seen.append(ctx.advice(ctx.tick.asset))
        if self.on_tick_hook is not None:
            self.on_tick_hook(ctx)
        out: list[Intent] = []
        while self.plan:
            out += self.plan.popleft()(ctx)
        return out


def limits(**kw: Any) -> RiskLimits:
    """Test limits: the clock jumps in tests, so staleness is off unless a test sets it."""
    base: dict[str, Any] = dict(max_trade_qty=D("0.02"), max_order_notional=D("2000"), max_position_qty=D("0.05"), account_value=D("100000"),
                                stale=StaleLimits(asset_stale_s=3600, recover_s=5))
    base.update(kw)
    return RiskLimits(**base)


class Harness:
    def __init__(
        self,
        lim: RiskLimits | None = None,
        strategies: Sequence[Strategy] | None = None,
        *,
        tmp_path: Path,
        assets: Sequence[str] = (BTC,),
        venue: Any = None,
        account: AccountValue | None = None,
        fee: str = "0",
    ) -> None:
        self.clock = ManualClock(T0)
        self.audit = ListAudit()
        self.instruments = {a: instrument(a, fee) for a in assets}
        self.sim = SimulatedVenue(self.instruments, self.clock, balances={"USDT": D("100000")})
        self.tap = VenueTap(venue if venue is not None else self.sim, self.clock)
        self.portfolio = Portfolio()
        self.market = MarketState()
        # the OMS's own spam gates are not what these tests exercise: generous limits, SAFE requests go to risk
        self.oms = OrderManager(venue=self.tap, venue_name="sim", portfolio=self.portfolio, audit=self.audit, clock=self.clock,
                                instruments=self.instruments, limits=OmsLimits(max_orders_per_s=D("1000"), flipflop_max_cycles=100_000),
                                on_safe=lambda code, reason: self.runtime.on_safe(code, reason))
        self.safety = SafetyController(self.audit, self.clock, required_checks=RECOVERY_CHECKLIST)
        self.lim = lim or limits()
        self.risk = RiskEngine(self.lim, self.safety, assets=assets, start_ns=self.clock.monotonic_ns())
        self.strategies = list(strategies) if strategies is not None else [Scripted()]
        self.engine = Engine(
            mode=Mode.DRY_RUN, clock=self.clock, audit=self.audit, risk=self.risk, oms=self.oms, portfolio=self.portfolio,
            market=self.market, instruments=self.instruments, strategies=self.strategies,
            strategy_meta={s.strategy_id: StrategyMeta("c", "p") for s in self.strategies}, gate=AutoGate(), id_prefix="t",
        )
        self.sim.set_report_sink(self.engine.on_report)
        self.engine.tick_listeners.append(self.sim.on_tick)
        self.kill_file = tmp_path / "KILL"
        self.supervisor = RiskSupervisor(self.risk, account)
        self.runtime = RiskRuntime(self.engine, self.risk, self.supervisor, kill_file=self.kill_file).install()
        connect_tap(self.tap, self.runtime)
        self.arming = Arming(self.clock, self.audit, 3600)
        self.safety.add_listener(lambda o, n, c, r: self.arming.disarm(f"trading state {n.value}: {r}") if n is not TradingState.ACTIVE else None)
        # a venue position stream that agrees with our fills: it cleans the OMS's dirty flags (spec 4.7.2) as a
        # real venue's position updates would, at the start and the end of every iteration
        self.engine.guards.insert(0, self._position_stream)
        self.engine.after_dispatch.insert(0, self._position_stream)
        self.feed = QueueFeed()
        self._seq = 0
        self._waiting: tuple[Tick, asyncio.Event] | None = None
        self.engine.tick_listeners.insert(0, self._seen)
        self._task: asyncio.Task[None] | None = None

    async def _position_stream(self) -> None:
        if self.oms.gates.dirty:
            now = self.clock.now_ns()
            for asset in list(self.instruments):
                self.oms.on_position(PositionUpdate("sim", asset, self.oms.expected_venue_qty(asset), now, now))

    @property
    def s1(self) -> Scripted:
        s = self.strategies[0]
        assert isinstance(s, Scripted)
        return s

    def _seen(self, tick: Tick) -> None:
        if self._waiting is not None and tick is self._waiting[0]:
            self._waiting[1].set()

    async def __aenter__(self) -> Harness:
        self._task = asyncio.create_task(self.engine.run(self.feed))
        await self.engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.engine.stop()
        assert self._task is not None
        async with asyncio.timeout(5):
            await self._task

    def tick(self, bid: str | D, ask: str | D, size: str | D = "1.5", asset: str = BTC, ask_size: str | D | None = None) -> Tick:
        self._seq += 1
        now = self.clock.now_ns()
        return Tick(asset, D(bid), D(size), D(ask), D(ask_size if ask_size is not None else size), now, now, self._seq, "sim")

    async def send(self, *ticks: Tick, advance_ms: int = 0) -> None:
        """One batch through the engine; advance the clock first. Ticks get the clock's time."""
        if advance_ms:
            self.clock.advance(advance_ms * MS)
        now = self.clock.now_ns()
        ticks = tuple(t._replace(ts_local_ns=now, ts_venue_ns=now) for t in ticks)
        done = asyncio.Event()
        self._waiting = (ticks[-1], done)
        self.feed.q.put_nowait(list(ticks))
        async with asyncio.timeout(5):
            await done.wait()
            await self.engine.call(lambda: None)  # the batch's iteration is over
        self._waiting = None

    async def px(self, bid: str, ask: str, size: str = "1.5", advance_ms: int = 100, asset: str = BTC) -> None:
        await self.send(self.tick(bid, ask, size, asset), advance_ms=advance_ms)

    async def idle(self, advance_ms: int = 0) -> None:
        """An iteration without market data (the service's timer does this)."""
        if advance_ms:
            self.clock.advance(advance_ms * MS)
        async with asyncio.timeout(5):
            await self.engine.call(lambda: None)

    async def check(self, intent: Intent, stage: str = "staged") -> tuple[Any, dict[str, Any]]:
        """Run the real engine's audited risk check inside the loop; return the verdict and its audit row."""
        verdict = await self.engine.call(lambda: self.engine.check_risk(intent, stage))
        row = [r for r in self.audit.of("risk_verdict") if r["intent_id"] == intent.id][-1]
        return verdict, row

    def intent(self, side: Side, qty: str | D, price: str | D | None = None, *, sid: str = "s1", asset: str = BTC,
               order_type: OrderType | None = None, tif: TimeInForce = TimeInForce.GTC, **kw: Any) -> Intent:
        ot = order_type or (OrderType.LIMIT if price is not None else OrderType.MARKET)
        return Intent(self.engine.next_id(), self.clock.now_ns(), sid, asset, side, D(qty), ot,
                      None if price is None else D(price), tif, **kw)

    async def place(self, intent: Intent) -> Any:
        """The operator path: risk at execution, then the OMS (what a confirmed intent does)."""
        return await self.engine.call(lambda: self.engine.execute_confirmed(intent))

    async def resume(self, by: str = "alice", scope: str = "global") -> tuple[bool, list[Any]]:
        """The operator's resume, inside the engine loop (as the control plane calls it)."""
        return await self.engine.call(lambda: self.runtime.resume(by, scope))

    async def confirm_limits(self, by: str = "alice") -> None:
        await self.engine.call(lambda: self.runtime.confirm_limits(by))

    def orders_sent(self) -> list[dict[str, Any]]:
        return self.audit.of("order")
