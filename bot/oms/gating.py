"""The OMS's own gates on new orders (spec 4.7.2, 4.7.4, 4.7.5): dirty positions, stream health, orders of
unknown status, reconciliation freshness, flip-flop and the per-asset placement rate.

Cancels are never gated. SAFE / HALTED are not checked here: that gate belongs to the risk part (the OMS
asks for SAFE through its recorder, it does not enforce it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from bot.domain.errors import ErrorCode
from bot.oms.dirty import DirtyTracker
from bot.oms.feed import FeedHealth
from bot.oms.limits import OmsLimits
from bot.oms.recorder import OmsRecorder
from bot.oms.spam import FlipFlopDetector, RateLimiter


class Refusal(NamedTuple):
    code: ErrorCode
    reason: str


class Gates:
    def __init__(
        self,
        *,
        limits: OmsLimits,
        recorder: OmsRecorder,
        venue_name: str,
        feed: FeedHealth | None,
        assets: Callable[[], Iterable[str]],
        freshness_clock: Callable[[], int],
    ) -> None:
        self.limits = limits
        self.rec = recorder
        self.venue_name = venue_name
        self.feed = feed
        self._assets = assets
        # reconciliation is a wall-time process (REST polling) in every mode: its freshness is measured on this
        # monotonic clock (the injected clock in tests; wall monotonic when the engine runs in event time)
        self.freshness_clock = freshness_clock
        self.dirty = DirtyTracker()
        self.rate = RateLimiter(limits.max_orders_per_s)
        self.flipflop = FlipFlopDetector(limits.flipflop_window_ns, limits.flipflop_max_cycles)
        self.unknown_orders: dict[str, str] = {}  # client order id -> asset, for orders in UNKNOWN
        # assets whose fills may have gone unreported because the stream was down or silent: fills that
        # reconciliation finds for them are the expected recovery, not a lost message (cleared when clean)
        self.outage_assets: set[str] = set()
        self.last_reconcile_ok_ns: int | None = None  # monotonic; None until the first successful reconciliation
        self._reconcile_stale_reported = False
        self._feed_ok = feed is None
        self._feed_ever_up = feed is None
        self._feed_generation = feed.generation if feed is not None else 0
        self._feed_reason = ""

    # ------------------------------------------------------------------ the gate
    def check(self, asset: str, now_ns: int) -> Refusal | None:
        """Why a new order for ``asset`` may not be placed now, or None. A query: escalates nothing."""
        if self.feed is not None and not self.observe_feed(now_ns):
            return Refusal(ErrorCode.WS_STALE, f"new orders blocked: {self._feed_reason}")
        mark = self.dirty.get(asset)
        if mark is not None:
            age_s = (now_ns - mark.since_ns) / 1e9
            return Refusal(
                ErrorCode.DIRTY_POSITION,
                f"{asset} position is dirty ({mark.reason}, {age_s:.1f}s ago): waiting for a venue position update or a reconciliation that agrees",
            )
        if self.unknown_orders and asset in self.unknown_orders.values():
            coids = sorted(c for c, a in self.unknown_orders.items() if a == asset)
            return Refusal(ErrorCode.UNKNOWN_ORDER_STATUS, f"{asset} has order(s) of unknown status {coids}: resolving before new orders")
        if self.last_reconcile_ok_ns is not None and self.freshness_clock() - self.last_reconcile_ok_ns > self.limits.reconcile_max_age_ns:
            age_s = (self.freshness_clock() - self.last_reconcile_ok_ns) / 1e9
            return Refusal(ErrorCode.RECONCILE_STALE, f"no successful reconciliation for {age_s:.0f}s (limit {self.limits.reconcile_max_age_s:g}s)")
        if self.flipflop.breached(asset, now_ns):
            return Refusal(
                ErrorCode.FLIPFLOP_DETECTED,
                f"{asset}: {self.flipflop.count(asset, now_ns)} place/cancel cycles within {self.limits.flipflop_window_s:g}s "
                f"(limit {self.limits.flipflop_max_cycles})",
            )
        if not self.rate.allows(asset, now_ns):
            return Refusal(
                ErrorCode.ORDER_RATE_LIMIT_BREACH,
                f"{asset}: {self.rate.count(asset, now_ns)} orders within {self.rate.window_ns // 1_000_000_000}s "
                f"(limit {self.limits.max_orders_per_s}/s)",
            )
        return None

    # ------------------------------------------------------------------ dirty flags
    def mark_dirty(self, asset: str, now_ns: int, reason: str) -> None:
        if self.dirty.mark(asset, now_ns, reason):
            self.rec.transition("dirty", asset, "CLEAN", "DIRTY", ErrorCode.DIRTY_POSITION, reason)

    def clean(self, asset: str, reason: str) -> bool:
        mark = self.dirty.clear(asset)
        self.outage_assets.discard(asset)
        if mark is None:
            return False
        self.rec.transition("dirty", asset, "DIRTY", "CLEAN", None, reason)
        self.rec.episode_over(ErrorCode.DIRTY_POSITION, asset)
        return True

    # ------------------------------------------------------------------ stream health
    def observe_feed(self, now_ns: int) -> bool:
        """Look at the stream, audit what changed since the last look. True when healthy."""
        feed = self.feed
        if feed is None:
            return True
        healthy, why = feed.status(now_ns)
        scope = f"venue:{self.venue_name}"
        if feed.generation != self._feed_generation:
            # a disconnect happened since the last look (it may already have reconnected): it had been up
            self._feed_generation = feed.generation
            self._feed_ever_up = True
            if self._feed_ok:
                self._feed_ok = False
                self.outage_assets.update(self._assets())
                self._feed_reason = f"{feed.name} down: {feed.down_reason}"
                self.rec.transition("feed", scope, "UP", "DOWN", ErrorCode.WS_STALE, self._feed_reason)
                self.rec.warn(f"oms:feed:{self.venue_name}", f"{self.venue_name} {self._feed_reason}: new orders blocked")
        if healthy == self._feed_ok:
            if not healthy:
                self._feed_reason = why
            return healthy
        self._feed_ok = healthy
        if not healthy:
            self.outage_assets.update(self._assets())
            self._feed_reason = why
            self.rec.transition("feed", scope, "UP", "DOWN", ErrorCode.WS_STALE, why)
            self.rec.warn(f"oms:feed:{self.venue_name}", f"{self.venue_name} {why}: new orders blocked")
            return False
        self._feed_reason = ""
        if self._feed_ever_up:
            reason = "stream recovered: fills may have been missed while it was down, reconcile before trading"
            self.rec.transition("feed", scope, "DOWN", "UP", None, reason)
            for asset in self._assets():
                self.mark_dirty(asset, now_ns, reason)
            self.rec.warn(f"oms:feed:{self.venue_name}", f"{self.venue_name} {feed.name} is back; positions wait for reconciliation")
        else:
            self.rec.transition("feed", scope, "DOWN", "UP", None, "stream connected")
        self._feed_ever_up = True
        return True

    @property
    def feed_ok(self) -> bool:
        """As of the last look (``observe_feed``)."""
        return self._feed_ok

    @property
    def feed_reason(self) -> str:
        return self._feed_reason

    # ------------------------------------------------------------------ timers
    def overdue_dirty(self, now_ns: int) -> None:
        if not self.dirty:
            return
        for asset, mark in self.dirty.overdue(now_ns, self.limits.dirty_max_age_ns):
            age_s = (now_ns - mark.since_ns) / 1e9
            self.rec.safe(
                ErrorCode.DIRTY_POSITION,
                asset,
                f"{asset} position dirty for {age_s:.1f}s (limit {self.limits.dirty_max_age_s:g}s): {mark.reason}",
                {"asset": asset, "dirty_since_age_s": round(age_s, 3), "cause": mark.reason},
                incident=True,
            )

    def reconcile_freshness(self) -> None:
        last = self.last_reconcile_ok_ns
        if last is None:
            return
        now_ns = self.freshness_clock()
        stale = now_ns - last > self.limits.reconcile_max_age_ns
        if stale and not self._reconcile_stale_reported:
            self._reconcile_stale_reported = True
            reason = f"no successful reconciliation for {(now_ns - last) / 1e9:.0f}s: new orders blocked"
            self.rec.transition("reconcile", f"venue:{self.venue_name}", "FRESH", "STALE", ErrorCode.RECONCILE_STALE, reason)
            self.rec.warn(f"oms:reconcile:{self.venue_name}", reason)

    def reconciled(self) -> None:
        """A scheduled reconciliation succeeded. The first one arms the freshness gate (start-up's does not:
        until the scheduler runs, nothing expects reconciliations)."""
        now_ns = self.freshness_clock()
        if self._reconcile_stale_reported:
            self._reconcile_stale_reported = False
            self.rec.transition("reconcile", f"venue:{self.venue_name}", "STALE", "FRESH", None, "reconciliation succeeded")
        self.last_reconcile_ok_ns = now_ns
