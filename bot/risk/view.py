"""What the risk engine may read: a narrow, read-only view of engine state (implemented by the engine)."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class RiskView(Protocol):
    def position(self, asset: str) -> Decimal:
        """Signed filled position of the asset (all strategies)."""

    def open_exposure(self, asset: str) -> tuple[Decimal, Decimal]:
        """(resting + in-flight buy quantity, resting + in-flight sell quantity) of the asset."""

    def mark(self, asset: str) -> Decimal | None:
        """Mid price of the last tick, or None before the first tick."""

    def now_ns(self) -> int: ...

    def venue(self) -> str: ...
