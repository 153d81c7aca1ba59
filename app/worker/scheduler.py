"""The scheduler: start a SCHEDULED_TASK run at each fire time of each active schedule, once.

Every ``SCHEDULER_POLL_SECONDS`` a pass claims due schedules (``due_at <= now``) with
``FOR UPDATE SKIP LOCKED``, so several workers share them without waiting on each other, and
in ONE transaction per batch:

1. works out which fire times are due (``app.domain.schedules.cron.due_fire_times``: every fire
   time late by at most ``SCHEDULER_CATCH_UP_SECONDS``; after a longer outage only the latest
   missed one);
2. starts their runs on the scripts' active versions with one multi-row insert, ``ON CONFLICT DO
   NOTHING`` on the unique (schedule_id, planned_at) of scheduled runs;
3. moves each schedule on to its next fire time.

Exactly once per (schedule, plannedAt): the row lock keeps two passes off one schedule at a time,
and should anything else insert the same fire time (a runner's execution report, a pass that
lost its lock with its connection), the unique index keeps it at one run. "Now" is the
database's clock, so workers with skewed clocks agree.

A fire that cannot start (the script has no active version) is retried with exponential
backoff: ``failed_attempts`` and ``last_error`` are recorded on the schedule and ``due_at`` moves
to the retry time while ``next_fire_at`` keeps the planned time; after ``SCHEDULER_MAX_ATTEMPTS``
the fire is given up (the error stays visible) and the schedule moves on. A pass that fails
outright (the database) rolls back and changes nothing; the loop retries it with backoff. Its
statements (``CLAIM_DUE``, ``ADVANCE``) are the schedules' SQL, in
``app.domain.schedules.repositories``.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog

from app.config import Settings
from app.db.runtime import SharedConnections
from app.domain.runs.services import RunSource, TriggeredStart, start_active_runs
from app.domain.schedules.cron import CronError, CronSchedule, due_fire_times
from app.domain.schedules.repositories import ADVANCE, CLAIM_DUE
from app.lib.backoff import retry_delay
from app.lib.db import columns
from app.lib.schema import timestamp
from app.worker.loop import DueBatchLoop, start_of

__all__ = ["Scheduler"]

logger = structlog.get_logger("app.worker.scheduler")
_stdlib_logger = logging.getLogger("app.worker.scheduler")


@dataclass(slots=True)
class _Outcome:
    id: Any
    next_fire_at: datetime.datetime
    due_at: datetime.datetime
    failed_attempts: int
    last_error: str | None
    last_fired_at: datetime.datetime | None


class Scheduler(DueBatchLoop[int]):
    name = "scheduler"
    claim_due = CLAIM_DUE

    def __init__(self, settings: Settings, shared: SharedConnections) -> None:
        super().__init__(settings, shared)
        # For tests and metrics: fires that could not start, counted as planned.
        self.failed_fires = 0

    async def handle(
        self, connection: asyncpg.Connection, claimed: list[asyncpg.Record], now: datetime.datetime
    ) -> int:
        starts: list[TriggeredStart] = []
        outcomes: list[_Outcome] = []
        for row in claimed:
            outcome, fires = self._plan(row, now)
            outcomes.append(outcome)
            starts += fires
        started = await start_active_runs(connection, starts)
        await connection.execute(
            ADVANCE,
            *columns(
                outcomes, "id", "next_fire_at", "due_at", "failed_attempts", "last_error", "last_fired_at"
            ),
        )
        return len(started)

    def committed(self, claimed: list[asyncpg.Record], handled: int) -> None:
        self.runs_started += handled

    def _plan(self, row: asyncpg.Record, now: datetime.datetime) -> tuple[_Outcome, list[TriggeredStart]]:
        """What to start for one claimed schedule and where it goes next."""
        try:
            cron = CronSchedule(row["cron"], row["timezone"])
        except CronError as error:  # stored values were valid; a zone may vanish from tzdata
            later = now + datetime.timedelta(seconds=self.settings.scheduler_retry_max_seconds)
            return self._failed(row, now, later, str(error)), []
        due = due_fire_times(
            cron,
            row["next_fire_at"],
            now,
            datetime.timedelta(seconds=self.settings.scheduler_catch_up_seconds),
        )
        if not due.fire_times:
            # Nothing is due after all (the pending fire time is ahead): just keep the plan.
            return _Outcome(
                row["id"], due.next_fire_at, due.next_fire_at, row["failed_attempts"], None, None
            ), []
        if row["archived"]:
            # Archived scripts start nothing: the fire passes, unstarted, and the schedule waits
            # for its next time (a script set back to DRAFT or PUBLISHED runs again from there).
            return _Outcome(
                row["id"], due.next_fire_at, due.next_fire_at, 0, "the script is archived", None
            ), []
        if not row["has_active_version"]:
            return self._failed(
                row, now, due.next_fire_at, "the script has no active (published) version"
            ), []
        event_data = {"cron": row["cron"], "timezone": row["timezone"]}
        fires = [
            start_of(
                row,
                RunSource(
                    trigger_type="SCHEDULED_TASK",
                    schedule_id=row["id"],
                    planned_at=fire,
                    event_data={**event_data, "catchUp": due.caught_up},
                ),
            )
            for fire in due.fire_times
        ]
        outcome = _Outcome(
            id=row["id"],
            next_fire_at=due.next_fire_at,
            due_at=due.next_fire_at,
            failed_attempts=0,
            last_error=None,
            last_fired_at=due.fire_times[-1],
        )
        return outcome, fires

    def _failed(
        self, row: asyncpg.Record, now: datetime.datetime, next_fire_at: datetime.datetime, reason: str
    ) -> _Outcome:
        """Retry the pending fire later, or give it up after the last attempt."""
        self.failed_fires += 1
        attempts = row["failed_attempts"] + 1
        pending = row["next_fire_at"]
        if attempts >= self.settings.scheduler_max_attempts:
            logger.warning(
                "scheduled fire given up", schedule_id=str(row["id"]), attempts=attempts, error=reason
            )
            return _Outcome(
                id=row["id"],
                next_fire_at=next_fire_at,
                due_at=next_fire_at,
                failed_attempts=0,
                last_error=f"gave up the fire at {timestamp(pending)} after {attempts} attempts: {reason}",
                last_fired_at=None,
            )
        delay = retry_delay(
            attempts, self.settings.scheduler_retry_base_seconds, self.settings.scheduler_retry_max_seconds
        )
        return _Outcome(
            id=row["id"],
            next_fire_at=pending,
            due_at=now + datetime.timedelta(seconds=delay),
            failed_attempts=attempts,
            last_error=f"attempt {attempts} at the fire at {timestamp(pending)} failed: {reason}",
            last_fired_at=None,
        )
