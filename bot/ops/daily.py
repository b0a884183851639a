"""The scheduled daily summary: exactly once per report day, across restarts and DST.

The job fires on ``DailyAt`` (APScheduler). Whenever it runs it works out, from the injected clock, which
fire instant it belongs to (the latest one at or before now) and so which report day. Then:

- day already sent (``state_kv`` ops/daily_summary, written in the same transaction as the outbox rows):
  nothing happens: a second run, a restart later that day, or a catch-up never sends twice;
- the fire instant is more than ``grace_s`` ago: the run is missed; the operator gets one alert naming the
  command that produces the report (``bot report daily --date D`` or ``/report``);
- otherwise the summary is built and its message and chart are written to the outbox.

At start-up ``catch_up()`` does the same for the latest fire instant, so a service that was down at the
summary time and comes back within the grace time sends that day's summary once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.domain.ports import Clock
from bot.ops.outbox import enqueue, kv_get, kv_put
from bot.ops.scheduler import Alert, clock_now
from bot.ops.summary import Summary
from bot.ops.triggers import DailyAt

log = logging.getLogger(__name__)

STATE_NS, STATE_KEY = "ops", "daily_summary"
BuildFn = Callable[[date], Awaitable[Summary]]


class DailySummaryJob:
    def __init__(
        self,
        *,
        db: AsyncEngine,
        trigger: DailyAt,
        clock: Clock,
        build: BuildFn,
        alert: Alert,
        grace_s: int,
        before: Callable[[], Awaitable[None]] | None = None,
        schedule_retry: Callable[[float], None] | None = None,
        retry_after_s: float = 60.0,
    ) -> None:
        self.db = db
        self.trigger = trigger
        self.clock = clock
        self.build = build
        self.alert = alert
        self.grace = timedelta(seconds=grace_s)
        self.before = before  # e.g. flush the audit buffer so the day's last rows are in the report
        self.sent: list[date] = []  # days this instance sent (tests and /status)
        self.schedule_retry = schedule_retry  # a failed attempt is retried (within the grace time, then: missed)
        self.retry_after_s = retry_after_s

    async def last_sent(self) -> date | None:
        async with self.db.connect() as conn:
            value = await kv_get(conn, STATE_NS, STATE_KEY)
        return date.fromisoformat(value["last_sent"]) if value and value.get("last_sent") else None

    async def __call__(self) -> None:
        try:
            await self.run()
        except Exception:
            if self.schedule_retry is not None:
                self.schedule_retry(self.retry_after_s)
            raise

    async def run(self) -> str:
        """One attempt for the latest fire instant. Returns 'sent', 'already-sent' or 'missed'."""
        now = clock_now(self.clock)
        fire = self.trigger.last_at_or_before(now)
        return await self._attempt(fire, now)

    async def catch_up(self) -> str | None:
        """At start-up: the latest fire instant, if its day has not been sent."""
        now = clock_now(self.clock)
        fire = self.trigger.last_at_or_before(now)
        last = await self.last_sent()
        label = self.trigger.label_of_fire(fire)
        if last is not None and last >= label:
            return None
        if last is None and now - fire > self.grace:
            log.info("daily summary: first start, nothing was due within the grace time")
            return None
        return await self._attempt(fire, now)

    async def _attempt(self, fire: datetime, now: datetime) -> str:
        label = self.trigger.label_of_fire(fire)
        last = await self.last_sent()
        if last is not None and last >= label:
            log.info("daily summary for %s was already sent", label)
            return "already-sent"
        late = now - fire
        if late > self.grace:
            log.warning("daily summary for %s missed: %s late (grace %s)", label, late, self.grace)
            self.alert(
                "WARNING",
                f"daily-summary-missed:{label.isoformat()}",
                f"The daily summary for {label.isoformat()} was not sent at its time (the service was not running). "
                f"Get it with /report or: bot report daily --date {label.isoformat()}",
            )
            return "missed"
        if self.before is not None:
            await self.before()
        summary = await self.build(label)
        stamp = clock_now(self.clock)
        async with self.db.begin() as conn:
            await enqueue(conn, now=stamp, severity="INFO", dedup_key=f"daily-summary:{label.isoformat()}:text", text=summary.text_html)
            await enqueue(
                conn, now=stamp, severity="INFO", dedup_key=f"daily-summary:{label.isoformat()}:chart", text=summary.caption_html, photo=summary.png_bytes
            )
            await kv_put(conn, STATE_NS, STATE_KEY, {"last_sent": label.isoformat(), "sent_at": stamp.isoformat()}, stamp)
        self.sent.append(label)
        log.info("daily summary for %s queued (%d bytes of chart)", label, len(summary.png_bytes))
        return "sent"
