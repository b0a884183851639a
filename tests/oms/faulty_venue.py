"""A fault-injecting wrapper of the simulated venue (the chaos scenarios of spec 16 without a network).

It implements the ``Venue`` port by delegating to a ``SimulatedVenue`` and sits between the simulated venue's
report stream and the engine, where it can lose, duplicate or hold back reports; it can make a submit time
out after the order reached the matching engine, cancel an order on the exchange's side, and place an order
that this OMS knows nothing about. A ``FeedHealth`` follows the stream's up/down state as an adapter would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.instrument import Instrument
from bot.domain.market import Tick
from bot.domain.ports import ReportSink
from bot.domain.venue import Balance, ExecutionReport, OrderRequest, PositionUpdate, VenueError, VenueOrder
from bot.engine.sim_venue import SimulatedVenue
from bot.oms.feed import FeedHealth


class FaultyVenue:
    def __init__(self, sim: SimulatedVenue, feed: FeedHealth | None = None) -> None:
        self.sim = sim
        self.name = sim.name
        self.feed = feed
        self._sink: ReportSink | None = None
        self.drop_fills = 0  # the next N fill reports (and the position updates after them) are lost
        self.duplicate = False  # every report is delivered twice
        self.stream_up = True
        self.timeout_next_place: str | None = None  # "after" (order placed, answer lost) | "before" (never sent)
        self.place_calls: list[str] = []
        self.dropped: list[ExecutionReport | PositionUpdate] = []
        self._dropping_position = False
        sim.set_report_sink(self._from_sim)

    # ------------------------------------------------------------------ the stream, with faults
    def _from_sim(self, event: Any) -> None:
        if not self.stream_up:
            self.dropped.append(event)
            return
        if isinstance(event, ExecutionReport) and event.fill is not None and self.drop_fills > 0:
            self.drop_fills -= 1
            self.dropped.append(event)
            self._dropping_position = True
            return
        if isinstance(event, PositionUpdate) and self._dropping_position:
            self._dropping_position = False
            self.dropped.append(event)
            return
        self._deliver(event)
        if self.duplicate:
            self._deliver(event)

    def _deliver(self, event: Any) -> None:
        if self._sink is None:
            raise RuntimeError("no report sink")
        if self.feed is not None:
            self.feed.alive()
        self._sink(event)

    def drop_stream(self, reason: str = "connection reset by peer") -> None:
        self.stream_up = False
        if self.feed is not None:
            self.feed.disconnected(reason)

    def restore_stream(self) -> None:
        self.stream_up = True
        if self.feed is not None:
            self.feed.connected()

    async def exchange_cancel(self, asset: str, client_order_id: str) -> None:
        """The exchange cancels an order on its own (self-trade prevention, maintenance...): reported on the stream."""
        report = await self.sim.cancel_order(asset, client_order_id)
        self._from_sim(report)

    async def foreign_order(self, request: OrderRequest) -> None:
        """An order placed on the account by someone else (a previous run, a human): the OMS never hears of it."""
        await self.sim.place_order(request)

    # ------------------------------------------------------------------ the Venue port
    async def connect(self) -> None:
        await self.sim.connect()

    async def close(self) -> None:
        await self.sim.close()

    async def load_instruments(self) -> Mapping[str, Instrument]:
        return await self.sim.load_instruments()

    def set_report_sink(self, sink: ReportSink) -> None:
        self._sink = sink

    def on_tick(self, tick: Tick) -> None:
        self.sim.on_tick(tick)

    async def place_order(self, request: OrderRequest) -> ExecutionReport:
        self.place_calls.append(request.client_order_id)
        mode, self.timeout_next_place = self.timeout_next_place, None
        if mode == "before":
            raise VenueError(ErrorCode.VENUE_UNAVAILABLE, "request timed out (never reached the venue)")
        report = await self.sim.place_order(request)
        if mode == "after":
            raise VenueError(ErrorCode.VENUE_UNAVAILABLE, "request timed out (the answer was lost)")
        return report

    async def cancel_order(self, asset: str, client_order_id: str, venue_order_id: str | None = None) -> ExecutionReport:
        return await self.sim.cancel_order(asset, client_order_id, venue_order_id)

    async def fetch_order(self, asset: str, client_order_id: str) -> VenueOrder | None:
        return await self.sim.fetch_order(asset, client_order_id)

    async def get_open_orders(self, asset: str | None = None) -> Sequence[VenueOrder]:
        return await self.sim.get_open_orders(asset)

    async def get_balances(self) -> Mapping[str, Balance]:
        return await self.sim.get_balances()

    async def get_positions(self) -> Mapping[str, Decimal]:
        return await self.sim.get_positions()

    async def fetch_position_snapshot(self, asset: str) -> Decimal:
        return await self.sim.fetch_position_snapshot(asset)

    async def fetch_fills(self, asset: str, since_fill_id: str | None = None) -> Sequence[Fill]:
        return await self.sim.fetch_fills(asset, since_fill_id)
