"""Every kind of row the OMS writes goes into the real append-only store, on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from bot.domain.errors import ErrorCode
from bot.domain.intent import Side
from bot.domain.position import Portfolio
from bot.engine.clock import ManualClock
from bot.oms.limits import OmsLimits
from bot.oms.orders import OrderManager
from bot.oms.reconcile import Reconciler
from bot.store import migrate
from bot.store.audit import AuditStore
from bot.store.models import FillRow, OrderEventRow, OrderRow, ReconciliationRow, StateTransitionRow
from tests.conftest import DB
from tests.oms.support import ASSET, SEC, T0, D, ModelVenue, direct_call, instrument


async def test_oms_rows_round_trip_through_the_store(db: DB) -> None:
    engine = db.engine()
    await migrate.upgrade(engine)
    clock = ManualClock(T0)
    audit = AuditStore(engine, run_id="r1", mode="DRY_RUN", version_hash="v", config_hash="c" * 64, now_ns=clock.now_ns)
    venue = ModelVenue(clock)
    safe: list[ErrorCode] = []
    oms = OrderManager(
        venue=venue, venue_name="model", portfolio=Portfolio(), audit=audit, clock=clock,
        instruments={ASSET: instrument()}, limits=OmsLimits(grace_window_s=1), on_safe=lambda c, _r: safe.append(c), id_prefix="run0",
    )
    from bot.domain.intent import Intent, OrderType

    def intent(n: int, qty: str = "1.000000001") -> Intent:
        return Intent(f"run0-{n}", clock.now_ns(), "s1", ASSET, Side.BUY, D(qty), OrderType.LIMIT, D("100.005"))

    rec = Reconciler(oms)
    await rec.take_baseline(direct_call)
    order = await oms.submit(intent(1))
    assert order is not None and order.qty == D("1.000") and order.limit_price == D("100.00")
    assert await oms.submit(intent(1)) is None  # refused row
    venue.execute(order.client_order_id, D("0.123"), fee=D("0.0001"), fee_ccy="BTC")
    venue.deliver(oms)
    venue.positions_extra[ASSET] = D("5")
    clock.advance(2 * SEC)
    await rec.reconcile_once(direct_call)
    clock.advance(2 * SEC)
    await rec.reconcile_once(direct_call)  # persistent -> SAFE + incident
    assert safe == [ErrorCode.POSITION_MISMATCH]
    await audit.flush()
    async with engine.connect() as conn:
        orders = (await conn.execute(select(OrderRow))).all()
        events = (await conn.execute(select(OrderEventRow.event, OrderEventRow.code))).all()
        fills = (await conn.execute(select(FillRow))).all()
        transitions = (await conn.execute(select(StateTransitionRow.kind, StateTransitionRow.to_state, StateTransitionRow.code))).all()
        recs = (await conn.execute(select(ReconciliationRow))).all()
    await engine.dispose()
    assert len(orders) == 1 and orders[0].qty == Decimal("1.000")
    assert ("refused", "INVALID_ORDER") in events and ("fill", None) in events
    assert fills[0].qty == Decimal("0.123") and fills[0].fee_quote == Decimal("0.010000") and fills[0].fee_currency == "BTC"
    assert fills[0].data == {"source": "stream"}
    kinds = {(k, s) for k, s, _ in transitions}
    assert {("dirty", "DIRTY"), ("baseline", "SET"), ("oms_safe", "SAFE"), ("incident", "OPEN")} <= kinds
    mismatch = [r for r in recs if r.asset == ASSET]
    assert mismatch and mismatch[-1].venue_qty == Decimal("5.123") and mismatch[-1].internal_qty == Decimal("0.1229")
    assert any(r.asset is None and r.ok is False for r in recs)
