"""Reconciliation (spec 4.7.3): compare the venue's positions, open orders and fills with the OMS, fail fast.

Split in two so that REST I/O never runs inside the engine loop and the comparison never races the stream:

- ``await reconciler.fetch(venue) -> VenueSnapshot`` — outside the loop. Reads what the OMS believes (without
  awaiting in between), then asks the venue: positions, open orders, a lookup by client id for every order we
  think is open that the venue does not list, and fills since the last reconciled fill where there is a
  reason to look (a position that disagrees, a dirty asset, an order the venue says is more filled than our
  fills; and every ``full_scan_every`` cycles, all assets).
- ``reconciler.apply(snapshot) -> ReconcileResult`` — inside the loop (``await engine.call(lambda:
  reconciler.apply(snapshot))``). Pure state comparison and state changes, no I/O:
  * fills the stream never delivered, older than the grace window, are applied once with their real ids,
    and SAFE (``POSITION_MISMATCH``) is requested with an incident record: the stream lost a fill;
  * venue orders we did not place are tracked and cancelled (``oms.unknown_orders = "cancel"``, the default)
    or adopted (``"adopt"``); orders we hold closed that the venue lists open are cancelled at the venue;
  * orders we think open that the venue does not list are resolved from the lookup, never dropped: not found
    and never acknowledged -> REJECTED after the grace window; acknowledged but gone -> UNKNOWN, and SAFE if
    it persists;
  * positions: venue vs (holdings at start + signed sum of fills - base-currency fees), skipped within the
    grace window after a fill, compared with a relative and an absolute tolerance; a mismatch marks the asset
    dirty at once and, when it persists past the grace window into a later cycle, requests SAFE with an alert
    and an incident record; agreement cleans a dirty asset if the snapshot was taken after its last fill.
  The cancels it decides on are returned, and ``await engine.call(lambda: reconciler.act(result))`` sends them.
- ``await reconciler.reconcile_once(engine.call)`` does all three in one coroutine; ``SchedulerSteps`` offers
  the same as the fetch/apply pair the ops scheduler's ``ReconcileJob`` (issue 9) runs every
  ``oms.reconcile_interval_s``. ``await reconciler.take_baseline(engine.call)``
  runs once at start-up, before trading: it records the holdings that no fill of this run made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from bot.domain.errors import ErrorCode
from bot.domain.fill import Fill
from bot.domain.money import ZERO
from bot.domain.order import OrderStatus
from bot.domain.ports import Venue
from bot.domain.venue import VenueError, VenueOrder
from bot.oms.orders import OrderManager

log = logging.getLogger(__name__)
S = OrderStatus
T = TypeVar("T")
_STEADY = frozenset({S.ACCEPTED, S.PARTIALLY_FILLED})
EngineCall = Callable[[Callable[[], Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class VenueSnapshot:
    """What the venue said during one fetch, and when (monotonic and UTC) the fetch began."""

    venue: str
    started_mono_ns: int
    started_ns: int
    assets: tuple[str, ...]
    positions: Mapping[str, Decimal]
    open_orders: tuple[VenueOrder, ...]
    lookups: Mapping[str, VenueOrder | None]  # client order id -> the venue's view (None: not found)
    lookup_errors: Mapping[str, str]
    fills: Mapping[str, tuple[Fill, ...]]  # asset -> fills after the asset's watermark
    fill_errors: Mapping[str, str]
    fetch_ns: int = 0  # how long the fetch took (wall, for reporting only)


@dataclass(slots=True)
class AssetCheck:
    asset: str
    internal: Decimal  # what the venue should show: baseline + fills - base fees
    venue: Decimal
    status: str  # ok | grace | mismatch | baseline


@dataclass(slots=True)
class ReconcileResult:
    ok: bool = True
    assets: list[AssetCheck] = field(default_factory=list)
    missed_fills: list[Fill] = field(default_factory=list)  # unknown to us, older than the grace window: applied
    recovered_fills: list[Fill] = field(default_factory=list)  # the subset found after a stream outage (expected)
    recent_fills: int = 0  # unknown fills younger than the grace window: left to the stream for now
    history_fills: int = 0  # fills from before this run: part of the baseline, never applied
    beyond_horizon: list[Fill] = field(default_factory=list)  # unknown, older than oms.retention_s: not applied, asset dirty
    unknown_orders: list[str] = field(default_factory=list)
    zombies: list[tuple[str, str, str | None]] = field(default_factory=list)  # (asset, coid, venue id): we hold closed, venue open
    resolved: list[tuple[str, str, str]] = field(default_factory=list)  # (coid, from, to)
    cancels: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    safe: list[ErrorCode] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    apply_ns: int = 0


def _describe(exc: BaseException) -> str:
    if isinstance(exc, VenueError):
        return f"{exc.code.value}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


class Reconciler:
    def __init__(self, oms: OrderManager, *, full_scan_every: int = 12) -> None:
        if full_scan_every < 1:
            raise ValueError("full_scan_every must be at least 1")
        self.oms = oms
        self.limits = oms.limits
        self.clock = oms.clock
        self.full_scan_every = full_scan_every
        self.started_ns = oms.clock.now_ns()  # fills older than this are history (in the baseline)
        self.watermark: dict[str, str] = {}  # asset -> last fill id known to be reconciled
        self._problems: dict[str, int] = {}  # problem key -> monotonic ns first seen
        self.cycles = 0
        self.last_result: ReconcileResult | None = None

    # ------------------------------------------------------------------ I/O, outside the loop
    async def fetch(self, venue: Venue | None = None, *, full: bool = False) -> VenueSnapshot:
        venue = venue or self.oms.venue
        oms = self.oms
        t0 = time.perf_counter_ns()
        started_mono = self.clock.monotonic_ns()
        started_ns = self.clock.now_ns()
        # what we believe, read in one go (no await in between)
        assets = tuple(oms.tracked_assets())
        believed = {coid: (o.asset, o.filled_qty) for coid, o in oms.live.items()}
        reasons = set(oms.gates.dirty.assets()) | {oms.orders[c].asset for c in oms.awaiting_fills()}
        watermarks = dict(self.watermark)
        full = full or self.cycles % self.full_scan_every == 0

        positions = dict(await venue.get_positions())
        open_orders = tuple(await venue.get_open_orders())
        listed = {vo.client_order_id for vo in open_orders}
        lookups: dict[str, VenueOrder | None] = {}
        lookup_errors: dict[str, str] = {}
        for coid, (asset, _) in believed.items():
            if coid in listed:
                continue
            try:
                lookups[coid] = await venue.fetch_order(asset, coid)
            except Exception as exc:
                lookup_errors[coid] = _describe(exc)

        if full:
            need = set(assets) | set(positions)
        else:
            need = set(reasons)
            for asset in set(assets) | set(positions):
                if not self.limits.agrees(oms.expected_venue_qty(asset), positions.get(asset, ZERO)):
                    need.add(asset)
            for vo in open_orders:
                known = believed.get(vo.client_order_id)
                if known is None or vo.filled_qty > known[1]:
                    need.add(vo.asset)
            for coid, vo in lookups.items():
                if vo is not None and vo.filled_qty > believed[coid][1]:
                    need.add(vo.asset)
        fills: dict[str, tuple[Fill, ...]] = {}
        fill_errors: dict[str, str] = {}
        for asset in sorted(need):
            try:
                fills[asset] = tuple(await venue.fetch_fills(asset, watermarks.get(asset)))
            except Exception as exc:
                fill_errors[asset] = _describe(exc)
        return VenueSnapshot(
            venue=getattr(venue, "name", oms.venue_name),
            started_mono_ns=started_mono,
            started_ns=started_ns,
            assets=assets,
            positions=positions,
            open_orders=open_orders,
            lookups=lookups,
            lookup_errors=lookup_errors,
            fills=fills,
            fill_errors=fill_errors,
            fetch_ns=time.perf_counter_ns() - t0,
        )

    # ------------------------------------------------------------------ comparison, inside the loop
    def apply(self, snap: VenueSnapshot, *, renew_freshness: bool = True) -> ReconcileResult:
        t0 = time.perf_counter_ns()
        oms = self.oms
        rec = oms.rec
        now_ns = self.clock.now_ns()
        now_mono = self.clock.monotonic_ns()
        grace = self.limits.grace_ns
        res = ReconcileResult()
        seen: set[str] = set()
        self.cycles += 1

        # 1. fills the stream did not deliver -------------------------------------------------
        seen_ids = oms.portfolio.seen_fill_ids
        horizon = oms.fill_horizon_ns()
        recent_assets: set[str] = set()  # unknown fills younger than the grace window: the stream may still bring them
        for asset, fills in snap.fills.items():
            recent = False
            for f in fills:
                if (f.venue, f.fill_id) in seen_ids:
                    continue
                if f.ts_ns < self.started_ns:
                    res.history_fills += 1
                    continue
                if now_ns - f.ts_ns < grace:
                    recent = True
                    res.recent_fills += 1
                    continue
                if oms.apply_reconciled_fill(f):
                    res.missed_fills.append(f)
                elif f.ts_ns < horizon:
                    res.beyond_horizon.append(f)  # its id may have been forgotten: the position check below decides
            if recent:
                recent_assets.add(asset)
            elif fills:
                self.watermark[asset] = fills[-1].fill_id
        for asset, err in snap.fill_errors.items():
            res.errors.append(f"fills {asset}: {err}")
        if res.missed_fills:
            by_asset: dict[str, list[Fill]] = {}
            for f in res.missed_fills:
                by_asset.setdefault(f.asset, []).append(f)
            for asset, fs in by_asset.items():
                ids = [f.fill_id for f in fs]
                if asset in oms.gates.outage_assets or not oms.gates.feed_ok:
                    # the stream was down or silent: finding these over REST is the designed recovery
                    res.recovered_fills.extend(fs)
                    rec.warn(f"oms:recovered:{asset}", f"{len(fs)} fill(s) on {asset} from the stream outage recovered by reconciliation: {', '.join(ids)}")
                    continue
                reason = f"{len(fs)} fill(s) on {asset} missed by the stream, found by reconciliation and applied once: {', '.join(ids)}"
                res.problems.append(reason)
                if rec.safe(
                    ErrorCode.POSITION_MISMATCH,
                    asset,
                    reason,
                    {"asset": asset, "fills": [{"id": f.fill_id, "order": f.client_order_id, "side": f.side.value, "qty": f.qty, "price": f.price} for f in fs]},
                    incident=True,
                ):
                    res.safe.append(ErrorCode.POSITION_MISMATCH)

        # 2. the venue's open orders ------------------------------------------------------------
        policy = self.limits.unknown_orders
        orders = oms.orders
        awaiting = oms.awaiting_fills()
        for vo in snap.open_orders:
            coid = vo.client_order_id
            order = orders.get(coid)
            if order is not None and order.status in _STEADY and vo.filled_qty <= order.filled_qty and coid not in awaiting:
                continue  # the common case: open at both ends, nothing filled that we do not know of
            if order is None and oms.placed_by_this_run(coid):
                # ours, retired from memory as closed long ago, yet open at the venue: a zombie whatever the policy
                self._zombie(res, seen, now_mono, vo, "closed and retired from memory")
                continue
            if order is None:
                oms.track_venue_order(vo, policy)
                res.unknown_orders.append(coid)
                if policy == "cancel":
                    res.cancels.append(coid)
                rec.warn(
                    f"oms:unknown_order:{coid}",
                    f"{vo.asset}: open venue order {coid} ({vo.side.value} {vo.qty} @ {vo.limit_price}) was not placed by this run: "
                    + ("cancelling it" if policy == "cancel" else "adopted (oms.unknown_orders = adopt)"),
                )
                continue
            if order.is_terminal:
                if order.updated_ns < snap.started_ns:
                    self._zombie(res, seen, now_mono, vo, order.status.value)
                continue
            before = order.status
            missing = oms.apply_venue_order(order, vo, "reconciliation")
            if order.status is not before:
                res.resolved.append((coid, before.value, order.status.value))
            if missing > 0:
                self._order_problem(res, seen, now_mono, coid, f"{coid}: venue reports {vo.filled_qty} filled, our fills sum to {order.filled_qty}")
            if order.status is S.PENDING_CANCEL and now_ns - order.updated_ns > grace:
                res.cancels.append(coid)  # the cancel did not take (or its answer was lost): send it again

        # 3. orders we think open that the venue does not list: resolved, never dropped ----------------
        for coid, vo in snap.lookups.items():
            order = oms.orders.get(coid)
            if order is None or order.is_terminal:
                continue  # resolved meanwhile by the stream
            before = order.status
            if vo is None:
                acked = order.venue_order_id is not None or before in (S.ACCEPTED, S.PARTIALLY_FILLED) or order.filled_qty > 0
                if not acked:
                    created = oms.created_mono(coid)
                    if created is not None and now_mono - created < grace:
                        continue  # may still be on its way: look again next cycle
                    oms._set_status(order, S.REJECTED, "reject", ErrorCode.UNKNOWN_ORDER_STATUS, "not found at the venue after the grace window: it was never placed")
                else:
                    oms._to_unknown(order, ErrorCode.POSITION_MISMATCH, "acknowledged by the venue but no longer known to it")
                    self._order_problem(res, seen, now_mono, coid, f"{coid}: acknowledged by the venue, now unknown to it")
            else:
                missing = oms.apply_venue_order(order, vo, "reconciliation")
                if missing > 0:
                    self._order_problem(res, seen, now_mono, coid, f"{coid}: venue reports {vo.filled_qty} filled, our fills sum to {order.filled_qty}")
            if order.status is not before:
                res.resolved.append((coid, before.value, order.status.value))
        for coid, err in snap.lookup_errors.items():
            res.errors.append(f"lookup {coid}: {err}")

        # 4. positions -------------------------------------------------------------------------------
        for asset in sorted(set(snap.assets) | set(snap.positions)):
            venue_qty = snap.positions.get(asset, ZERO)
            if asset not in oms.baseline and asset not in oms.touched and asset not in recent_assets:
                # never traded by this run, no fill on its way: whatever the venue holds was there before
                oms.seed_baseline({asset: venue_qty}, "first reconciliation, untouched by this run", [asset])
                res.assets.append(AssetCheck(asset, venue_qty, venue_qty, "baseline"))
                oms.try_clean(asset, f"first reconciliation: venue holdings {venue_qty} taken as the baseline")
                continue
            expected = oms.expected_venue_qty(asset)
            last_fill = oms.last_fill_mono.get(asset)
            after_snapshot = last_fill is not None and last_fill >= snap.started_mono_ns
            in_grace = asset in recent_assets or (last_fill is not None and (after_snapshot or now_mono - last_fill < grace))
            key = f"pos:{asset}"
            if self.limits.agrees(expected, venue_qty):
                res.assets.append(AssetCheck(asset, expected, venue_qty, "ok"))
                self._problems.pop(key, None)
                if not after_snapshot:
                    oms.try_clean(asset, f"reconciliation agrees: venue {venue_qty}, internal {expected}")
                if not res.missed_fills or all(f.asset != asset for f in res.missed_fills):
                    rec.episode_over(ErrorCode.POSITION_MISMATCH, asset)
                continue
            if in_grace:
                res.assets.append(AssetCheck(asset, expected, venue_qty, "grace"))
                continue
            res.assets.append(AssetCheck(asset, expected, venue_qty, "mismatch"))
            seen.add(key)
            reason = f"{asset}: venue position {venue_qty}, internal {expected} (difference {venue_qty - expected})"
            res.problems.append(reason)
            oms.mark_dirty(asset, f"reconciliation mismatch: venue {venue_qty}, internal {expected}")
            first = self._problems.setdefault(key, now_mono)
            if first != now_mono and now_mono - first >= grace:
                data = {
                    "asset": asset,
                    "venue_qty": venue_qty,
                    "internal_qty": expected,
                    "fills_sum": oms.portfolio.qty(asset),
                    "baseline": oms.baseline.get(asset, ZERO),
                    "base_fees": oms.base_fees.get(asset, ZERO),
                    "first_seen_s_ago": round((now_mono - first) / 1e9, 3),
                }
                if rec.safe(ErrorCode.POSITION_MISMATCH, asset, f"persistent position mismatch: {reason}", data, incident=True):
                    res.safe.append(ErrorCode.POSITION_MISMATCH)

        # problems that were not seen again are over
        for key in [k for k in self._problems if k not in seen and not k.startswith("pos:")]:
            del self._problems[key]

        res.ok = not (res.problems or res.errors or res.unknown_orders or (len(res.missed_fills) > len(res.recovered_fills)))
        if renew_freshness and not snap.fill_errors and not snap.lookup_errors:
            oms.gates.reconciled()
        res.apply_ns = time.perf_counter_ns() - t0
        self._audit(snap, res)
        self.last_result = res
        return res

    def _zombie(self, res: ReconcileResult, seen: set[str], now_mono: int, vo: VenueOrder, held: str) -> None:
        """An order we hold closed (``held``) that the venue lists open: cancelled at the venue by ``act``."""
        coid = vo.client_order_id
        res.zombies.append((vo.asset, coid, vo.venue_order_id))
        key = f"zombie:{coid}"
        seen.add(key)
        self._problems.setdefault(key, now_mono)
        res.problems.append(f"{coid}: we hold it {held}, the venue lists it open: cancelling it at the venue")
        self.oms.rec.warn(f"oms:zombie:{coid}", f"{vo.asset}: order {coid} is {held} here but open at the venue: cancelling it")

    def _order_problem(self, res: ReconcileResult, seen: set[str], now_mono: int, coid: str, reason: str) -> None:
        key = f"order:{coid}"
        seen.add(key)
        res.problems.append(reason)
        first = self._problems.setdefault(key, now_mono)
        if first != now_mono and now_mono - first >= self.limits.grace_ns:
            order = self.oms.orders[coid]
            if self.oms.rec.safe(ErrorCode.POSITION_MISMATCH, f"order:{coid}", f"persistent order mismatch: {reason}", {"client_order_id": coid, "asset": order.asset}, incident=True):
                res.safe.append(ErrorCode.POSITION_MISMATCH)

    def _audit(self, snap: VenueSnapshot, res: ReconcileResult) -> None:
        audit = self.oms.audit
        counts: dict[str, int] = {}
        for a in res.assets:
            counts[a.status] = counts.get(a.status, 0) + 1
        detail = (
            f"{len(res.assets)} asset(s) {counts}; venue open orders {len(snap.open_orders)}, ours {len(self.oms.live)}; "
            f"missed fills {len(res.missed_fills)}, beyond horizon {len(res.beyond_horizon)}, unknown orders {len(res.unknown_orders)}, resolved {len(res.resolved)}, "
            f"zombies {len(res.zombies)}, errors {len(res.errors)}"
        )
        data: dict[str, Any] = {
            "assets": [[a.asset, a.internal, a.venue, a.status] for a in res.assets if a.status != "ok" or a.internal or a.venue],
        }
        for name in ("problems", "errors", "unknown_orders", "cancels"):
            if getattr(res, name):
                data[name] = getattr(res, name)
        if res.resolved:
            data["resolved"] = [list(r) for r in res.resolved]
        if res.missed_fills:
            data["missed_fills"] = [f.fill_id for f in res.missed_fills]
        if res.recovered_fills:
            data["recovered_after_outage"] = [f.fill_id for f in res.recovered_fills]
        if res.beyond_horizon:
            data["beyond_horizon"] = [f.fill_id for f in res.beyond_horizon]
        code = res.safe[0] if res.safe else (ErrorCode.POSITION_MISMATCH if not res.ok and res.problems else None)
        audit.record(
            "reconciliation",
            {"venue": snap.venue, "asset": None, "ok": res.ok, "internal_qty": None, "venue_qty": None, "code": code.value if code else None, "detail": detail, "data": data},
        )
        for a in res.assets:
            if a.status == "mismatch":
                audit.record(
                    "reconciliation",
                    {"venue": snap.venue, "asset": a.asset, "ok": False, "internal_qty": a.internal, "venue_qty": a.venue, "code": ErrorCode.POSITION_MISMATCH.value, "detail": "position mismatch"},
                )

    def record_failure(self, exc: BaseException) -> ReconcileResult:
        """The fetch failed: audit it. Freshness is not renewed (new orders stop once it is too old)."""
        res = ReconcileResult(ok=False, errors=[_describe(exc)])
        code = exc.code if isinstance(exc, VenueError) else ErrorCode.VENUE_UNAVAILABLE
        self.oms.audit.record(
            "reconciliation",
            {"venue": self.oms.venue_name, "asset": None, "ok": False, "internal_qty": None, "venue_qty": None, "code": code.value, "detail": f"fetch failed: {res.errors[0]}"},
        )
        self.last_result = res
        return res

    # ------------------------------------------------------------------ actions, inside the loop
    async def act(self, res: ReconcileResult) -> int:
        """Send the cancels ``apply`` decided on. Returns how many the venue accepted."""
        oms = self.oms
        sent = 0
        for coid in res.cancels:
            if await oms.cancel(coid, "reconciliation", churn=False, retry=True):
                sent += 1
        for asset, coid, venue_order_id in res.zombies:
            try:
                await oms.venue.cancel_order(asset, coid, venue_order_id)
            except Exception as exc:
                oms.rec.bare_event(coid, "zombie_cancel_failed", venue_order_id=venue_order_id, reason=_describe(exc))
                continue
            oms.rec.bare_event(coid, "zombie_cancel", venue_order_id=venue_order_id, reason="cancelled at the venue: we hold it closed")
            sent += 1
        return sent

    # ------------------------------------------------------------------ the scheduled job
    async def reconcile_once(self, engine_call: EngineCall, venue: Venue | None = None) -> ReconcileResult:
        """One cycle: fetch (here), apply and act (inside the engine loop through ``engine_call``)."""
        try:
            snap = await self.fetch(venue)
        except Exception as exc:
            log.warning("reconciliation fetch failed: %s", _describe(exc))
            result: ReconcileResult = await engine_call(lambda: self.record_failure(exc))
            return result
        result = await engine_call(lambda: self.apply(snap))
        if result.cancels or result.zombies:
            await engine_call(lambda: self.act(result))
        return result

    async def take_baseline(self, engine_call: EngineCall, venue: Venue | None = None) -> ReconcileResult:
        """At start-up, before trading: the venue's holdings become the baseline, its fill history the watermark."""
        snap = await self.fetch(venue, full=True)

        def _apply() -> ReconcileResult:
            assets = sorted(set(snap.assets) | set(snap.positions))
            self.oms.seed_baseline(snap.positions, "start-up reconciliation", assets)
            return self.apply(snap, renew_freshness=False)

        result: ReconcileResult = await engine_call(_apply)
        if result.cancels or result.zombies:
            await engine_call(lambda: self.act(result))
        return result

    # ------------------------------------------------------------------ for the resume checklist
    def resume_check(self) -> tuple[bool, str]:
        """Positions reconciled with the venue: the last cycle was clean, nothing dirty, no order of unknown status."""
        res = self.last_result
        if res is None:
            return False, "no reconciliation has run yet"
        if not res.ok:
            return False, "last reconciliation found: " + "; ".join((res.problems + res.errors)[:3] or ["unknown or missed orders/fills"])
        dirty = self.oms.gates.dirty.assets()
        if dirty:
            return False, f"dirty positions: {', '.join(dirty)}"
        if self.oms.gates.unknown_orders:
            return False, f"orders of unknown status: {', '.join(sorted(self.oms.gates.unknown_orders))}"
        return True, f"reconciled {len(res.assets)} asset(s)"


