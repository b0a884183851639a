"""A daily trigger at a local wall-clock time that is exact across DST changes, and the report day it defines.

APScheduler's own triggers compute from whatever ``now`` they are given, so this one is tested with an
injected ``now``. The rules, for a time ``at`` in zone ``tz`` on local date ``d``:

- the fire instant is ``d at`` read with ``fold=0``: an ambiguous time (autumn, clocks go back) fires at its
  first occurrence, once; a time that does not exist (spring, clocks jump forward) fires at the instant the
  time would have had before the jump (02:30 in a 02:00->03:00 gap fires at 03:30 local). Every local date
  fires exactly once.
- the *report day* ``D`` is the span between two consecutive fire instants, labelled by the date on which it
  ends (with ``at`` = 00:00 the label is the day before: the report at midnight covers the day that just
  ended). Report days tile time without gaps or overlaps; a DST day is 23 or 25 hours long.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from apscheduler.triggers.base import BaseTrigger

_TINY = timedelta(microseconds=1)


class DailyAt(BaseTrigger):
    """Fires once per local date at ``at`` in ``tz`` (see the module docstring for DST)."""

    def __init__(self, at: time, tz: tzinfo) -> None:
        if at.tzinfo is not None:
            raise ValueError("DailyAt: pass a naive time and the zone separately")
        self.at = at
        self.tz = tz
        self._label_shift = 1 if at == time(0, 0) else 0

    def __repr__(self) -> str:
        return f"DailyAt({self.at.isoformat()}, {self.tz})"

    def fire_time(self, day: date) -> datetime:
        """The UTC instant this trigger fires on local date ``day``."""
        return datetime.combine(day, self.at, tzinfo=self.tz).replace(fold=0).astimezone(UTC)

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.tz).date()

    def next_at_or_after(self, instant: datetime) -> datetime:
        day = self._local_date(instant) - timedelta(days=1)
        while True:
            fire = self.fire_time(day)
            if fire >= instant:
                return fire
            day += timedelta(days=1)

    def last_at_or_before(self, instant: datetime) -> datetime:
        day = self._local_date(instant) + timedelta(days=1)
        while True:
            fire = self.fire_time(day)
            if fire <= instant:
                return fire
            day -= timedelta(days=1)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        """APScheduler's contract: the first fire time after ``previous_fire_time``, else at or after ``now``."""
        start = previous_fire_time + _TINY if previous_fire_time is not None else now
        return self.next_at_or_after(start)

    # ------------------------------------------------------------------ report days
    def label_of_fire(self, fire: datetime) -> date:
        """The report day that ends at this fire instant."""
        for day in (self._local_date(fire), self._local_date(fire) - timedelta(days=1)):
            if self.fire_time(day) == fire:
                return day - timedelta(days=self._label_shift)
        raise ValueError(f"{fire.isoformat()} is not a fire time of {self!r}")

    def window(self, label: date) -> tuple[datetime, datetime]:
        """[start, end) of report day ``label`` as UTC instants."""
        end_day = label + timedelta(days=self._label_shift)
        return self.fire_time(end_day - timedelta(days=1)), self.fire_time(end_day)

    def label_at(self, instant: datetime) -> date:
        """The report day that contains ``instant`` (the one still running at that moment)."""
        return self.label_of_fire(self.next_at_or_after(instant + _TINY))
