"""The engine loop with the simulated venue: operator requests, books, event indexes, audit back-pressure, ctx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal as D
from typing import Any

import pytest

from bot.domain.instrument import FeeModel, Instrument
from bot.domain.intent import OrderType, Side
from bot.domain.market import Book, BookLevel, Tick
from bot.domain.modes import Mode
from bot.domain.order import OrderStatus
from bot.domain.position import Portfolio
from bot.engine.clock import ManualClock
from bot.engine.loop import Admission, AutoGate, Engine, StrategyMeta
from bot.engine.market_state import MarketState
from bot.engine.sim_venue import SimulatedVenue
from bot.engine.strategy import Strategy, StrategyContext
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.risk.engine import RiskEngine
from bot.risk.limits import RiskLimits
from bot.risk.safety import SafetyController
from bot.strategies.manual import ManualOrder, ManualOrderError, ManualStrategy

BTC = Instrument("BTC/USDT", "sim", "BTCUSDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("0.00001"), D("5"), fees=FeeModel(D("0.001"), D("0.001")))
T0 = 1_767_225_600 * 1_000_000_000


class MemoryAudit:
    def __init__(self, batch: int = 10**9) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []
        self.batch = batch
        self.pending = 0
        self.fail = False
        self.flushes = 0

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.append((kind, dict(row)))
        self.pending += 1

    def needs_flush(self) -> bool:
        return self.pending >= self.batch

    async def flush(self) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("disk full")
        self.flushes += 1
        self.pending = 0

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [r for k, r in self.rows if k == kind]


class EveryNth(Strategy):
    """Places one bid every n-th tick (a strategy used only here)."""

    name = "every_nth"

    def on_tick(self, ctx: StrategyContext) -> list[Any]:
        t = ctx.tick
        assert t is not None
        if t.seq % int(self.params.get("n", 3)):
            return []
        return [ctx.place(t.asset, Side.BUY, D("0.001"), price=t.bid - D("10"), rationale=f"seq {t.seq}")]


def build(strategies: Sequence[Strategy], audit: MemoryAudit | None = None) -> tuple[Engine, SimulatedVenue, MemoryAudit]:
    clock = ManualClock(T0)
    audit = audit or MemoryAudit()
    # no BTC held: the venue's position updates (spot: the base balance) agree with the running sum of fills
    venue = SimulatedVenue({"BTC/USDT": BTC}, clock, balances={"USDT": D("100000")})
    portfolio = Portfolio()
    oms = OrderManager(
        venue=venue, venue_name="sim", portfolio=portfolio, audit=audit, clock=clock, instruments={"BTC/USDT": BTC},
        limits=OmsLimits(max_orders_per_s=D("1000"), flipflop_max_cycles=100_000),
    )
    risk = RiskEngine(RiskLimits(D("1"), D("100000"), D("10")), SafetyController(audit, clock), assets=["BTC/USDT"], start_ns=T0)
    engine = Engine(
        mode=Mode.REPLAY, clock=clock, audit=audit, risk=risk, oms=oms,
        portfolio=portfolio, market=MarketState(), instruments={"BTC/USDT": BTC}, strategies=strategies,
        strategy_meta={s.strategy_id: StrategyMeta("c", "p") for s in strategies}, gate=AutoGate(), id_prefix="t",
        audit_high_water=5,
    )
    venue.set_report_sink(engine.on_report)
    engine.tick_listeners.append(venue.on_tick)
    engine.book_listeners.append(venue.on_book)
    return engine, venue, audit


def tick(n: int, bid: str = "60000.00", ask: str = "60000.01", size: str = "1") -> Tick:
    ts = T0 + n * 100_000_000
    return Tick("BTC/USDT", D(bid), D(size), D(ask), D(size), ts, ts, n, "sim")


class ListFeed:
    """Yields its batches; with ``gate``, waits for it after the first ``hold`` batches (the test acts meanwhile)."""

    def __init__(self, batches: Sequence[Sequence[Tick | Book]], *, hold: int | None = None) -> None:
        self._batches = batches
        self._hold = hold
        self.gate = asyncio.Event()
        self.held = asyncio.Event()

    async def batches(self) -> AsyncIterator[Sequence[Tick | Book]]:
        for i, b in enumerate(self._batches):
            if i == self._hold:
                self.held.set()
                await self.gate.wait()
            yield b
            await asyncio.sleep(0)

    async def close(self) -> None:
        return None


async def while_running(engine: Engine, feed: ListFeed, action: Any) -> Any:
    """Run the engine on ``feed``; when the feed holds, run ``action`` inside the loop (engine.call), then finish."""
    task = asyncio.create_task(engine.run(feed))
    async with asyncio.timeout(10):
        await feed.held.wait()
        try:
            return await engine.call(action)
        finally:
            feed.gate.set()
            await task


async def test_decisions_carry_the_market_event_index() -> None:
    engine, _venue, audit = build([EveryNth("e", {"n": 3}, ["BTC/USDT"])])
    book = Book("BTC/USDT", (BookLevel(D("59999"), D("1")),), (BookLevel(D("60001"), D("1")),), T0, T0, 1, "sim")
    await engine.run(ListFeed([[tick(1), tick(2), book], [tick(3), tick(4), tick(5), tick(6)]]))
    decisions = audit.of("decision")
    # ticks with seq 3 and 6 decide; they are market events 4 and 7 (the book is event 3)
    assert [d["data"]["event"] for d in decisions] == [4, 7]
    assert [d["inputs_ref"] for d in decisions] == ["sim:BTC/USDT:3", "sim:BTC/USDT:6"]
    assert engine.counters.events == 7 and engine.counters.ticks == 6 and engine.counters.books == 1
    assert engine.market.books["BTC/USDT"] == book


async def test_operator_request_goes_through_the_pipeline() -> None:
    engine, _venue, audit = build([ManualStrategy("manual", {}, ["BTC/USDT"])])
    feed = ListFeed([[tick(1)], [tick(2, "59980.00", "59985.00")]], hold=1)  # then the ask comes down through the bid
    order = ManualOrder.parse("buy BTC/USDT 0.01 limit 59990")
    [outcome] = await while_running(engine, feed, lambda: engine.propose("manual", order))
    assert outcome.verdict is not None and outcome.verdict.approved and outcome.admission is Admission.EXECUTE
    assert outcome.order is not None and outcome.order.limit_price == D("59990")
    [decision] = audit.of("decision")
    [intent] = audit.of("intent")
    assert decision["inputs_ref"] == "request:manual" and intent["rationale"] == "operator: buy BTC/USDT 0.01 limit 59990 gtc"
    assert intent["decision_id"] == decision["decision_id"] and intent["risk_tags"] == "manual"
    assert engine.portfolio.qty("BTC/USDT") == D("0.01") and outcome.order.status is OrderStatus.FILLED  # on the second tick
    assert [(f["qty"], f["price"], f["is_maker"]) for f in audit.of("fill")] == [(D("0.01"), D("59990"), True)]
    # a request the strategy refuses records nothing
    rows = len(audit.rows)
    with pytest.raises(ManualOrderError, match="tick size"):
        await engine.propose("manual", "buy BTC/USDT 0.01 limit 59990.005")
    with pytest.raises(LookupError, match="no strategy 'quote'"):
        await engine.propose("quote", "buy BTC/USDT 0.01 market")
    assert len(audit.rows) == rows


async def test_a_manual_market_order_walks_the_l2_book_from_the_feed() -> None:
    engine, _venue, audit = build([ManualStrategy("manual", {}, ["BTC/USDT"])])
    book = Book("BTC/USDT", (BookLevel(D("59999.99"), D("1")),),
                (BookLevel(D("60000.01"), D("0.002")), BookLevel(D("60000.50"), D("0.005"))), T0, T0, 1, "sim")
    feed = ListFeed([[tick(1, size="0.002"), book], [tick(2)]], hold=1)
    [outcome] = await while_running(engine, feed, lambda: engine.propose("manual", "buy BTC/USDT 0.004 market"))
    assert outcome.order is not None and outcome.order.order_type is OrderType.MARKET
    assert [(f["qty"], f["price"]) for f in audit.of("fill")] == [(D("0.002"), D("60000.01")), (D("0.002"), D("60000.50"))]


async def test_audit_is_written_in_the_background_and_a_failed_write_stops_the_engine() -> None:
    audit = MemoryAudit(batch=3)
    engine, _venue, _ = build([EveryNth("e", {"n": 1}, ["BTC/USDT"])], audit)
    await engine.run(ListFeed([[tick(i)] for i in range(1, 6)]))
    await engine.flush_audit()
    assert audit.flushes >= 2 and audit.pending == 0
    audit2 = MemoryAudit(batch=3)
    audit2.fail = True
    engine2, _venue2, _ = build([EveryNth("e", {"n": 1}, ["BTC/USDT"])], audit2)
    with pytest.raises(OSError, match="disk full"):
        await engine2.run(ListFeed([[tick(i)] for i in range(1, 50)]))


def test_the_strategy_context_offers_no_way_to_the_venue_or_the_store() -> None:
    engine, _venue, _audit = build([ManualStrategy("manual", {}, ["BTC/USDT"])])
    _strat, ctx = engine.strategies["manual"]
    public = {name: getattr(ctx, name) for name in dir(ctx) if not name.startswith("_")}
    forbidden = (OrderManager, SimulatedVenue, MemoryAudit, Engine, Portfolio, MarketState)
    assert not [n for n, v in public.items() if isinstance(v, forbidden) or isinstance(getattr(v, "__self__", None), forbidden)]
    assert set(public) == {
        "advice", "book", "cancel", "event_ns", "history", "instrument", "last", "now_ns", "open_orders", "params", "place",
        "position", "set_advice_source", "strategy_id", "tick",
    }
    with pytest.raises(AttributeError):
        ctx.venue = object()  # type: ignore[attr-defined]  # __slots__: nothing can be attached to it either
