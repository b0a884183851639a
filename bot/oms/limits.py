"""The OMS safeguard thresholds (spec 8.7), as one frozen value the composition root builds from ``[oms]``.

The OMS does not read configuration itself: ``bot/service.py`` passes ``OmsLimits.from_mapping(settings.oms)``.
Defaults equal the configuration defaults and fail closed (see docs/oms.md for what each one does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from bot.domain.money import ZERO

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class OmsLimits:
    mismatch_threshold: Decimal = Decimal("0.001")  # relative position mismatch tolerated (0.1 %)
    mismatch_abs_qty: Decimal = ZERO  # absolute mismatch tolerated (dust); 0 = none
    grace_window_s: float = 3.0  # after a fill: venue position lag tolerated; unknown orders' lookup grace
    dirty_max_age_s: float = 15.0  # a position dirty longer than this -> SAFE
    stream_stale_s: float = 30.0  # no message or heartbeat on the fills/orders stream for this long -> stale
    max_orders_per_s: Decimal = Decimal("5")  # per asset, placements (cancels are never limited)
    flipflop_window_s: float = 60.0
    flipflop_max_cycles: int = 150  # place/cancel cycles per asset within the window that mean "flip-flop"
    unknown_orders: str = "cancel"  # venue orders we did not place: "cancel" or "adopt"
    reconcile_max_age_s: float = 30.0  # once reconciliation has succeeded, new orders need a fresh one
    # Memory horizon of a long run: terminal orders and applied fill ids are forgotten this long after their last
    # change; intents older than this are refused, and an unknown fill older than this is never applied unverified
    # (the asset goes dirty and reconciliation's position check decides). Everything stays in the audit store.
    retention_s: float = 7200.0

    def __post_init__(self) -> None:
        if self.unknown_orders not in ("cancel", "adopt"):
            raise ValueError(f"oms.unknown_orders must be 'cancel' or 'adopt', got {self.unknown_orders!r}")
        if self.max_orders_per_s <= 0 or self.flipflop_max_cycles < 1:
            raise ValueError("oms.max_orders_per_s and oms.flipflop_max_cycles must be positive")
        if self.mismatch_threshold < 0 or self.mismatch_abs_qty < 0:
            raise ValueError("oms mismatch tolerances must not be negative")
        floor = max(60.0, 10 * self.grace_window_s, 2 * self.reconcile_max_age_s, 2 * self.dirty_max_age_s, 2 * self.stream_stale_s)
        if self.retention_s < floor:
            raise ValueError(
                f"oms.retention_s ({self.retention_s:g}) must be at least {floor:g} s: 60 s, ten grace windows and twice the "
                "reconciliation, dirty-position and stream-staleness ages"
            )

    @classmethod
    def from_mapping(cls, values: Any) -> "OmsLimits":
        """From the ``[oms]`` settings (a pydantic model or a mapping); keys this class does not know are ignored."""
        data: Mapping[str, Any] = values if isinstance(values, Mapping) else values.model_dump()
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    # --- in nanoseconds, for the hot paths ------------------------------------------------
    @property
    def grace_ns(self) -> int:
        return int(self.grace_window_s * NS)

    @property
    def dirty_max_age_ns(self) -> int:
        return int(self.dirty_max_age_s * NS)

    @property
    def stream_stale_ns(self) -> int:
        return int(self.stream_stale_s * NS)

    @property
    def flipflop_window_ns(self) -> int:
        return int(self.flipflop_window_s * NS)

    @property
    def reconcile_max_age_ns(self) -> int:
        return int(self.reconcile_max_age_s * NS)

    @property
    def retention_ns(self) -> int:
        return int(self.retention_s * NS)

    def agrees(self, a: Decimal, b: Decimal) -> bool:
        """Two position quantities agree within the absolute or the relative tolerance."""
        diff = abs(a - b)
        if diff <= self.mismatch_abs_qty:
            return True
        return diff <= self.mismatch_threshold * max(abs(a), abs(b))