class SchedulerSteps:
    """The reconciler as the ops scheduler's ``ReconcileJob`` drives it: ``await fetch(venue)`` outside the
    engine loop, then ``engine.call(lambda: steps.apply(snapshot))`` — ``apply`` returns a coroutine, which
    ``Engine.call`` awaits inside the loop: the comparison and the cancels it decides, in one go."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler

    async def fetch(self, venue: Venue | None = None) -> VenueSnapshot:
        try:
            return await self.reconciler.fetch(venue)
        except Exception as exc:
            self.reconciler.record_failure(exc)  # audited; the job counts failures and escalates
            raise

    def apply(self, snapshot: VenueSnapshot) -> Awaitable[ReconcileResult]:
        return self._apply_and_act(snapshot)

    async def _apply_and_act(self, snapshot: VenueSnapshot) -> ReconcileResult:
        result = self.reconciler.apply(snapshot)
        if result.cancels or result.zombies:
            await self.reconciler.act(result)
        return result


async def reconcile_once(reconciler: Reconciler, engine_call: EngineCall, venue: Venue | None = None) -> ReconcileResult:
    """The coroutine the scheduler runs every ``oms.reconcile_interval_s`` (see docs/interfaces.md)."""
    return await reconciler.reconcile_once(engine_call, venue)
