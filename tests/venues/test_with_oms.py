"""The OMS (bot/oms/orders.py) driving the live adapter against FakeBinance: the two meet where they must."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from bot.domain.intent import Intent, OrderType, Side
from bot.domain.order import OrderStatus
from bot.domain.position import Portfolio
from bot.engine.clock import WallClock
from bot.oms.orders import OrderManager
from tests.fakes.binance_server import FakeBinance
from tests.venues.helpers import Harness

D = Decimal


class ListAudit:
    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    def record(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.append((kind, row))

    def needs_flush(self) -> bool:
        return False

    async def flush(self) -> None:
        return None


def oms_for(harness: Harness) -> tuple[OrderManager, Portfolio, ListAudit]:
    audit, portfolio = ListAudit(), Portfolio()
    oms = OrderManager(
        venue=harness.venue, venue_name="binance", portfolio=portfolio, audit=audit, clock=WallClock(), instruments=harness.venue.instruments
    )
    harness.venue.set_report_sink(lambda report: (harness.reports(report), oms.on_report(report)))
    return oms, portfolio, audit


def intent(n: int, side: Side = Side.BUY, qty: str = "0.1", price: str = "99") -> Intent:
    return Intent(f"run-{n}", time.time_ns(), "quote", "BTC/USDT", side, D(qty), OrderType.LIMIT, D(price))


async def test_submit_fill_and_position_through_the_oms(fake: FakeBinance, harness: Harness) -> None:
    oms, portfolio, _ = oms_for(harness)
    order = await oms.submit(intent(1))
    assert order is not None and order.status is OrderStatus.ACCEPTED and order.venue_order_id
    fake.run_path([("98.90", "99.00")])
    await harness.reports.wait_for(lambda r: r.fill is not None)
    assert order.status is OrderStatus.FILLED and order.filled_qty == D("0.1")
    assert portfolio.qty("BTC/USDT") == D("0.1")


async def test_unknown_status_submit_is_resolved_by_lookup_not_resubmitted(fake: FakeBinance, harness: Harness) -> None:
    oms, _, audit = oms_for(harness)
    fake.submit_unknown_status_next()
    order = await oms.submit(intent(2))
    assert order is not None and order.status is OrderStatus.ACCEPTED  # found at the venue by client id
    assert len(fake.requests_for("POST", "order")) == 1
    assert any(kind == "order_event" and row["event"] == "lookup" for kind, row in audit.rows)


async def test_cancel_through_the_oms(fake: FakeBinance, harness: Harness) -> None:
    oms, _, _ = oms_for(harness)
    order = await oms.submit(intent(3))
    assert order is not None
    assert await oms.cancel(order.client_order_id, "test")
    assert order.status is OrderStatus.CANCELED and fake.open_orders("BTC/USDT") == []


async def test_rejection_reaches_the_oms_with_its_code(fake: FakeBinance, harness: Harness) -> None:
    oms, _, audit = oms_for(harness)
    order = await oms.submit(intent(4, qty="50"))  # 50 * 99 USDT: more than the balance
    assert order is not None and order.status is OrderStatus.REJECTED
    assert any(row.get("code") == "INSUFFICIENT_BALANCE" for kind, row in audit.rows if kind == "order_event")
