"""All SQL of schedules: the API's reads and writes of the tenant's schedules (a deleted schedule
keeps its row, ``deleted_at`` set, and is left out of every read but the one telling a repeated
delete from an unknown id), and the scheduler's statements: claiming due schedules fairly across
tenants and moving them on to their next fire time. The scheduler's loop, which decides what is
due, is ``app.worker.scheduler``."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import exists, select, update

from app.db.triggers import Schedule
from app.lib.pagination import PageParams
from app.lib.repository import Quota, Repository

__all__ = ["ADVANCE", "CLAIM_DUE", "SCHEDULES_PER_SCRIPT", "ScheduleRepository"]

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
CLAIM_DUE = """
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

# Each claimed schedule's next fire time, when to look at it again and its retry state.
ADVANCE = """
UPDATE schedules AS sch
SET next_fire_at = u.next_fire_at, due_at = u.due_at, failed_attempts = u.failed_attempts,
    last_error = u.last_error, last_fired_at = coalesce(u.last_fired_at, sch.last_fired_at)
FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::integer[], $5::text[], $6::timestamptz[])
     AS u(id, next_fire_at, due_at, failed_attempts, last_error, last_fired_at)
WHERE sch.id = u.id
"""


# Deleted schedules do not count.
SCHEDULES_PER_SCRIPT = Quota(
    "schedules",
    "schedules per script",
    Schedule,
    lambda script_id: (Schedule.script_id == script_id, Schedule.deleted_at.is_(None)),
)


class ScheduleRepository(Repository[Schedule]):
    model_type = Schedule

    async def page_of(self, tenant_id: str, script_id: uuid.UUID, page: PageParams) -> list[Schedule]:
        """A page of the script's schedules that are not deleted, newest first."""
        return await self.newest_first(tenant_id, page, Schedule.deleted_at.is_(None), script_id=script_id)

    async def get_live(self, schedule_id: uuid.UUID, tenant_id: str) -> Schedule | None:
        """The schedule unless it does not exist or is deleted."""
        return await self.get_one_or_none(
            Schedule.id == schedule_id, Schedule.tenant_id == tenant_id, Schedule.deleted_at.is_(None)
        )

    def stage(self, **values: Any) -> Schedule:
        """A new schedule, inserted when the unit of work commits."""
        row = Schedule(**values)
        self.session.add(row)
        return row

    async def lock(self, schedule_id: uuid.UUID, tenant_id: str) -> Schedule | None:
        """The schedule, locked for the rest of the transaction; None when it does not exist or
        is deleted."""
        return await self.session.scalar(
            select(Schedule)
            .where(Schedule.id == schedule_id, Schedule.tenant_id == tenant_id, Schedule.deleted_at.is_(None))
            .with_for_update()
        )

    async def soft_delete(self, schedule_id: uuid.UUID, tenant_id: str, now: datetime.datetime) -> bool:
        """Stop and hide the schedule; False when there is no such schedule not yet deleted."""
        deleted = await self.session.scalar(
            update(Schedule)
            .where(*_mine(schedule_id, tenant_id), Schedule.deleted_at.is_(None))
            .values(deleted_at=now, active=False, next_fire_at=None, due_at=None, updated_at=now)
            .returning(Schedule.id)
        )
        return deleted is not None

    async def ever_existed(self, schedule_id: uuid.UUID, tenant_id: str) -> bool:
        """Whether the tenant has or had (deleted) this schedule."""
        return bool(await self.session.scalar(select(exists().where(*_mine(schedule_id, tenant_id)))))


def _mine(schedule_id: uuid.UUID, tenant_id: str) -> tuple[Any, ...]:
    return (Schedule.id == schedule_id, Schedule.tenant_id == tenant_id)
