"""The scheduled daily summary with an injected clock: at the configured local time, exactly once per day,
across a DST change and a restart in the middle of the day; a missed run within the grace time runs once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.engine.clock import ManualClock
from bot.ops.daily import DailySummaryJob
from bot.ops.summary import Summary, build_daily_summary
from bot.ops.triggers import DailyAt
from bot.store import migrate
from bot.store.models import OutboxRow
from tests.conftest import DB

BERLIN = ZoneInfo("Europe/Berlin")
GRACE_S = 300


def ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


class Harness:
    """One 'process': a job instance over the shared database, with its own alerts list."""

    def __init__(self, db: AsyncEngine, clock: ManualClock, *, real_build: bool = False) -> None:
        self.clock = clock
        self.alerts: list[tuple[str, str, str]] = []
        self.built: list[date] = []
        self.trigger = DailyAt(time(21, 0), BERLIN)

        async def build(day: date) -> Summary:
            self.built.append(day)
            if real_build:
                return await build_daily_summary(db, day, BERLIN, at=time(21, 0), configured_mode="DRY_RUN")
            return Summary(day, *self.trigger.window(day), f"<b>summary {day}</b>", b"\x89PNG\r\n\x1a\nfake", None, "chart")  # type: ignore[arg-type]

        self.job = DailySummaryJob(
            db=db, trigger=self.trigger, clock=clock, build=build, alert=lambda *a: self.alerts.append(a), grace_s=GRACE_S
        )

    async def drive(self, until: datetime, *, delay: timedelta = timedelta(milliseconds=5)) -> list[str]:
        """Run the job at each fire time APScheduler would compute (trigger.get_next_fire_time), ``delay``
        after it, from the clock's present to ``until``; the clock ends at ``until``."""
        outcomes = []
        now = datetime.fromtimestamp(self.clock.now_ns() / 1e9, UTC)
        fire = self.trigger.get_next_fire_time(None, now)
        while fire is not None and fire + delay <= until:
            self.clock.set(ns(fire + delay))
            outcomes.append(await self.job.run())
            fire = self.trigger.get_next_fire_time(fire, fire + delay)
        self.clock.set(ns(until))
        return outcomes


@pytest.fixture
async def engine(db: DB) -> AsyncIterator[AsyncEngine]:
    eng = db.engine()
    await migrate.upgrade(eng)
    yield eng
    await eng.dispose()


async def outbox(engine: AsyncEngine) -> list[tuple[str, datetime, bool]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(OutboxRow.dedup_key, OutboxRow.created_at, OutboxRow.photo).order_by(OutboxRow.id))).all()
    return [(r.dedup_key, r.created_at, r.photo is not None) for r in rows]


