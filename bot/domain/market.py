"""Normalised market data. Ticks are NamedTuples: they are created on the hot path."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple


class Tick(NamedTuple):
    """Level 1: best bid and ask. Timestamps are UTC epoch nanoseconds."""

    asset: str
    bid: Decimal
    bid_size: Decimal
    ask: Decimal
    ask_size: Decimal
    ts_venue_ns: int
    ts_local_ns: int
    seq: int  # monotonically increasing per feed (venue update id or our own counter)
    venue: str = ""
    last: Decimal | None = None  # last trade price, when the feed carries it

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


class BookLevel(NamedTuple):
    price: Decimal
    size: Decimal


class Book(NamedTuple):
    """Level 2 snapshot: bids best (highest) first, asks best (lowest) first."""

    asset: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    ts_venue_ns: int
    ts_local_ns: int
    seq: int
    venue: str = ""
