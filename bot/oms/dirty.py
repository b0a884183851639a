"""Dirty position flags (spec 4.7.2). Pure bookkeeping; the OrderManager audits every transition.

After a fill (or any other evidence that our view of an asset's position may be behind the venue's) the
asset is dirty: new orders for it are refused, cancels are allowed. It is cleaned by a position update from
the venue's stream that agrees with the running sum of fills, or by a reconciliation snapshot that agrees
and was taken after the last fill. Dirty for longer than ``oms.dirty_max_age_s`` means SAFE.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class DirtyMark:
    since_ns: int  # monotonic, when the asset became dirty (first cause)
    reason: str
    last_ns: int  # monotonic, the latest cause (e.g. the latest fill)
    overdue_reported: bool = False


class DirtyTracker:
    __slots__ = ("_marks",)

    def __init__(self) -> None:
        self._marks: dict[str, DirtyMark] = {}

    def mark(self, asset: str, now_ns: int, reason: str) -> bool:
        """Mark dirty. Returns True when the asset was clean before (a transition to audit)."""
        mark = self._marks.get(asset)
        if mark is None:
            self._marks[asset] = DirtyMark(now_ns, reason, now_ns)
            return True
        mark.last_ns = now_ns
        return False

    def clear(self, asset: str) -> DirtyMark | None:
        """Clean the asset. Returns the mark it had (None if it was clean: nothing to audit)."""
        return self._marks.pop(asset, None)

    def is_dirty(self, asset: str) -> bool:
        return asset in self._marks

    def get(self, asset: str) -> DirtyMark | None:
        return self._marks.get(asset)

    def __bool__(self) -> bool:
        return bool(self._marks)

    def assets(self) -> list[str]:
        return sorted(self._marks)

    def overdue(self, now_ns: int, max_age_ns: int) -> list[tuple[str, DirtyMark]]:
        """Assets dirty for longer than ``max_age_ns`` and not yet reported (each episode is reported once)."""
        out = []
        for asset, mark in self._marks.items():
            if not mark.overdue_reported and now_ns - mark.since_ns > max_age_ns:
                mark.overdue_reported = True
                out.append((asset, mark))
        return out
