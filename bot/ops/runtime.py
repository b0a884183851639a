"""The operations part assembled from what the composition root injects: the scheduler and its jobs, the
snapshot store, the daily summary, the incident desk and the on-demand reports.

``bot/service.py`` builds one ``OpsRuntime`` with ``OpsDeps`` (only the root decides what is wired: no
reconciler -> no reconciliation job; no Telegram -> no outbox delivery job, and so on) and calls
``start()`` after the engine starts and ``stop()`` / ``final_snapshot()`` when it shuts down.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.date import DateTrigger
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import Settings
from bot.domain.ports import Clock
from bot.engine.clock import WallClock
from bot.keys.redaction import redact
from bot.ops.daily import DailySummaryJob
from bot.ops.incidents import IncidentDesk, RunInfo
from bot.ops.marketdata import PriceSource, RecordedPrices
from bot.ops.outbox import enqueue
from bot.ops.reconcile import OnSafe, ReconcileJob, Reconciler
from bot.ops.retention import prune_market_data
from bot.ops.scheduler import Alert, JobFn, OpsScheduler, clock_now
from bot.ops.snapshot import Snapshot, SnapshotStore, engine_state
from bot.ops.summary import Summary, build_daily_summary
from bot.ops.triggers import DailyAt
from bot.risk.safety import INCIDENT_RECORDED

log = logging.getLogger(__name__)


@dataclass
class OpsDeps:
    """``clock`` is the engine's (event time in a fast-forward DRY_RUN or REPLAY: incident timestamps match
    the audit rows); ``wall_clock`` (default: the wall clock) times the schedule: the daily summary, snapshots,
    retention and /report follow the operator's clock, like APScheduler itself."""

    settings: Settings
    clock: Clock
    db: AsyncEngine
    engine: Any  # bot.engine.loop.Engine
    run: RunInfo
    flush: Callable[[], Awaitable[None]]
    alert: Alert | None = None  # Notifier.alert; None = OutboxAlert (writes the outbox directly, and logs)
    reconciler: Reconciler | None = None
    venue: Any = None
    on_safe: OnSafe | None = None
    deliver_outbox: JobFn | None = None  # the control plane's delivery (one pass over pending outbox rows)
    expiry: Mapping[str, Callable[[], Any]] = field(default_factory=dict)  # name -> fn run inside the engine loop
    state_extra: Mapping[str, Callable[[], Any]] = field(default_factory=dict)  # e.g. trading_state, arming
    prices: PriceSource | None = None
    safety: Any = None  # bot.risk.safety.SafetyController: incidents follow it, its state goes into snapshots
    arming: Any = None  # bot.control.arming.Arming: its expiry is checked on schedule, its state snapshotted
    engine_call_timeout_s: float = 10.0
    wall_clock: Clock | None = None
    redact: Callable[[str], str] | None = None  # the key store's redaction, applied to job errors before alerting


