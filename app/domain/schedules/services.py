"""The rules of schedules: a validated cron expression in an IANA time zone, per script.

The API keeps ``next_fire_at`` (the next planned fire time) and ``due_at`` (when the scheduler
should look at the schedule next) current: every change of cron, zone or ``active`` recomputes
them from now and clears any pending retry. The scheduler (``app.worker.scheduler``) does the
firing. Deleting is soft (``deleted_at``): runs keep pointing at their schedule.
"""

from __future__ import annotations

import datetime
import itertools
import uuid

from msgspec import UNSET
from uuid_utils.compat import uuid7

from app.db.triggers import Schedule
from app.domain.schedules.cron import CronError, CronSchedule, normalize_cron, validate_timezone
from app.domain.schedules.repositories import SCHEDULES_PER_SCRIPT, ScheduleRepository
from app.domain.schedules.schemas import ScheduleCreate, ScheduleUpdate
from app.domain.scripts.services import ensure_script
from app.lib.errors import NotFound, ValidationFailed
from app.lib.pagination import PageParams
from app.lib.principals import Principal
from app.lib.required import required
from app.lib.service import Service

__all__ = ["NEXT_FIRE_TIMES_SHOWN", "ScheduleService", "cron_schedule", "next_fire_times"]

NEXT_FIRE_TIMES_SHOWN = 5


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def cron_schedule(cron: str, timezone: str, min_interval_seconds: float = 0.0) -> CronSchedule:
    """The schedule's cron in its zone; a bad expression or zone, or a cron that fires more often
    than ``min_interval_seconds`` (SCHEDULE_MIN_INTERVAL_SECONDS), is 400 naming the field."""
    for field, check, value in (("cron", normalize_cron, cron), ("timezone", validate_timezone, timezone)):
        try:
            check(value)
        except CronError as error:
            raise ValidationFailed(
                f"Invalid {field}: {error}.",
                details=[{"field": field, "message": str(error), "source": "body"}],
            ) from None
    schedule = CronSchedule(cron, timezone)
    if min_interval_seconds > 0 and (gap := _shortest_gap(schedule)) < min_interval_seconds:
        message = f"fires every {gap:g} s at times; the minimum interval is {min_interval_seconds:g} s"
        raise ValidationFailed(
            f"Invalid cron: it {message}.", details=[{"field": "cron", "message": message, "source": "body"}]
        )
    return schedule


# Fire times looked at for the shortest gap: a pattern's densest stretch shows up within them
# (every minute of an hour, two minutes of a year, ...).
_GAP_SAMPLE = 120


def _shortest_gap(schedule: CronSchedule) -> float:
    times = schedule.next_fire_times(_now(), _GAP_SAMPLE)
    return min(((b - a).total_seconds() for a, b in itertools.pairwise(times)), default=float("inf"))


def next_fire_times(row: Schedule, now: datetime.datetime | None = None) -> list[datetime.datetime]:
    """The next fire times after now (none while inactive)."""
    if not row.active:
        return []
    return CronSchedule(row.cron, row.timezone).next_fire_times(now or _now(), NEXT_FIRE_TIMES_SHOWN)


class ScheduleService(Service[Schedule, ScheduleRepository]):
    repository_type = ScheduleRepository

    async def list_schedules(self, tenant_id: str, script_id: uuid.UUID, page: PageParams) -> list[Schedule]:
        await ensure_script(self.session, tenant_id, script_id)
        return await self.repository.page_of(tenant_id, script_id, page)

    async def get_schedule(self, tenant_id: str, schedule_id: uuid.UUID) -> Schedule:
        return required(await self.repository.get_live(schedule_id, tenant_id), _not_found)

    async def create_schedule(
        self,
        tenant_id: str,
        actor: Principal,
        script_id: uuid.UUID,
        data: ScheduleCreate,
    ) -> Schedule:
        cron = cron_schedule(data.cron, data.timezone, self.settings.schedule_min_interval_seconds)
        await ensure_script(self.session, tenant_id, script_id)
        await SCHEDULES_PER_SCRIPT.ensure_room(
            self.session, script_id, self.settings.max_schedules_per_script
        )
        now = _now()
        next_fire = cron.next_after(now) if data.active else None
        row = self.repository.stage(
            id=uuid7(),
            tenant_id=tenant_id,
            script_id=script_id,
            cron=cron.expression,
            timezone=data.timezone,
            active=data.active,
            next_fire_at=next_fire,
            due_at=next_fire,
            failed_attempts=0,
            created_by_id=actor.id,
            updated_by_id=actor.id,
            created_at=now,
            updated_at=now,
        )
        await self.uow.commit()
        return row

    async def update_schedule(
        self,
        tenant_id: str,
        actor: Principal,
        schedule_id: uuid.UUID,
        data: ScheduleUpdate,
    ) -> Schedule:
        # Locked: a scheduler pass holding this schedule finishes first (and one that comes
        # later skips it while we hold it), so the recomputed fire time is never overwritten.
        row = required(await self.repository.lock(schedule_id, tenant_id), _not_found)
        cron_text = row.cron if data.cron is UNSET else data.cron
        timezone = row.timezone if data.timezone is UNSET else data.timezone
        active = row.active if data.active is UNSET else data.active
        # Only a new cron is held to the minimum interval: one already stored stays valid.
        min_interval = self.settings.schedule_min_interval_seconds if data.cron is not UNSET else 0.0
        cron = cron_schedule(cron_text, timezone, min_interval)
        if (cron.expression, timezone, active) != (row.cron, row.timezone, row.active):
            now = _now()
            next_fire = cron.next_after(now) if active else None
            row.cron, row.timezone, row.active = cron.expression, timezone, active
            row.next_fire_at = row.due_at = next_fire
            row.failed_attempts = 0
            row.last_error = None
            row.updated_by_id = actor.id
            row.updated_at = now
        await self.uow.commit()
        return row

    async def delete_schedule(self, tenant_id: str, schedule_id: uuid.UUID) -> None:
        """Soft delete: the schedule stops and disappears; deleting it again changes nothing."""
        now = _now()
        deleted = await self.repository.soft_delete(schedule_id, tenant_id, now)
        if not deleted and not await self.repository.ever_existed(schedule_id, tenant_id):
            raise _not_found()
        await self.uow.commit()


def _not_found() -> NotFound:
    return NotFound("No schedule with this id.")
