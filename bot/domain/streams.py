"""Stream health and sequence events: what a venue's feeds report to risk and the OMS (no I/O).

A venue adapter announces every change of a stream's health (``StreamStatus``) and every sequence
anomaly it sees (``SequenceGap``) through callbacks that the composition root injects. The OMS gates new
orders on them (spec 4.7.4: a stale or disconnected feed blocks new orders) and risk treats stale market
data as unsafe.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.errors import ErrorCode


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """``stream`` is "market" or "user". ``asset`` is set for per-asset staleness, None for the connection.

    ``healthy`` False carries the code: ``WS_STALE`` (connection down, heartbeat lost) or
    ``MARKET_DATA_STALE`` (connected, but no update of ``asset`` within the threshold).
    """

    venue: str
    stream: str
    healthy: bool
    code: ErrorCode | None
    reason: str
    ts_ns: int
    asset: str | None = None


@dataclass(frozen=True, slots=True)
class SequenceGap:
    """A sequence anomaly. ``kind``: "book" (market data update ids) or "fill" (fills the stream missed).

    For fills, ``expected``/``received`` are cumulative filled quantities rendered as text when the venue has
    no fill sequence number (Binance spot), and the missed fills are recovered over REST by the adapter.
    """

    venue: str
    stream: str
    asset: str
    kind: str
    expected: str
    received: str
    ts_ns: int
    detail: str = ""
