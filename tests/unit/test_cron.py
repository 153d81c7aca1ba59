"""Cron fire times in a zone (DST included) and the catch-up policy of the scheduler."""

from __future__ import annotations

import datetime

import pytest

from app.domain.schedules.cron import (
    CronError,
    CronSchedule,
    due_fire_times,
    normalize_cron,
    validate_timezone,
)

UTC = datetime.UTC
WINDOW = datetime.timedelta(seconds=60)


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).astimezone(UTC)


def utc(times: list[datetime.datetime]) -> list[str]:
    return [t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") for t in times]


def test_a_daily_time_that_does_not_exist_fires_right_after_the_gap() -> None:
    berlin = CronSchedule("30 2 * * *", "Europe/Berlin")

    fires = berlin.next_fire_times(at("2026-03-27T12:00:00+01:00"), 3)

    # 02:30 CET, then 03:00 CEST (02:30 does not exist on 29 March), then 02:30 CEST.
    assert utc(fires) == ["2026-03-28 01:30:00", "2026-03-29 01:00:00", "2026-03-30 00:30:00"]


def test_a_daily_time_that_occurs_twice_fires_once() -> None:
    berlin = CronSchedule("30 2 * * *", "Europe/Berlin")

    fires = berlin.next_fire_times(at("2026-10-24T12:00:00+02:00"), 3)

    assert utc(fires) == ["2026-10-25 00:30:00", "2026-10-26 01:30:00", "2026-10-27 01:30:00"]


def test_an_hourly_job_runs_in_both_repeated_hours() -> None:
    berlin = CronSchedule("30 * * * *", "Europe/Berlin")

    fires = berlin.next_fire_times(at("2026-10-25T01:00:00+02:00"), 4)

    assert utc(fires) == [
        "2026-10-24 23:30:00",
        "2026-10-25 00:30:00",
        "2026-10-25 01:30:00",
        "2026-10-25 02:30:00",
    ]


def test_the_latest_fire_time_skips_the_repeat_too() -> None:
    berlin = CronSchedule("30 2 * * *", "Europe/Berlin")

    assert utc([berlin.latest_at_or_before(at("2026-10-25T12:00:00+01:00"))]) == ["2026-10-25 00:30:00"]


def test_a_fire_time_is_its_own_latest() -> None:
    minutely = CronSchedule("* * * * *", "UTC")

    assert minutely.latest_at_or_before(at("2026-01-01T10:00:00+00:00")) == at("2026-01-01T10:00:00+00:00")


def test_fire_times_late_within_the_window_all_start() -> None:
    seconds = CronSchedule("* * * * * *", "UTC")
    pending = at("2026-01-01T10:00:00+00:00")

    due = due_fire_times(seconds, pending, pending + datetime.timedelta(seconds=3), WINDOW)

    assert utc(due.fire_times) == [
        "2026-01-01 10:00:00",
        "2026-01-01 10:00:01",
        "2026-01-01 10:00:02",
        "2026-01-01 10:00:03",
    ]
    assert due.next_fire_at == at("2026-01-01T10:00:04+00:00")
    assert not due.caught_up


def test_after_a_long_outage_fire_times_inside_the_window_start_and_older_ones_are_dropped() -> None:
    minutely = CronSchedule("* * * * *", "UTC")
    pending = at("2026-01-01T10:00:00+00:00")

    due = due_fire_times(minutely, pending, at("2026-01-01T15:00:30+00:00"), WINDOW)

    assert utc(due.fire_times) == ["2026-01-01 15:00:00"]
    assert not due.caught_up


def test_after_a_long_outage_without_a_fire_in_the_window_the_latest_missed_one_starts() -> None:
    hourly = CronSchedule("0 * * * *", "UTC")
    pending = at("2026-01-01T10:00:00+00:00")

    due = due_fire_times(hourly, pending, at("2026-01-01T15:30:00+00:00"), WINDOW)

    assert utc(due.fire_times) == ["2026-01-01 15:00:00"]
    assert due.caught_up
    assert due.next_fire_at == at("2026-01-01T16:00:00+00:00")


def test_nothing_is_due_before_the_pending_fire_time() -> None:
    hourly = CronSchedule("0 * * * *", "UTC")
    pending = at("2026-01-01T10:00:00+00:00")

    due = due_fire_times(hourly, pending, pending - datetime.timedelta(seconds=1), WINDOW)

    assert (due.fire_times, due.next_fire_at) == ([], pending)


@pytest.mark.parametrize("expression", ["* * * *", "* * * * * * *", "99 * * * *", "H * * * *", "@sometimes"])
def test_invalid_expressions_are_refused(expression: str) -> None:
    with pytest.raises(CronError):
        normalize_cron(expression)


@pytest.mark.parametrize("name", ["Mars/Base", "", "../../etc/passwd", "utc"])
def test_unknown_zones_are_refused(name: str) -> None:
    with pytest.raises(CronError):
        validate_timezone(name)
