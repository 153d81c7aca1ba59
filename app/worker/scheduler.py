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
outright (the database) rolls back and changes nothing; the loop retries it with backoff.
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
from app.lib.backoff import retry_delay
from app.lib.schema import timestamp
from app.worker.loop import DueBatchLoop

__all__ = ["Scheduler"]

logger = structlog.get_logger("app.worker.scheduler")
_stdlib_logger = logging.getLogger("app.worker.scheduler")

# Due schedules round-robin across tenants, like commands (app.domain.commands.outbox): a due
# schedule's turn is its place among its tenant's due schedules (most overdue first), and a pass
# takes them by (turn, tenant in rotation order), the rotation starting after the tenant where this
# scheduler's previous pass stopped ($3; '' at first) and wrapping around. Every tenant with due
# schedules has its most overdue one started before any tenant has a second, so a tenant with
# thousands of due schedules delays another tenant's by at most one rotation (one pass while the
# tenants are fewer than the batch). Due schedules are few at any moment (each pass moves the ones
# it claims on to their next fire time), so ranking all of them is cheap; only the first
# 2 x batch of that order are joined and locked, in that order, SKIP LOCKED: a pass running at the
# same moment as another takes the next ones instead of none.
_CLAIM_DUE = """
SELECT sch.id, sch.tenant_id, sch.script_id, sch.cron, sch.timezone, sch.next_fire_at,
       sch.failed_attempts, s.active_version_id IS NOT NULL AS has_active_version,
       s.status = 'ARCHIVED' AS archived
FROM (
    SELECT id, tenant_id, tenant_id <= $3 AS wrapped,
           row_number() OVER (PARTITION BY tenant_id ORDER BY due_at, id) AS turn
    FROM schedules
    WHERE active AND due_at <= $1
    ORDER BY turn, wrapped, tenant_id
    LIMIT 2 * $2
) AS fair
JOIN schedules AS sch ON sch.id = fair.id
JOIN scripts AS s ON s.id = sch.script_id
WHERE sch.active AND sch.due_at <= $1
ORDER BY fair.turn, fair.wrapped, fair.tenant_id
LIMIT $2
FOR UPDATE OF sch SKIP LOCKED
"""

_ADVANCE = """
UPDATE schedules AS sch
SET next_fire_at = u.next_fire_at, due_at = u.due_at, failed_attempts = u.failed_attempts,
    last_error = u.last_error, last_fired_at = coalesce(u.last_fired_at, sch.last_fired_at)
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::integer[], $5::text[], $6::timestamptz[])
     AS u(id, next_fire_at, due_at, failed_attempts, last_error, last_fired_at)
WHERE sch.id = u.id
"""


@dataclass(slots=True)
class _Outcome:
    id: Any
    next_fire_at: datetime.datetime
    due_at: datetime.datetime
    failed_attempts: int
    last_error: str | None
    last_fired_at: datetime.datetime | None


class Scheduler(DueBatchLoop):
    name = "scheduler"
    claim_due = _CLAIM_DUE

    def __init__(self, settings: Settings, shared: SharedConnections) -> None:
        super().__init__(settings, shared)
        # Counters for tests and metrics.
        self.runs_started = 0
        self.failed_fires = 0
        self._started_in_pass = 0

    async def handle(
        self, connection: asyncpg.Connection, claimed: list[asyncpg.Record], now: datetime.datetime
    ) -> None:
        starts: list[TriggeredStart] = []
        outcomes: list[_Outcome] = []
        for row in claimed:
            outcome, fires = self._plan(row, now)
            outcomes.append(outcome)
            starts += fires
        started = await start_active_runs(connection, starts)
        await connection.execute(
            _ADVANCE,
            [o.id for o in outcomes],
            [o.next_fire_at for o in outcomes],
            [o.due_at for o in outcomes],
            [o.failed_attempts for o in outcomes],
            [o.last_error for o in outcomes],
            [o.last_fired_at for o in outcomes],
        )
        self._started_in_pass = len(started)

    def committed(self, claimed: list[asyncpg.Record]) -> None:
        self.runs_started += self._started_in_pass

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
            TriggeredStart(
                tenant_id=row["tenant_id"],
                script_id=row["script_id"],
                source=RunSource(
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
