"""HTTP surface of schedules (``/scripts/{id}/schedules``, ``/schedules``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from app.db.triggers import Schedule
from app.domain.schedules.schemas import ScheduleCreate, ScheduleOut, ScheduleUpdate
from app.domain.schedules.services import ScheduleService, next_fire_times
from app.lib.dependencies import CurrentActor, Paging, Tenant
from app.lib.openapi import json_body
from app.lib.pagination import Page, build_page
from app.lib.routes import create_route, delete_route, list_route, read_route, update_route
from app.lib.schema import timestamp
from app.lib.service import provide_service
from app.lib.tenancy import ensure_same_tenant

ScheduleCreateBody = Annotated[
    ScheduleCreate,
    json_body(
        {"cron": "0 9 * * mon-fri", "timezone": "Europe/Berlin", "active": True},
        "cron: 5 fields, or 6 with trailing seconds, or an alias like @daily; timezone: an IANA name "
        "(default UTC); active: default true.",
    ),
]
ScheduleUpdateBody = Annotated[
    ScheduleUpdate,
    json_body({"cron": "30 8 * * mon-fri", "active": False}, "Only the fields to change."),
]
Schedules = NamedDependency[ScheduleService]


def _schedule_out(row: Schedule) -> ScheduleOut:
    return ScheduleOut.of(row, next_fire_times=[timestamp(t) for t in next_fire_times(row)])


class SchedulesController(Controller):
    """What both schedule controllers share: their API section and their service."""

    tags = ["Triggers"]
    dependencies = {"schedules": Provide(provide_service(ScheduleService))}


class ScriptScheduleController(SchedulesController):
    path = "/scripts/{script_id:uuid}/schedules"

    @create_route(
        "Schedule a script",
        "The worker starts a SCHEDULED_TASK run of the script's active version at each fire "
        "time, computed in `timezone` (DST included), once per fire time even with several workers. "
        "`nextFireTimes` shows the next 5 (empty while inactive). A bad cron or time zone, or a cron "
        "that fires more often than SCHEDULE_MIN_INTERVAL_SECONDS (60), is 400 naming the field; a script "
        "with MAX_SCHEDULES_PER_SCRIPT (20) schedules already is 409 QUOTA_EXCEEDED.",
        also=(404,),
    )
    async def create_schedule(
        self,
        schedules: Schedules,
        tenant_id: Tenant,
        actor: CurrentActor,
        script_id: FromPath[UUID],
        data: ScheduleCreateBody,
    ) -> ScheduleOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return _schedule_out(await schedules.create_schedule(tenant_id, actor, script_id, data))

    @list_route("List a script's schedules", "Newest first.", also=(404,))
    async def list_schedules(
        self, schedules: Schedules, tenant_id: Tenant, page: Paging, script_id: FromPath[UUID]
    ) -> Page[ScheduleOut]:
        rows = await schedules.list_schedules(tenant_id, script_id, page)
        return build_page(rows, page, lambda s: (s.created_at, s.id), _schedule_out)


class ScheduleController(SchedulesController):
    path = "/schedules"

    @read_route("/{schedule_id:uuid}", "Get a schedule")
    async def get_schedule(
        self, schedules: Schedules, tenant_id: Tenant, schedule_id: FromPath[UUID]
    ) -> ScheduleOut:
        return _schedule_out(await schedules.get_schedule(tenant_id, schedule_id))

    @update_route(
        "/{schedule_id:uuid}",
        "Change a schedule",
        "Absent fields stay as they are. A change of cron, time zone or `active` plans the next "
        "fire time afresh from now and clears a pending retry.",
    )
    async def update_schedule(
        self,
        schedules: Schedules,
        tenant_id: Tenant,
        actor: CurrentActor,
        schedule_id: FromPath[UUID],
        data: ScheduleUpdateBody,
    ) -> ScheduleOut:
        ensure_same_tenant(tenant_id, data.tenant_id or None)
        return _schedule_out(await schedules.update_schedule(tenant_id, actor, schedule_id, data))

    @delete_route(
        "/{schedule_id:uuid}",
        "Delete a schedule",
        "Stops it; its runs keep pointing at it. Idempotent; afterwards GET is 404.",
    )
    async def delete_schedule(
        self, schedules: Schedules, tenant_id: Tenant, schedule_id: FromPath[UUID]
    ) -> None:
        await schedules.delete_schedule(tenant_id, schedule_id)
