"""The one scheduler of the service: an APScheduler 3 ``AsyncIOScheduler`` on the service's event loop.

Every periodic thing of the service runs here (reconciliation, snapshots, the daily summary, outbox
delivery, retention, expiry, heartbeat, audit flush), and python-telegram-bot's ``JobQueue`` runs on the
same scheduler when Telegram is configured (:meth:`OpsScheduler.ptb_job_queue`).

Rules for every job:
- never two instances at once: APScheduler's ``max_instances=1`` plus the runner's own guard (so a manual
  ``run_now`` cannot overlap a scheduled run either); a skipped run is counted and logged;
- misfires are coalesced into one run, which still happens when it is at most ``grace_s`` late;
- a job that raises alerts the operator (once when it starts failing, again at most every
  ``alert_repeat_s`` while it keeps failing, and once when it recovers) and keeps its schedule.

Time: APScheduler 3 decides *when* from the wall clock (``datetime.now``) and has no clock to inject. So
everything that *decides* is kept out of it and takes an injected ``Clock``: the triggers are pure
functions of the ``now`` they are given (``DailyAt.get_next_fire_time``), the runners time and throttle with
the injected clock, and the daily job works out its report day and its grace from it. Tests drive the
triggers and the jobs directly with a ``ManualClock`` (tests/integration/test_ops_daily_job.py) and use the
real scheduler only for what needs no time travel (overlap, coalescing, missed runs, PTB sharing).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.domain.ports import Clock

if TYPE_CHECKING:
    from telegram.ext import JobQueue

log = logging.getLogger(__name__)

Alert = Callable[[str, str, str], None]  # (severity, dedup key, text) — Notifier.alert
JobFn = Callable[[], Awaitable[Any]]


def clock_now(clock: Clock) -> datetime:
    ns = clock.now_ns()
    return datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(microsecond=(ns // 1000) % 1_000_000)


def safe_text(exc: BaseException, redact: Callable[[str], str] | None = None, limit: int = 200) -> str:
    """An exception as ``Type: message``, redacted and bounded, fit for a log line and an operator alert."""
    text = f"{type(exc).__name__}: {exc}"
    if redact is not None:
        text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(slots=True)
class JobStatus:
    """What /status and the tests read about a job."""

    runs: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    skipped_overlap: int = 0
    missed: int = 0
    running: bool = False
    last_started_ns: int | None = None
    last_duration_ms: float | None = None
    last_error: str = ""
    last_alert_ns: int | None = None


class JobRunner:
    """Wraps one job: overlap guard, timing, error -> alert, recovery -> alert. Never raises."""

    def __init__(
        self,
        job_id: str,
        name: str,
        fn: JobFn,
        *,
        clock: Clock,
        alert: Alert,
        alert_repeat_s: float = 600,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.job_id = job_id
        self.name = name
        self.fn = fn
        self.clock = clock
        self.alert = alert
        self.alert_repeat_ns = int(alert_repeat_s * 1_000_000_000)
        self.redact = redact
        self.status = JobStatus()
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(self) -> None:
        st = self.status
        if st.running:
            st.skipped_overlap += 1
            log.warning("job %s: previous run still in progress, this run is skipped (%d so far)", self.job_id, st.skipped_overlap)
            return
        st.running = True
        self.idle.clear()
        st.last_started_ns = self.clock.now_ns()
        started = time.monotonic()
        try:
            await self.fn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
        else:
            self._succeeded()
        finally:
            st.running = False
            st.runs += 1
            st.last_duration_ms = (time.monotonic() - started) * 1000
            self.idle.set()

    def _failed(self, exc: Exception) -> None:
        st = self.status
        st.failures += 1
        st.consecutive_failures += 1
        st.last_error = safe_text(exc, self.redact)
        log.error("job %s failed (%d in a row): %s", self.job_id, st.consecutive_failures, st.last_error, exc_info=exc)
        now = self.clock.now_ns()
        if st.last_alert_ns is None or st.consecutive_failures == 1 or now - st.last_alert_ns >= self.alert_repeat_ns:
            st.last_alert_ns = now
            self._alert(
                "ERROR",
                f"job-failed:{self.job_id}",
                f"Scheduled job '{self.name}' failed ({st.consecutive_failures} in a row): {st.last_error}. "
                "It stays scheduled and runs again at its next time.",
            )

    def _succeeded(self) -> None:
        st = self.status
        if st.consecutive_failures:
            self._alert("INFO", f"job-recovered:{self.job_id}", f"Scheduled job '{self.name}' runs again after {st.consecutive_failures} failure(s).")
        st.consecutive_failures = 0
        st.last_alert_ns = None

    def _alert(self, severity: str, key: str, text: str) -> None:
        try:
            self.alert(severity, key, text)
        except Exception:  # an alert path that fails must not take the job down with it
            log.exception("job %s: could not queue the alert %s", self.job_id, key)


class OpsScheduler:
    """Owns the ``AsyncIOScheduler``. Start and stop it with the service (``start`` / ``stop``)."""

    def __init__(self, *, clock: Clock, alert: Alert, grace_s: int = 300, alert_repeat_s: float = 600, redact: Callable[[str], str] | None = None) -> None:
        self.clock = clock
        self.alert = alert
        self.grace_s = grace_s
        self.alert_repeat_s = alert_repeat_s
        self.redact = redact
        self.aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": grace_s},
        )
        self.aps.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self.runners: dict[str, JobRunner] = {}
        self._job_queue: Any = None

    # ------------------------------------------------------------------ jobs
    def add(self, job_id: str, name: str, fn: JobFn, trigger: BaseTrigger, *, grace_s: int | None = None) -> JobRunner:
        """Schedule ``fn`` (an ``async def`` with no arguments). ``grace_s`` defaults to the scheduler's."""
        if job_id in self.runners:
            raise ValueError(f"job {job_id!r} is already scheduled")
        runner = JobRunner(job_id, name, fn, clock=self.clock, alert=self.alert, alert_repeat_s=self.alert_repeat_s, redact=self.redact)
        self.runners[job_id] = runner
        self.aps.add_job(
            runner.__call__,
            trigger=trigger,
            id=job_id,
            name=name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=self.grace_s if grace_s is None else grace_s,
        )
        return runner

    def every(self, job_id: str, name: str, fn: JobFn, seconds: float, *, grace_s: int | None = None) -> JobRunner:
        """An interval job. Its grace defaults to its interval (an interval job that is late by more than
        one interval is simply run at the next one)."""
        grace = grace_s if grace_s is not None else max(1, int(seconds))
        return self.add(job_id, name, fn, IntervalTrigger(seconds=seconds, timezone=UTC), grace_s=grace)

    async def run_now(self, job_id: str) -> None:
        """Run a job immediately in the caller's task (the overlap guard still applies)."""
        await self.runners[job_id]()

    def trigger_now(self, job_id: str) -> None:
        """Ask APScheduler to dispatch the job now (as a scheduled run, through its executor)."""
        self.aps.modify_job(job_id, next_run_time=datetime.now(UTC))

    def status(self) -> dict[str, JobStatus]:
        return {job_id: runner.status for job_id, runner in self.runners.items()}

    def next_run_times(self) -> dict[str, datetime | None]:
        return {job.id: getattr(job, "next_run_time", None) for job in self.aps.get_jobs()}  # None until started

    def health_lines(self) -> list[str]:
        """One plain-text line per job for /status: state, runs, failures, skipped, next run (UTC)."""
        nxt = self.next_run_times()
        lines = []
        for job_id, r in sorted(self.runners.items()):
            st = r.status
            state = "running" if st.running else ("FAILING" if st.consecutive_failures else "ok")
            parts = [f"{job_id}: {state}", f"runs {st.runs}"]
            if st.failures:
                parts.append(f"failures {st.failures} (last: {st.last_error})")
            if st.skipped_overlap:
                parts.append(f"skipped {st.skipped_overlap}")
            if st.missed:
                parts.append(f"missed {st.missed}")
            when = nxt.get(job_id)
            parts.append(f"next {when:%H:%M:%S}" if when is not None else "next -")
            lines.append(", ".join(parts))
        return lines

    def _on_event(self, event: JobEvent) -> None:
        runner = self.runners.get(event.job_id)
        if event.code == EVENT_JOB_MAX_INSTANCES:
            if runner is not None:
                runner.status.skipped_overlap += 1
                n = runner.status.skipped_overlap
                if n == 1 or n % 100 == 0:
                    log.warning("job %s: still running at its next time; run skipped (%d so far)", event.job_id, n)
        elif event.code == EVENT_JOB_MISSED:
            name = runner.name if runner is not None else event.job_id
            if runner is not None:
                runner.status.missed += 1
            when = getattr(event, "scheduled_run_time", None)
            log.warning("job %s missed its run at %s (more than its grace time late)", event.job_id, when)
            try:
                self.alert("WARNING", f"job-missed:{event.job_id}", f"Scheduled job '{name}' missed its run at {when:%Y-%m-%d %H:%M:%S} UTC (the service was busy or down).")
            except Exception:
                log.exception("could not queue the missed-job alert")

    # ------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return bool(self.aps.running)

    def start(self) -> None:
        """Start on the running event loop."""
        if not self.aps.running:
            self.aps.start()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """No new runs; wait up to ``timeout_s`` for running jobs, then cancel them; shut the scheduler down."""
        if not self.aps.running:
            return
        self.aps.pause()
        busy = [r.idle.wait() for r in self.runners.values() if r.status.running]
        if busy:
            try:
                async with asyncio.timeout(timeout_s):
                    await asyncio.gather(*busy)
            except TimeoutError:
                log.warning("scheduler stop: %d job(s) still running after %.1f s are cancelled", len(busy), timeout_s)
        self.aps.shutdown(wait=False)  # cancels what still runs (AsyncIOExecutor) on the next loop iteration
        await asyncio.sleep(0)  # let APScheduler's own shutdown callback run (it is scheduled with call_soon)

    # ------------------------------------------------------------------ python-telegram-bot
    def ptb_job_queue(self) -> JobQueue[Any]:
        """A ``telegram.ext.JobQueue`` whose jobs run on this scheduler. Pass it to
        ``ApplicationBuilder().job_queue(...)``. Starting and stopping the Application neither starts nor
        stops this scheduler (the service owns it); stopping the Application removes the jobs it added."""
        if self._job_queue is None:
            self._job_queue = _shared_job_queue_class()(self.aps)
        return self._job_queue


