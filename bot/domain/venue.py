"""What crosses the venue boundary: order requests, execution reports, venue snapshots, venue errors."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bot.domain.errors import DomainError, ErrorCode
from bot.domain.fill import Fill
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.order import OrderStatus


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    asset: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    tif: TimeInForce
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """An order update from the venue: acknowledgement, rejection, fill, cancel, expiry.

    ``status`` is the order status the venue reports after this event. ``fill`` is set for executions.
    """

    venue: str
    client_order_id: str
    venue_order_id: str | None
    status: OrderStatus
    ts_ns: int  # venue event time (UTC ns)
    local_ts_ns: int  # when we received it
    fill: Fill | None = None
    cum_filled_qty: Decimal | None = None
    code: ErrorCode | None = None
    reason: str = ""
    seq: int | None = None  # venue sequence (fill seq / update id) when provided
    latency_ns: int | None = None  # request -> ack, for the answer to our own request


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """The venue's own view of one asset's position, pushed on its stream (spec 10 ``subscribe_positions``).

    ``qty`` has the venue's position semantics for the canonical asset: spot = total base balance (free +
    locked), derivatives = signed contracts. Delivered through the same report sink as execution reports;
    the OMS uses it to confirm (clean) a dirty position, never to change the running sum of fills.
    """

    venue: str
    asset: str
    qty: Decimal
    ts_ns: int  # venue event time (UTC ns)
    local_ts_ns: int


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """A venue's view of one order (REST snapshot, reconciliation)."""

    client_order_id: str
    venue_order_id: str
    asset: str
    side: Side
    qty: Decimal
    filled_qty: Decimal
    limit_price: Decimal | None
    order_type: OrderType
    status: OrderStatus
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


class VenueError(DomainError):
    """A venue call failed. ``retry_after_s`` carries the venue's Retry-After when it sent one.

    ``idempotent_safe`` says whether the failed call can be retried blindly (never true for a submit).
    """

    def __init__(self, code: ErrorCode, message: str, *, retry_after_s: float | None = None, venue_code: str | None = None) -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s
        self.venue_code = venue_code
