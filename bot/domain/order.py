"""The order and its state machine, as a transition table. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from bot.domain.errors import DomainError, ErrorCode
from bot.domain.intent import OrderType, Side, TimeInForce
from bot.domain.money import ZERO


class OrderStatus(str, Enum):
    NEW = "NEW"  # created from an approved intent, not yet sent
    PENDING_SUBMIT = "PENDING_SUBMIT"  # sent, no answer yet
    # The venue could not tell us whether the order exists: the submit timed out or answered "unknown
    # status" and the lookup by client id failed or did not find it (yet), or a venue that had acknowledged
    # it no longer lists it. Counted as live exposure and blocking new orders for the asset until a lookup
    # or a reconciliation resolves it. Kept apart from PENDING_SUBMIT so that "in flight for a few ms" and
    # "we do not know" never look the same to an operator or to the reconciler.
    UNKNOWN = "UNKNOWN"
    ACCEPTED = "ACCEPTED"  # acknowledged by the venue, resting
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    def __str__(self) -> str:
        return self.value


TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})
# States in which the order may still execute at the venue (count as resting exposure).
LIVE_STATES = frozenset(
    {
        OrderStatus.NEW,
        OrderStatus.PENDING_SUBMIT,
        OrderStatus.UNKNOWN,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
    }
)

S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.NEW: frozenset({S.PENDING_SUBMIT, S.REJECTED, S.CANCELED}),
    S.PENDING_SUBMIT: frozenset(
        {S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.REJECTED, S.CANCELED, S.EXPIRED, S.PENDING_CANCEL, S.UNKNOWN}
    ),
    # resolved by a lookup, a late report or reconciliation; REJECTED = the venue has no such order
    S.UNKNOWN: frozenset({S.ACCEPTED, S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.REJECTED}),
    # UNKNOWN from an acknowledged state: the venue no longer lists an order it had acknowledged
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.UNKNOWN}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELED, S.EXPIRED, S.UNKNOWN}),
    # a cancel can be refused (the order is still there) or overtaken by fills
    S.PENDING_CANCEL: frozenset({S.CANCELED, S.PARTIALLY_FILLED, S.FILLED, S.ACCEPTED, S.EXPIRED, S.UNKNOWN}),
    # terminal states: only a late fill may still move CANCELED/EXPIRED to FILLED (the fill happened)
    S.CANCELED: frozenset({S.FILLED}),
    S.EXPIRED: frozenset({S.FILLED}),
    S.FILLED: frozenset(),
    S.REJECTED: frozenset(),
}


def can_transition(src: OrderStatus, dst: OrderStatus) -> bool:
    return dst in TRANSITIONS[src]


@dataclass(slots=True)
class Order:
    """An order the OMS tracks. Quantities are positive; ``side`` carries the sign."""

    client_order_id: str
    intent_id: str
    strategy_id: str
    venue: str
    asset: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    tif: TimeInForce
    created_ns: int
    status: OrderStatus = OrderStatus.NEW
    venue_order_id: str | None = None
    filled_qty: Decimal = ZERO
    notional_filled: Decimal = ZERO  # sum of qty * price over fills, for the average price
    fees: Decimal = ZERO
    fill_ids: set[str] = field(default_factory=set)
    tag: str = ""
    reduce_only: bool = False
    reject_reason: str = ""
    updated_ns: int = 0
    intent_ts_ns: int = 0  # event time of the intent this order executes (the OMS refuses intents older than its retention)

    @property
    def remaining(self) -> Decimal:
        if self.status in TERMINAL:
            return ZERO
        return self.qty - self.filled_qty

    @property
    def unfilled(self) -> Decimal:
        """Ordered minus filled, whatever the status (a canceled order keeps its unfilled quantity here)."""
        return self.qty - self.filled_qty

    @property
    def open_qty(self) -> Decimal:
        """Quantity that may still execute: the resting exposure of this order."""
        return self.qty - self.filled_qty if self.status in LIVE_STATES else ZERO

    @property
    def avg_price(self) -> Decimal | None:
        return self.notional_filled / self.filled_qty if self.filled_qty else None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def transition(self, dst: OrderStatus, ts_ns: int) -> None:
        """Apply a status change or raise ILLEGAL_TRANSITION (the caller audits it; nothing changes)."""
        if not can_transition(self.status, dst):
            raise DomainError(
                ErrorCode.ILLEGAL_TRANSITION, f"order {self.client_order_id}: {self.status.value} -> {dst.value} is not allowed"
            )
        self.status = dst
        self.updated_ns = ts_ns

    def apply_fill(self, fill_id: str, qty: Decimal, price: Decimal, fee: Decimal, ts_ns: int) -> bool:
        """Apply a fill once. Returns False for a duplicate. A fill after a cancel is applied: it happened.

        Raises POSITION_MISMATCH if the fill would exceed the order quantity, or if the order is REJECTED (a
        rejected or never-sent order cannot have executed: the venue and we disagree, the caller must go to SAFE rather than
        silently clamp). Raises INVALID_ORDER for a non-positive quantity. Nothing changes when it raises.
        """
        if fill_id in self.fill_ids:
            return False
        if self.status in (OrderStatus.REJECTED, OrderStatus.NEW):
            raise DomainError(
                ErrorCode.POSITION_MISMATCH, f"order {self.client_order_id}: fill {fill_id} for an order we hold as {self.status.value}"
            )
        if qty <= 0:
            raise DomainError(ErrorCode.INVALID_ORDER, f"order {self.client_order_id}: fill {fill_id} has non-positive qty {qty}")
        if self.filled_qty + qty > self.qty:
            raise DomainError(
                ErrorCode.POSITION_MISMATCH,
                f"order {self.client_order_id}: fill {fill_id} of {qty} overfills ({self.filled_qty} of {self.qty} already filled)",
            )
        self.fill_ids.add(fill_id)
        self.filled_qty += qty
        self.notional_filled += qty * price
        self.fees += fee
        self.updated_ns = ts_ns
        if self.filled_qty == self.qty:
            self.status = OrderStatus.FILLED
        elif self.status in (OrderStatus.PENDING_SUBMIT, OrderStatus.ACCEPTED, OrderStatus.UNKNOWN):
            self.status = OrderStatus.PARTIALLY_FILLED
        # PENDING_CANCEL stays PENDING_CANCEL; CANCELED/EXPIRED stay as they are with the fill counted
        return True