def _shared_job_queue_class() -> type[Any]:
    from telegram.ext import Job, JobQueue

    class SharedJobQueue(JobQueue):  # type: ignore[type-arg]
        """PTB's JobQueue on a scheduler it does not own (the service's)."""

        def __init__(self, scheduler: AsyncIOScheduler) -> None:
            super().__init__()
            # PTB made its own AsyncIOScheduler above; it never starts. Ours replaces it.
            self.scheduler = scheduler

        def set_application(self, application: Any) -> None:
            # PTB calls scheduler.configure() here, which resets executors and job stores and refuses a
            # running scheduler. Ours is configured (UTC, AsyncIO executor) and may already run.
            self._application = weakref.ref(application)

        def _own(self) -> list[Any]:
            return [j for j in self.scheduler.get_jobs() if len(j.args) == 2 and j.args[0] is self]

        def jobs(self, pattern: Any = None) -> tuple[Any, ...]:
            """PTB's jobs only (the scheduler also runs the service's jobs, which are not PTB Jobs)."""
            found = tuple(Job.from_aps_job(j) for j in self._own())
            if pattern is None:
                return found
            regex = re.compile(pattern)
            return tuple(j for j in found if j.name and regex.search(j.name))

        async def start(self) -> None:
            """The service starts the scheduler."""

        async def stop(self, wait: bool = True) -> None:
            """The service stops the scheduler; the Application's jobs go with the Application."""
            for job in self._own():
                job.remove()

    return SharedJobQueue
