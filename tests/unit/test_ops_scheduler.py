"""The one scheduler: no overlapping runs, a failing job alerts and keeps its schedule, PTB shares it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MAX_INSTANCES, JobEvent

from bot.domain.errors import ErrorCode
from bot.engine.clock import ManualClock
from bot.ops.reconcile import ReconcileJob
from bot.ops.scheduler import OpsScheduler


class Alerts:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def __call__(self, severity: str, key: str, text: str) -> None:
        self.items.append((severity, key, text))


def wait_for_event(sch: OpsScheduler, code: int, job_id: str) -> asyncio.Event:
    seen = asyncio.Event()

    def listener(event: JobEvent) -> None:
        if event.job_id == job_id:
            seen.set()

    sch.aps.add_listener(listener, code)
    return seen


class SlowReconciler:
    """fetch() blocks until released: a reconciliation slower than its interval."""

    def __init__(self) -> None:
        self.fetches = 0
        self.applied = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def fetch(self, venue: Any) -> dict[str, int]:
        self.fetches += 1
        self.started.set()
        await self.release.wait()
        return {"n": self.fetches}

    def apply(self, snapshot: Any) -> str:
        self.applied += 1
        return "ok"


async def direct(fn: Any) -> Any:
    return fn()


async def test_overlapping_slow_reconciliation_does_not_start_a_second_instance() -> None:
    alerts = Alerts()
    sch = OpsScheduler(clock=ManualClock(1_700_000_000_000_000_000), alert=alerts)
    rec = SlowReconciler()
    job = ReconcileJob(rec, venue=None, run_in_engine=direct, timeout_s=60, max_failures=3)
    runner = sch.every("reconcile", "reconciliation", job, 5.0)
    sch.start()
    try:
        sch.trigger_now("reconcile")
        async with asyncio.timeout(5):
            await rec.started.wait()
        # the next scheduled time arrives while the first run still waits on the venue
        skipped = wait_for_event(sch, EVENT_JOB_MAX_INSTANCES, "reconcile")
        sch.trigger_now("reconcile")
        async with asyncio.timeout(5):
            await skipped.wait()
        # a manual run cannot overlap either (the runner's own guard)
        await sch.run_now("reconcile")
        assert rec.fetches == 1
        assert runner.status.skipped_overlap == 2
        done = wait_for_event(sch, EVENT_JOB_EXECUTED, "reconcile")
        rec.release.set()
        async with asyncio.timeout(5):
            await done.wait()
        assert rec.fetches == 1 and rec.applied == 1 and job.runs == 1
        assert runner.status.runs == 1 and not runner.status.running
        # and it is still scheduled
        assert sch.next_run_times()["reconcile"] is not None
    finally:
        await sch.stop(1)
    assert not sch.running
    assert alerts.items == []


async def test_a_failing_job_alerts_once_keeps_its_schedule_and_reports_recovery() -> None:
    clock = ManualClock(1_700_000_000_000_000_000)
    alerts = Alerts()
    sch = OpsScheduler(clock=clock, alert=alerts, alert_repeat_s=600)
    outcomes = [RuntimeError("venue said no"), RuntimeError("venue said no"), None]

    async def flaky() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    runner = sch.every("flaky", "flaky job", flaky, 60)
    sch.start()
    try:
        for _ in range(3):
            ran = wait_for_event(sch, EVENT_JOB_EXECUTED, "flaky")
            sch.trigger_now("flaky")
            async with asyncio.timeout(5):
                await ran.wait()  # the runner never raises: APScheduler sees every run as executed
            assert sch.next_run_times()["flaky"] is not None, "the job must keep its schedule"
            clock.advance(60 * 1_000_000_000)
    finally:
        await sch.stop(1)
    assert runner.status.failures == 2 and runner.status.consecutive_failures == 0 and runner.status.runs == 3
    assert [(sev, key) for sev, key, _ in alerts.items] == [("ERROR", "job-failed:flaky"), ("INFO", "job-recovered:flaky")]
    assert "RuntimeError: venue said no" in alerts.items[0][2]


async def test_a_job_failing_for_long_is_realerted_at_most_every_repeat_interval() -> None:
    clock = ManualClock(0)
    alerts = Alerts()
    sch = OpsScheduler(clock=clock, alert=alerts, alert_repeat_s=600)

    async def broken() -> None:
        raise OSError("disk full")

    sch.every("broken", "broken job", broken, 60)
    for _ in range(25):  # 25 minutes of failures, one a minute
        await sch.run_now("broken")
        clock.advance(60 * 1_000_000_000)
    keys = [key for _, key, _ in alerts.items]
    assert keys == ["job-failed:broken"] * 3  # at 0, 10 and 20 minutes
    assert sch.status()["broken"].consecutive_failures == 25
    assert sch.health_lines() == ["broken: FAILING, runs 25, failures 25 (last: OSError: disk full), next -"]


async def test_reconciliation_that_keeps_failing_enters_safe_once() -> None:
    safe_calls: list[tuple[ErrorCode, str]] = []

    class Down:
        async def fetch(self, venue: Any) -> Any:
            raise ConnectionError("venue down")

        def apply(self, snapshot: Any) -> Any:  # pragma: no cover - never reached
            raise AssertionError

    job = ReconcileJob(Down(), None, direct, timeout_s=5, max_failures=3, on_safe=lambda code, reason: safe_calls.append((code, reason)))
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await job()
    assert len(safe_calls) == 1
    code, reason = safe_calls[0]
    assert code is ErrorCode.VENUE_UNAVAILABLE and "3 times in a row" in reason


async def test_a_hanging_fetch_is_abandoned_after_the_timeout() -> None:
    class Hangs:
        async def fetch(self, venue: Any) -> Any:
            await asyncio.Event().wait()

        def apply(self, snapshot: Any) -> Any:  # pragma: no cover
            raise AssertionError

    job = ReconcileJob(Hangs(), None, direct, timeout_s=0.05, max_failures=3)
    with pytest.raises(TimeoutError, match="did not finish within 0.05 s"):
        await job()
    assert job.consecutive_failures == 1


async def test_job_ids_are_unique() -> None:
    sch = OpsScheduler(clock=ManualClock(0), alert=Alerts())

    async def noop() -> None:
        return None

    sch.every("a", "a", noop, 10)
    with pytest.raises(ValueError, match="already scheduled"):
        sch.every("a", "a", noop, 10)


async def test_runs_missed_within_grace_coalesce_into_one_and_beyond_grace_alert() -> None:
    """APScheduler itself (wall time): three missed interval runs within the grace time run once; a run
    missed by more than the grace time does not run and the operator is told."""
    from datetime import UTC, datetime, timedelta

    from apscheduler.events import EVENT_JOB_MISSED

    alerts = Alerts()
    sch = OpsScheduler(clock=ManualClock(0), alert=alerts, grace_s=300)
    calls: list[int] = []

    async def job() -> None:
        calls.append(1)

    runner = sch.every("late", "late job", job, 60, grace_s=300)
    sch.every("very-late", "very late job", job, 2000, grace_s=300)
    now = datetime.now(UTC)
    sch.aps.modify_job("late", next_run_time=now - timedelta(seconds=150))  # due at -150, -90 and -30 s
    sch.aps.modify_job("very-late", next_run_time=now - timedelta(seconds=1000))
    ran = wait_for_event(sch, EVENT_JOB_EXECUTED, "late")
    missed = wait_for_event(sch, EVENT_JOB_MISSED, "very-late")
    sch.start()
    try:
        async with asyncio.timeout(5):
            await ran.wait()
            await missed.wait()
        next_late = sch.next_run_times()["late"]
        assert next_late is not None and next_late > now  # the schedule goes on from now
    finally:
        await sch.stop(1)
    assert runner.status.runs == 1 and len(calls) == 1
    assert sch.status()["very-late"].missed == 1 and sch.status()["very-late"].runs == 0
    assert [(sev, key) for sev, key, _ in alerts.items] == [("WARNING", "job-missed:very-late")]
