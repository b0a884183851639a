"""DailyAt: the daily summary trigger at a local time, exact across DST changes (injected ``now``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.ops.triggers import DailyAt

BERLIN = ZoneInfo("Europe/Berlin")  # 2026: CET->CEST on 29 Mar (02:00->03:00), CEST->CET on 25 Oct (03:00->02:00)
NEW_YORK = ZoneInfo("America/New_York")


def fires(trigger: DailyAt, start: datetime, end: datetime) -> list[datetime]:
    """Fire times as APScheduler enumerates them: first from ``now``, then each from the previous one."""
    out: list[datetime] = []
    nxt = trigger.get_next_fire_time(None, start)
    while nxt is not None and nxt < end:
        out.append(nxt)
        nxt = trigger.get_next_fire_time(nxt, nxt)
    return out


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK])
@pytest.mark.parametrize("at", [time(21, 0), time(2, 30), time(0, 0), time(1, 30)])
def test_exactly_one_fire_per_local_date_across_both_dst_changes(tz: ZoneInfo, at: time) -> None:
    trigger = DailyAt(at, tz)
    got = fires(trigger, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    local_dates = [f.astimezone(tz).date() for f in got]
    assert len(local_dates) == len(set(local_dates)), "a local date fired twice"
    assert all(b - a > timedelta(hours=22) for a, b in zip(got, got[1:], strict=False))
    # every label appears once, and report days tile the year without gaps or overlaps
    labels = [trigger.label_of_fire(f) for f in got]
    assert len(labels) == len(set(labels))
    for lab in labels[1:]:
        start, end = trigger.window(lab)
        assert trigger.window(lab - timedelta(days=1))[1] == start
        assert end in got


def test_summary_time_fires_at_local_time_on_dst_days() -> None:
    trigger = DailyAt(time(21, 0), BERLIN)
    got = fires(trigger, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
    assert got == [
        datetime(2026, 3, 28, 20, 0, tzinfo=UTC),  # 21:00 CET
        datetime(2026, 3, 29, 19, 0, tzinfo=UTC),  # 21:00 CEST: the day was 23 h long
        datetime(2026, 3, 30, 19, 0, tzinfo=UTC),
    ]
    assert [f.astimezone(BERLIN).time() for f in got] == [time(21, 0)] * 3
    start, end = trigger.window(date(2026, 3, 29))
    assert end - start == timedelta(hours=23)
    start, end = trigger.window(date(2026, 10, 25))
    assert end - start == timedelta(hours=25)


def test_time_inside_the_spring_gap_fires_once_shifted_by_the_gap() -> None:
    trigger = DailyAt(time(2, 30), BERLIN)
    [fire] = fires(trigger, datetime(2026, 3, 29, tzinfo=UTC), datetime(2026, 3, 29, 23, tzinfo=UTC))
    assert fire == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert fire.astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"


def test_ambiguous_autumn_time_fires_at_its_first_occurrence_only() -> None:
    trigger = DailyAt(time(2, 30), BERLIN)
    got = fires(trigger, datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC))
    assert got == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]  # 02:30 CEST; the second 02:30 (CET) does not fire


def test_midnight_summary_reports_the_day_that_just_ended() -> None:
    trigger = DailyAt(time(0, 0), BERLIN)
    fire = trigger.get_next_fire_time(None, datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert fire == datetime(2026, 6, 1, 22, 0, tzinfo=UTC)  # 2 June 00:00 CEST
    assert trigger.label_of_fire(fire) == date(2026, 6, 1)
    assert trigger.window(date(2026, 6, 1)) == (datetime(2026, 5, 31, 22, tzinfo=UTC), fire)


def test_label_at_is_the_day_still_running() -> None:
    trigger = DailyAt(time(21, 0), BERLIN)
    assert trigger.label_at(datetime(2026, 6, 1, 18, 59, 59, tzinfo=UTC)) == date(2026, 6, 1)
    assert trigger.label_at(datetime(2026, 6, 1, 19, 0, 0, tzinfo=UTC)) == date(2026, 6, 2)  # 21:00 CEST begins the next day


def test_previous_fire_time_is_not_repeated_when_now_lags() -> None:
    trigger = DailyAt(time(21, 0), BERLIN)
    first = trigger.get_next_fire_time(None, datetime(2026, 6, 1, 12, tzinfo=UTC))
    assert first is not None
    # APScheduler enumerates misfired runs with now far ahead: each call moves one day forward
    assert trigger.get_next_fire_time(first, datetime(2026, 6, 5, tzinfo=UTC)) == first + timedelta(days=1)


def test_refuses_an_aware_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        DailyAt(time(21, 0, tzinfo=UTC), BERLIN)