async def test_fires_at_local_time_exactly_once_per_day_across_the_dst_change(engine: AsyncEngine) -> None:
    clock = ManualClock(ns(datetime(2026, 3, 27, 12, tzinfo=UTC)))
    h = Harness(engine, clock, real_build=True)
    outcomes = await h.drive(datetime(2026, 3, 31, 12, tzinfo=UTC))
    assert outcomes == ["sent"] * 4
    assert h.job.sent == [date(2026, 3, 27), date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    rows = await outbox(engine)
    assert [k for k, _, _ in rows] == [f"daily-summary:2026-03-{d}:{part}" for d in (27, 28, 29, 30) for part in ("text", "chart")]
    assert [photo for _, _, photo in rows] == [False, True] * 4
    sent_local = [ts.astimezone(BERLIN) for _, ts, _ in rows[::2]]
    assert [(t.hour, t.minute) for t in sent_local] == [(21, 0)] * 4  # 21:00 CET, CET, CEST, CEST
    assert [t.utcoffset() for t in sent_local] == [timedelta(hours=1)] * 2 + [timedelta(hours=2)] * 2
    # asking again the same evening (a coalesced misfire, a second trigger) sends nothing
    assert await h.job.run() == "already-sent"
    assert len(await outbox(engine)) == 8


async def test_restart_in_the_middle_of_the_day_does_not_send_twice_or_skip(engine: AsyncEngine) -> None:
    clock = ManualClock(ns(datetime(2026, 6, 1, 8, tzinfo=UTC)))
    first = Harness(engine, clock)
    assert await first.job.catch_up() is None  # first start ever: nothing due
    assert await first.drive(datetime(2026, 6, 1, 19, 30, tzinfo=UTC)) == ["sent"]  # 21:00 CEST = 19:00 UTC
    # the process restarts at 21:30 local the same evening
    second = Harness(engine, clock)
    assert await second.job.catch_up() is None
    assert await second.job.run() == "already-sent"
    # and again the next day at noon, before the summary time
    clock.set(ns(datetime(2026, 6, 2, 10, tzinfo=UTC)))
    third = Harness(engine, clock)
    assert await third.job.catch_up() is None
    assert await third.drive(datetime(2026, 6, 3, 10, tzinfo=UTC)) == ["sent"]
    assert first.built + second.built + third.built == [date(2026, 6, 1), date(2026, 6, 2)]
    assert [k for k, _, _ in await outbox(engine)] == [
        "daily-summary:2026-06-01:text", "daily-summary:2026-06-01:chart", "daily-summary:2026-06-02:text", "daily-summary:2026-06-02:chart",
    ]
    assert first.alerts == second.alerts == third.alerts == []


async def test_missed_run_within_grace_runs_once_at_start(engine: AsyncEngine) -> None:
    clock = ManualClock(ns(datetime(2026, 6, 1, 8, tzinfo=UTC)))
    h = Harness(engine, clock)
    await h.drive(datetime(2026, 6, 1, 20, tzinfo=UTC))  # day 1 sent normally
    # down from 20:58 to 21:04 local on day 2: the 21:00 run never happened
    clock.set(ns(datetime(2026, 6, 2, 19, 4, tzinfo=UTC)))
    restarted = Harness(engine, clock)
    assert await restarted.job.catch_up() == "sent"
    assert await restarted.job.catch_up() is None
    assert await restarted.job.run() == "already-sent"
    assert restarted.built == [date(2026, 6, 2)] and restarted.alerts == []


async def test_missed_run_beyond_grace_is_not_sent_late_but_the_operator_is_told(engine: AsyncEngine) -> None:
    clock = ManualClock(ns(datetime(2026, 6, 1, 8, tzinfo=UTC)))
    h = Harness(engine, clock)
    await h.drive(datetime(2026, 6, 1, 20, tzinfo=UTC))
    clock.set(ns(datetime(2026, 6, 2, 19, 6, tzinfo=UTC)))  # 6 min late, grace 5 min
    restarted = Harness(engine, clock)
    assert await restarted.job.catch_up() == "missed"
    assert restarted.built == []
    [(severity, key, text)] = restarted.alerts
    assert severity == "WARNING" and key == "daily-summary-missed:2026-06-02"
    assert "bot report daily --date 2026-06-02" in text
    # the next day goes out as usual
    assert await restarted.drive(datetime(2026, 6, 3, 20, tzinfo=UTC)) == ["sent"]
    assert restarted.built == [date(2026, 6, 3)]


async def test_a_failed_attempt_is_retried_until_sent_or_past_the_grace_time(engine: AsyncEngine) -> None:
    clock = ManualClock(ns(datetime(2026, 6, 1, 19, 0, 0, 5000, tzinfo=UTC)))  # just after 21:00 CEST
    h = Harness(engine, clock)
    retries: list[float] = []
    h.job.schedule_retry = retries.append
    real_build = h.job.build
    failures = [OSError("database is locked")]

    async def flaky(day: date) -> Summary:
        if failures:
            raise failures.pop()
        return await real_build(day)

    h.job.build = flaky
    with pytest.raises(OSError):
        await h.job()  # as the scheduler calls it: the runner alerts, the retry is booked
    assert retries == [60.0]
    clock.advance(60 * 1_000_000_000)
    await h.job()
    assert h.job.sent == [date(2026, 6, 1)] and retries == [60.0]
    # past the grace time a retry gives up and tells the operator instead
    clock.set(ns(datetime(2026, 6, 2, 19, 0, 1, tzinfo=UTC)))
    failures.append(OSError("disk full"))
    with pytest.raises(OSError):
        await h.job()
    clock.advance(GRACE_S * 1_000_000_000)
    assert await h.job.run() == "missed"
    assert [key for _, key, _ in h.alerts] == ["daily-summary-missed:2026-06-02"]
