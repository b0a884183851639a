"""What the risk engine may read: a narrow, read-only view of engine state (implemented by the engine)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Protocol

from bot.domain.market import Book, Tick


class RiskView(Protocol):
    def position(self, asset: str) -> Decimal:
        """Signed filled position of the asset (all strategies)."""

    def open_exposure(self, asset: str) -> tuple[Decimal, Decimal]:
        """(resting + in-flight buy quantity, resting + in-flight sell quantity) of the asset."""

    def strategy_position(self, strategy_id: str, asset: str) -> Decimal:
        """Signed filled position of one strategy in the asset."""

    def strategy_exposure(self, strategy_id: str, asset: str) -> tuple[Decimal, Decimal]:
        """(resting + in-flight buys, sells) of one strategy in the asset."""

    def exposures(self, asset: str, strategy_id: str) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """``open_exposure(asset)`` and ``strategy_exposure(strategy_id, asset)`` in one pass."""

    def mark(self, asset: str) -> Decimal | None:
        """Mid price of the last tick, or None before the first tick."""

    def tick(self, asset: str) -> Tick | None:
        """The last L1 of the asset."""

    def book(self, asset: str) -> Book | None:
        """The last L2 snapshot of the asset, when the feed provides one."""

    def last_update_ns(self, asset: str) -> int | None:
        """Monotonic time of the asset's last market update (None: never)."""

    def net_pnl(self, strategy_id: str | None = None) -> Decimal:
        """Realised + unrealised - fees, of the account (None) or of one strategy, at the current marks."""

    def strategy_ids(self) -> Iterable[str]:
        """Strategies that have traded (have a position record)."""

    def marks(self) -> dict[str, Decimal]: ...

    def now_ns(self) -> int: ...

    def monotonic_ns(self) -> int: ...

    def venue(self) -> str: ...
