"""Intents: what a strategy (or an operator) wants. Strategies emit intents only, never orders."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """Long is positive everywhere: a buy adds, a sell subtracts."""
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY

    def __str__(self) -> str:
        return self.value


class OrderType(str, Enum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    LIMIT_MAKER = "LIMIT_MAKER"  # post-only

    def __str__(self) -> str:
        return self.value


class TimeInForce(str, Enum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"

    def __str__(self) -> str:
        return self.value


class IntentKind(str, Enum):
    PLACE = "PLACE"  # place a new order
    CANCEL = "CANCEL"  # cancel a resting order of this strategy (``target`` = client order id)

    def __str__(self) -> str:
        return self.value


class Urgency(str, Enum):
    LOW = "LOW"
    NORMAL = "NORMAL"
    HIGH = "HIGH"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Barrier:
    """Triple barrier (seed 004), chosen at entry: take-profit and stop-loss as distances from the position's
    average entry price (basis points), and a time limit from the first fill. Any may be None (not armed).
    Whichever is touched first closes the position with a reduce-only exit through risk."""

    take_profit_bps: Decimal | None = None
    stop_loss_bps: Decimal | None = None
    time_limit_s: int | None = None

    def __post_init__(self) -> None:
        for name in ("take_profit_bps", "stop_loss_bps"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, Decimal) and v.is_finite() and 0 < v < 10_000):
                raise ValueError(f"barrier {name} must be a Decimal between 0 and 10000 bps, got {v!r}")
        if self.time_limit_s is not None and not (isinstance(self.time_limit_s, int) and 0 < self.time_limit_s <= 30 * 86_400):
            raise ValueError(f"barrier time_limit_s must be 1..2592000 seconds, got {self.time_limit_s!r}")
        if self.take_profit_bps is None and self.stop_loss_bps is None and self.time_limit_s is None:
            raise ValueError("a barrier needs at least one of take_profit_bps, stop_loss_bps, time_limit_s")

    def canonical(self) -> dict[str, object]:
        return {
            "take_profit_bps": None if self.take_profit_bps is None else format(self.take_profit_bps, "f"),
            "stop_loss_bps": None if self.stop_loss_bps is None else format(self.stop_loss_bps, "f"),
            "time_limit_s": self.time_limit_s,
        }


@dataclass(frozen=True, slots=True)
class Intent:
    """Spec 8.1. ``id`` is assigned by the engine, unique and deterministic within a run."""

    id: str
    ts_ns: int  # UTC epoch nanoseconds (event time)
    strategy_id: str
    asset: str
    side: Side
    qty: Decimal
    order_type: OrderType = OrderType.LIMIT
    limit_price: Decimal | None = None
    tif: TimeInForce = TimeInForce.GTC
    urgency: Urgency = Urgency.NORMAL
    risk_tags: tuple[str, ...] = ()
    rationale: str = ""
    kind: IntentKind = IntentKind.PLACE
    target: str | None = None  # for CANCEL: the client order id to cancel
    reduce_only: bool = False
    tag: str = ""  # free label a strategy uses to recognise its own orders (e.g. "bid", "ask")
    barrier: Barrier | None = None  # optional triple barrier for the position this entry opens (seed 004)

    def canonical(self) -> dict[str, object]:
        """The fields that define what would be executed, in a stable form (no id, no timestamp)."""
        return {
            "kind": self.kind.value,
            "strategy_id": self.strategy_id,
            "asset": self.asset,
            "side": self.side.value,
            "qty": format(self.qty, "f"),
            "order_type": self.order_type.value,
            "limit_price": None if self.limit_price is None else format(self.limit_price, "f"),
            "tif": self.tif.value,
            "reduce_only": self.reduce_only,
            "target": self.target,
        } | ({"barrier": self.barrier.canonical()} if self.barrier is not None else {})


def canonical_json(payload: dict[str, object]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def intent_hash(payload: dict[str, object], nonce: str) -> str:
    """SHA-256 over the canonical serialisation plus a nonce (DESIGN: contracts). Hex, 64 chars."""
    return hashlib.sha256((canonical_json(payload) + "|" + nonce).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Decision:
    """Why a strategy emitted what it emitted (spec 8.1 Decision)."""

    id: str
    ts_ns: int
    strategy_id: str
    inputs_ref: str  # content address of the inputs (e.g. the tick sequence id)
    rationale: str
    intents: tuple[Intent, ...] = field(default_factory=tuple)
    tags: tuple[str, ...] = ()
