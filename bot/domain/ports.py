"""Ports: what the engine needs from the outside, as Protocols. The composition root injects them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.market import Tick
from bot.domain.venue import Balance, ExecutionReport, OrderRequest, PositionUpdate, VenueOrder


@runtime_checkable
class Clock(Protocol):
    def now_ns(self) -> int:
        """UTC wall (or injected) time, epoch nanoseconds."""

    def monotonic_ns(self) -> int:
        """For durations. In REPLAY this is the injected clock too."""


# what a venue's stream delivers: order updates and fills, and position updates where the venue sends them
ReportSink = Callable[[ExecutionReport | PositionUpdate], None]


@runtime_checkable
class Venue(Protocol):
    """Spec section 10. Implemented by the ccxt adapter (LIVE) and the simulated venue (DRY_RUN / REPLAY)."""

    name: str

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def load_instruments(self) -> Mapping[str, Instrument]: ...

    def set_report_sink(self, sink: ReportSink) -> None:
        """Where fills and order updates (the venue's stream) are delivered. Called once, before connect."""

    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        """Submit. Returns the venue's answer (ACCEPTED, REJECTED, FILLED...). Raises VenueError; a code of
        UNKNOWN_ORDER_STATUS means the order may exist: resolve it with fetch_order, never resubmit."""

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport: ...

    async def fetch_order(self, asset: str, client_order_id: str) -> VenueOrder | None: ...

    async def get_open_orders(self, asset: str | None = None) -> Sequence[VenueOrder]: ...

    async def get_balances(self) -> Mapping[str, Balance]: ...

    async def get_positions(self) -> Mapping[str, Decimal]:
        """Signed position per canonical asset (spot: base balance; derivatives: contracts)."""

    async def fetch_position_snapshot(self, asset: str) -> Decimal: ...

    async def fetch_fills(self, asset: str, since_fill_id: str | None = None) -> Sequence[Fill]: ...


@runtime_checkable
class MarketFeed(Protocol):
    """Normalised L1 market data, in batches (one batch = what arrived together)."""

    def batches(self) -> AsyncIterator[Sequence[Tick]]: ...

    async def close(self) -> None: ...


@runtime_checkable
class AuditSink(Protocol):
    """The append-only audit store as the engine sees it: buffered appends, explicit flush."""

    def record(self, kind: str, row: dict[str, Any]) -> None: ...

    def needs_flush(self) -> bool:
        """True when enough rows are buffered that the owner should flush now."""

    async def flush(self) -> None: ...


@runtime_checkable
class Notifier(Protocol):
    def alert(self, severity: str, key: str, text: str) -> None:
        """Queue an operator alert. ``key`` deduplicates; delivery is the notifier's job."""
