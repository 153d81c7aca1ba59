"""Cron expressions in an IANA time zone: validation, fire times, and which fire times are due.

Fire times are computed with ``croniter`` in the schedule's own zone and handed out in UTC, so a
schedule at ``0 9 * * *`` in Europe/Berlin fires at 09:00 local time in winter and in summer.
Around DST changes the rules are those of classic cron:

- a wall time that does not exist (spring forward) fires at the first instant after the gap
  (``30 2 * * *`` fires at 03:00 on that day);
- a wall time that occurs twice (fall back) fires once, at its first occurrence, unless the
  hour field is ``*``: an hourly job runs in both of the repeated hours, since they are
  different hours.

Expressions have five fields (minute hour day-of-month month day-of-week), or six with a
trailing seconds field, or are one of the aliases ``@yearly @annually @monthly @weekly @daily
@midnight @hourly``.
"""

from __future__ import annotations

import datetime
import functools
import zoneinfo
from dataclasses import dataclass

from croniter import croniter

__all__ = [
    "CronError",
    "CronSchedule",
    "DueFires",
    "due_fire_times",
    "normalize_cron",
    "validate_timezone",
]

ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
# Bounds the work of one pass over one schedule, whatever the catch-up window.
MAX_FIRES_PER_PASS = 1000
_TINY = datetime.timedelta(microseconds=1)


class CronError(ValueError):
    """The expression or the time zone is not valid; the message says why."""


def normalize_cron(expression: str) -> str:
    """The expression with single spaces between its fields, if it is valid."""
    fields = expression.split()
    if len(fields) == 1 and fields[0].lower() in ALIASES:
        return fields[0].lower()
    if len(fields) not in (5, 6):
        raise CronError(
            "a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            "or 6 with a trailing seconds field"
        )
    normalized = " ".join(fields)
    if not croniter.is_valid(normalized):
        raise CronError(f"{normalized!r} is not a valid cron expression")
    return normalized


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(name: str) -> zoneinfo.ZoneInfo:
    """The zone of an IANA name (``Europe/Berlin``, ``UTC``); anything else is refused."""
    if name not in _zone_names():
        raise CronError(f"{name!r} is not an IANA time zone name (e.g. Europe/Berlin)")
    return zoneinfo.ZoneInfo(name)


class CronSchedule:
    """One cron expression in one zone; every time in and out is an aware datetime."""

    def __init__(self, expression: str, timezone: str) -> None:
        self.expression = normalize_cron(expression)
        self.zone = validate_timezone(timezone)
        self._every_hour = croniter(self.expression).expanded[1] == ["*"]

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first fire time strictly after ``moment``, in UTC."""
        cursor = croniter(self.expression, moment.astimezone(self.zone))
        while True:
            fire = cursor.get_next(datetime.datetime)
            if not self._is_repeat(fire):
                return fire.astimezone(datetime.UTC)

    def latest_at_or_before(self, moment: datetime.datetime) -> datetime.datetime:
        """The last fire time at or before ``moment``, in UTC."""
        cursor = croniter(self.expression, (moment + _TINY).astimezone(self.zone))
        while True:
            fire = cursor.get_prev(datetime.datetime)
            if not self._is_repeat(fire):
                return fire.astimezone(datetime.UTC)

    def next_fire_times(self, after: datetime.datetime, count: int) -> list[datetime.datetime]:
        times: list[datetime.datetime] = []
        moment = after
        for _ in range(count):
            moment = self.next_after(moment)
            times.append(moment)
        return times

    def _is_repeat(self, fire: datetime.datetime) -> bool:
        """The second occurrence of a wall time repeated by a DST change, for a non-hourly job."""
        if self._every_hour:
            return False
        local = fire.astimezone(self.zone)
        return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


@dataclass(frozen=True, slots=True)
class DueFires:
    """What one scheduler pass does for one schedule."""

    fire_times: list[datetime.datetime]  # runs to start, oldest first
    next_fire_at: datetime.datetime  # the first fire time after the pass
    caught_up: bool  # fire times older than the catch-up window were collapsed into one run


def due_fire_times(
    schedule: CronSchedule,
    pending: datetime.datetime,
    now: datetime.datetime,
    catch_up: datetime.timedelta,
) -> DueFires:
    """The fire times a pass at ``now`` starts, given the schedule's pending fire time.

    Every fire time late by at most ``catch_up`` is started (each once). Fire times missed by
    longer than that (the scheduler was down) are not replayed one by one: if no fire time falls
    inside the window, the latest missed one is started, once; otherwise the missed ones are
    dropped, since a newer run has just been started.
    """
    if pending > now:
        return DueFires([], pending, caught_up=False)
    window_start = now - catch_up
    fires: list[datetime.datetime] = []
    fire = pending if pending >= window_start else schedule.next_after(window_start - _TINY)
    while fire <= now and len(fires) < MAX_FIRES_PER_PASS:
        fires.append(fire)
        fire = schedule.next_after(fire)
    caught_up = False
    if not fires:
        # Everything due was missed by longer than the window: start the latest of it, once.
        fires = [schedule.latest_at_or_before(now)]
        caught_up = True
    return DueFires(fires, schedule.next_after(now), caught_up=caught_up)