class Reports:
    """On-demand reports: ``/report`` (control plane) and the scheduled summary use the same code."""

    def __init__(self, db: AsyncEngine, settings: Settings, clock: Clock, prices: PriceSource | None, flush: Callable[[], Awaitable[None]] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.prices = prices
        self.flush = flush
        self.tz = ZoneInfo(settings.ops.timezone)
        self.trigger = DailyAt(settings.ops.daily_summary_time, self.tz)

    async def daily(self, day: date | None = None) -> Summary:
        """The summary of report day ``day``; None = the day running now, so far."""
        now = clock_now(self.clock)
        if self.flush is not None:
            await self.flush()
        if day is None:
            day = self.trigger.label_at(now)
        o = self.settings.ops
        return await build_daily_summary(
            self.db, day, self.tz, at=o.daily_summary_time, prices=self.prices, now=now, configured_mode=self.settings.mode.value,
            outliers=o.summary_outliers, bucket_min=o.regime_bucket_min, trend_er=o.regime_trend_er, high_vol_mult=o.regime_high_vol_mult,
        )


class OutboxAlert:
    """A Notifier-shaped fallback (``alert(severity, key, text)``) that writes the outbox directly. The
    control plane's Notifier replaces it when Telegram is wired; without Telegram the rows wait in the outbox
    (and every alert is logged)."""

    def __init__(self, db: AsyncEngine, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()

    def alert(self, severity: str, key: str, text: str) -> None:
        level = {"CRITICAL": logging.CRITICAL, "ERROR": logging.ERROR, "WARNING": logging.WARNING}.get(severity, logging.INFO)
        text = redact(text)  # no registered secret reaches the outbox table (bot.keys.redaction)
        log.log(level, "alert [%s] %s", key, text)
        now = clock_now(self.clock)
        try:
            task = asyncio.get_running_loop().create_task(self._write(severity, f"{key}@{now:%Y%m%dT%H%M}", html.escape(text[:4000], quote=False), now))
        except RuntimeError:
            return  # no loop (shutting down): the log line above is all we can do
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, severity: str, key: str, text: str, now: datetime) -> None:
        try:
            async with self.db.begin() as conn:
                await enqueue(conn, now=now, severity=severity, dedup_key=key[:128], text=text)
        except Exception:
            log.exception("could not write the alert %s to the outbox", key)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class OpsRuntime:
    def __init__(self, deps: OpsDeps) -> None:
        self.deps = deps
        s = deps.settings
        o = s.ops
        wall = deps.wall_clock if deps.wall_clock is not None else WallClock()
        self.wall_clock = wall
        self.outbox_alert = OutboxAlert(deps.db, wall) if deps.alert is None else None
        self.alert: Alert = deps.alert if deps.alert is not None else self.outbox_alert.alert  # type: ignore[union-attr]
        self.tz = ZoneInfo(o.timezone)
        self.prices = deps.prices if deps.prices is not None else RecordedPrices(s.market.record_dir)
        self.scheduler = OpsScheduler(clock=wall, alert=self.alert, grace_s=o.misfire_grace_s, alert_repeat_s=o.job_alert_repeat_s, redact=deps.redact)
        self.snapshots = SnapshotStore(
            o.snapshot_dir, keep=o.snapshot_keep, clock=wall, run_id=deps.run.run_id, mode=deps.run.mode,
            version_hash=deps.run.version_hash, config_hash=deps.run.config_hash, db=deps.db,
        )
        self.reports = Reports(deps.db, s, wall, self.prices, deps.flush)
        self.daily = DailySummaryJob(
            db=deps.db, trigger=self.reports.trigger, clock=wall, build=self._build_scheduled, alert=self.alert, grace_s=o.misfire_grace_s, before=deps.flush,
            schedule_retry=self._retry_daily,
        )
        self.incidents = IncidentDesk(
            deps.db, clock=deps.clock, run=deps.run, tz=self.tz, state_provider=self._state, flush=deps.flush,
            lookback_s=o.incident_lookback_s, requires_root_cause=o.incident_requires_root_cause,
        )
        self.reconcile: ReconcileJob | None = None
        self.restored: Snapshot | None = None
        self.expiry: dict[str, Callable[[], Any]] = {}
        self.state_extra: dict[str, Callable[[], Any]] = dict(deps.state_extra)
        if deps.safety is not None:
            safety = deps.safety
            safety.add_listener(self.incidents.on_state_change)  # SAFE / HALTED draft an incident report
            safety.provide_check(INCIDENT_RECORDED, self.incidents.resume_check_item)  # spec 16.1: resume needs an incident report
            self.state_extra.setdefault(
                "trading_state", lambda: {"state": str(safety.state), "code": str(safety.code) if safety.code else None, "reason": safety.reason, "since_ns": safety.since_ns}
            )
        self._register()
        for name, fn in deps.expiry.items():
            self.add_expiry(name, fn)
        if deps.arming is not None:
            self.attach_arming(deps.arming)

    # ------------------------------------------------------------------ jobs
    def _register(self) -> None:
        d, s, sch = self.deps, self.deps.settings, self.scheduler
        sch.every("heartbeat", "heartbeat", self._heartbeat, s.engine.heartbeat_interval_s)
        sch.every("audit-flush", "audit flush", d.flush, s.store.flush_interval_ms / 1000)
        if d.reconciler is not None:
            self.reconcile = ReconcileJob(
                d.reconciler, d.venue, self.in_engine, timeout_s=s.ops.reconcile_timeout_s, max_failures=s.ops.reconcile_max_failures, on_safe=d.on_safe
            )
            sch.every("reconcile", "reconciliation", self.reconcile, s.oms.reconcile_interval_s)
        sch.every("snapshot", "state snapshot", self.snapshot_now, s.ops.snapshot_interval_s, grace_s=s.ops.misfire_grace_s)
        if s.ops.daily_summary_enabled:
            sch.add("daily-summary", "daily summary", self.daily, self.reports.trigger)
        if d.deliver_outbox is not None:
            sch.every("outbox", "alert delivery", d.deliver_outbox, s.ops.outbox_interval_s)
        sch.add("retention", "market data retention", self.retention, DailyAt(s.ops.retention_time, self.tz), grace_s=86_400)

    def add_expiry(self, name: str, fn: Callable[[], Any]) -> None:
        """Run ``fn`` inside the engine loop every ``ops.expiry_interval_s`` (staged intents, arming...)."""
        self.expiry[name] = fn
        if "expiry" not in self.scheduler.runners:
            self.scheduler.every("expiry", "expiry of staged intents and arming", self._expire, self.deps.settings.ops.expiry_interval_s)

    def attach_arming(self, arming: Any) -> None:
        """``Arming``: its expiry is checked on schedule and its state goes into every snapshot."""
        self.add_expiry("arming", arming.check_expiry)
        self.state_extra.setdefault("arming", lambda: {"armed": arming.expires_ns is not None, "expires_ns": arming.expires_ns, "armed_by": arming.armed_by})

    def _retry_daily(self, delay_s: float) -> None:
        """One more attempt of the daily summary in ``delay_s`` (it gives up by itself after the grace time)."""
        runner = self.scheduler.runners.get("daily-summary")
        if runner is None or not self.scheduler.running:
            return
        when = clock_now(self.wall_clock) + timedelta(seconds=delay_s)
        self.scheduler.aps.add_job(
            runner.__call__, trigger=DateTrigger(run_date=when, timezone=UTC), id="daily-summary-retry", name="daily summary (retry)",
            replace_existing=True, max_instances=1, misfire_grace_time=self.deps.settings.ops.misfire_grace_s,
        )

    async def in_engine(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` inside the engine loop, bounded (a dead engine must not hang a job forever)."""
        return await asyncio.wait_for(self.deps.engine.call(fn), self.deps.engine_call_timeout_s)

    async def _heartbeat(self) -> None:
        log.info(self.deps.engine.heartbeat_line())

    async def _expire(self) -> None:
        failures: list[str] = []
        for name, fn in self.expiry.items():
            try:
                await self.in_engine(fn)
            except Exception as exc:
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
        if failures:
            raise RuntimeError("; ".join(failures))

    def _state(self) -> dict[str, Any]:
        return engine_state(self.deps.engine, self.state_extra)

    async def snapshot_now(self) -> Snapshot:
        state = await self.in_engine(self._state)
        return await self.snapshots.take(state)

    async def final_snapshot(self) -> Snapshot | None:
        """After the engine stopped (nothing else mutates its state): the run's last snapshot."""
        try:
            return await self.snapshots.take(self._state())
        except Exception:
            log.exception("final snapshot failed")
            return None

    async def retention(self) -> None:
        s = self.deps.settings
        today = clock_now(self.wall_clock).astimezone(UTC).date()
        await asyncio.to_thread(prune_market_data, Path(s.market.record_dir), keep_days=s.market.retention_days, today=today)

    async def _build_scheduled(self, day: date) -> Summary:
        o, s = self.deps.settings.ops, self.deps.settings
        return await build_daily_summary(
            self.deps.db, day, self.tz, at=o.daily_summary_time, prices=self.prices, configured_mode=s.mode.value,
            outliers=o.summary_outliers, bucket_min=o.regime_bucket_min, trend_er=o.regime_trend_er, high_vol_mult=o.regime_high_vol_mult,
            save_checkpoint=True,
        )

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.restored = await asyncio.to_thread(self.snapshots.latest_valid)
        if self.restored is not None:
            st = self.restored.state
            log.info(
                "latest snapshot %s (run %s): positions %s, %d open order(s)",
                self.restored.path.name, self.restored.run_id[:8],
                {a: p.get("qty") for a, p in (st.get("positions") or {}).items()} or "flat", len(st.get("open_orders") or []),
            )
        await self.incidents.load()
        self.scheduler.start()
        if self.deps.settings.ops.daily_summary_enabled:
            try:
                await self.daily.catch_up()
            except Exception:
                log.exception("daily summary catch-up failed")

    async def stop(self, timeout_s: float) -> None:
        await self.scheduler.stop(timeout_s)
        await self.incidents.drain()
        if self.outbox_alert is not None:
            await self.outbox_alert.drain()
