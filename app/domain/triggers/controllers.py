"""HTTP surface of event types (``/event-types``), trigger subscriptions
(``/subjects/{subject}/subscriptions/triggers`` and ``/internal/…``), incoming events
(``POST /events``) and schedules (``/scripts/{id}/schedules``, ``/schedules``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from advanced_alchemy.extensions.litestar.providers import create_service_provider
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from app.config import Settings
from app.db.triggers import Schedule
from app.domain.triggers.schedules import ScheduleService, next_fire_times
from app.domain.triggers.schemas import (
    EventAccepted,
    EventIn,
    EventTypeCreate,
    EventTypeOut,
    IncomingEventOut,
    ScheduleCreate,
    ScheduleOut,
    ScheduleUpdate,
    SubscriptionCreate,
    SubscriptionOut,
)
from app.domain.triggers.services import EventTypeService, IncomingEventService, SubscriptionService
from app.lib.openapi import errors, json_body
from app.lib.pagination import Page, PageParams, build_page
from app.lib.principals import Principal
from app.lib.rate_limit import RATE_LIMIT_OPT
from app.lib.schema import timestamp
from app.lib.tenancy import ensure_same_tenant
from app.lib.timerange import TimeWindow, provide_time_window

__all__ = [
    "EventTypeController",
    "IncomingEventController",
    "InternalSubscriptionController",
    "ScheduleController",
    "ScriptScheduleController",
    "SubscriptionController",
]

Tenant = NamedDependency[str]
CurrentActor = NamedDependency[Principal]
Paging = NamedDependency[PageParams]

EventTypeBody = Annotated[
    EventTypeCreate,
    json_body({"name": "LOCATION_LIVING_ROOM", "description": "Someone entered the living room"}),
]
SubscriptionBody = Annotated[
    SubscriptionCreate,
    json_body(
        {
            "eventName": "LOCATION_LIVING_ROOM",
            "scriptId": "0190b5a0-7c1e-7b3c-9d4e-2f6a8b1c3d5e",
            "flowControl": {
                "debounceSeconds": 30,
                "maxDelaySeconds": 120,
                "throttle": {"runs": 1, "perSeconds": 600},
            },
        },
        "One event name (a string; an array is 400), the script to start and, optionally, flowControl.",
    ),
]
EventBody = Annotated[
    EventIn,
    json_body(
        {
            "eventName": "LOCATION_LIVING_ROOM",
            "subject": "sensor-42",
            "payload": {"temperature": 21.5},
            "sourceEventId": "sensor-42:2026-03-01T10:00:00Z",
        },
        "sourceEventId is the sender's own id of the event: sending it again starts nothing and "
        "answers the first answer.",
    ),
]


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


class EventTypeController(Controller):
    path = "/event-types"
    tags = ["Triggers"]
    dependencies = {"event_types": Provide(create_service_provider(EventTypeService))}

    @get(
        "/",
        summary="List event types",
        description="The tenant's registered event types, newest first, followed by the built-in "
        "lifecycle names (`builtIn: true`, no id).",
        responses=errors(400, 401, 403),
    )
    async def list_event_types(
        self, event_types: NamedDependency[EventTypeService], tenant_id: Tenant, page: Paging
    ) -> Page[EventTypeOut]:
        items = await event_types.list_event_types(tenant_id, page)
        return build_page(items, page, lambda item: item[0], lambda item: item[1])

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Register an event type",
        description="Admin only (403 FORBIDDEN). Names match `^[A-Za-z][A-Za-z0-9_.]{0,99}$`; a name "
        "the tenant has, or a built-in lifecycle name, is 409 EVENT_TYPE_EXISTS.",
        responses=errors(400, 401, 403, 409, 413),
    )
    async def create_event_type(
        self,
        event_types: NamedDependency[EventTypeService],
        tenant_id: Tenant,
        actor: CurrentActor,
        data: EventTypeBody,
    ) -> EventTypeOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return EventTypeOut.of(await event_types.create_event_type(tenant_id, actor, data), built_in=False)


class SubscriptionController(Controller):
    """Trigger subscriptions for administrators. ``InternalSubscriptionController`` mounts the same
    handlers under ``/internal`` for service callers (roles: app.lib.access)."""

    path = "/subjects/{subject:str}/subscriptions/triggers"
    tags = ["Trigger subscriptions"]
    dependencies = {"subscriptions": Provide(create_service_provider(SubscriptionService))}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Subscribe a script to an event on a subject",
        description="The subject is `[A-Za-z0-9_.:-]{1,128}` or `*` (every subject). `eventName` is one "
        "string (an array or an empty string is 400); an unknown event name or script is 404; an active "
        "subscription for the same subject and event, whatever its script, is 409 SUBSCRIPTION_EXISTS "
        "(inactive ones do not count). Optional `flowControl`: `debounceSeconds` (1-3600) with "
        "`maxDelaySeconds` (debounceSeconds-86400), and/or `throttle` `{runs (1-1000), perSeconds "
        "(1-86400)}`, per subject of the incoming events (400 VALIDATION_ERROR naming the field; not on "
        "lifecycle event names). Under `/subjects/…` the caller needs the admin role, under "
        "`/internal/subjects/…` the service or admin role (403 FORBIDDEN otherwise).",
        responses=errors(400, 401, 403, 404, 409, 413),
    )
    async def subscribe(
        self,
        subscriptions: NamedDependency[SubscriptionService],
        tenant_id: Tenant,
        actor: CurrentActor,
        settings: NamedDependency[Settings],
        subject: FromPath[str],
        data: SubscriptionBody,
    ) -> SubscriptionOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        subscription = await subscriptions.subscribe(
            tenant_id, actor, subject, data, max_per_tenant=settings.max_subscriptions_per_tenant
        )
        return SubscriptionOut.of(subscription)

    @get(
        "/",
        summary="List a subject's subscriptions",
        description="Newest first, active and inactive (filter with `active`).",
        responses=errors(400, 401, 403),
    )
    async def list_subscriptions(
        self,
        subscriptions: NamedDependency[SubscriptionService],
        tenant_id: Tenant,
        page: Paging,
        subject: FromPath[str],
        active: Annotated[
            bool | None, QueryParameter(description="Only active (true) or inactive (false) ones.")
        ] = None,
    ) -> Page[SubscriptionOut]:
        rows = await subscriptions.list_subscriptions(tenant_id, subject, page, active=active)
        return build_page(rows, page, lambda s: (s.created_at, s.id), SubscriptionOut.of)

    @delete(
        "/{subscription_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Deactivate a subscription",
        description="Soft: the subscription stays listed as inactive and stops matching events. "
        "Idempotent; an id of another subject (or tenant) is 404.",
        responses=errors(400, 401, 403, 404),
    )
    async def unsubscribe(
        self,
        subscriptions: NamedDependency[SubscriptionService],
        tenant_id: Tenant,
        subject: FromPath[str],
        subscription_id: FromPath[UUID],
    ) -> None:
        await subscriptions.unsubscribe(tenant_id, subject, subscription_id)


class InternalSubscriptionController(SubscriptionController):
    """The same routes for internal services: the service (or admin) role, see app.lib.access."""

    path = "/internal/subjects/{subject:str}/subscriptions/triggers"
    tags = ["Trigger subscriptions (internal)"]


class IncomingEventController(Controller):
    path = "/events"
    tags = ["Triggers"]
    dependencies = {"incoming": Provide(create_service_provider(IncomingEventService))}

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Receive an event",
        description="Stores the event and starts one EVENT_TRIGGER run (of the active version) per "
        "script with an active subscription to `eventName` on `subject` or on `*`, all in one "
        "transaction. Archived scripts and scripts without an active version are not started and "
        "are listed in `skipped` with the reason (SCRIPT_ARCHIVED, NO_ACTIVE_VERSION). "
        "A subscription with `flowControl` decides per subject: a debounced one lists the event in "
        "`deferred` with the `dueAt` of the window it joined (the worker starts the window's run), a "
        "throttled one over its limit lists it in `suppressed` (reason THROTTLED). "
        "Unknown event name → 404. The same `sourceEventId` again (even concurrently) starts nothing "
        "and answers the first answer. Rate-limited per tenant (429 RATE_LIMIT_EXCEEDED). What became "
        "of the event later: `GET /events/incoming/{eventId}`.",
        responses=errors(400, 401, 403, 404, 413, 429),
        opt={RATE_LIMIT_OPT: "events"},
    )
    async def receive_event(
        self,
        incoming: NamedDependency[IncomingEventService],
        tenant_id: Tenant,
        actor: CurrentActor,
        data: EventBody,
    ) -> EventAccepted:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return await incoming.receive(tenant_id, actor, data)

    @get(
        "/{event_id:uuid}",
        summary="Get an incoming event",
        description="The same as `GET /events/incoming/{eventId}`.",
        responses=errors(400, 401, 403, 404),
    )
    async def get_event(
        self, incoming: NamedDependency[IncomingEventService], tenant_id: Tenant, event_id: FromPath[UUID]
    ) -> IncomingEventOut:
        return IncomingEventOut.of(*await incoming.get_event(tenant_id, event_id))

    @get(
        "/incoming/{event_id:uuid}",
        summary="Get an incoming event and what became of it",
        description="The event as received, what `POST /events` answered (`runs`, `deferred`, `suppressed`, "
        "`skipped`), and `outcomes`: per matching subscription, what became of the event as of now — "
        "STARTED (`runId`), DEFERRED (in a debounce window due at `dueAt`), FOLDED (its window's run "
        "started: `foldedInto`), SUPPRESSED (`reason` THROTTLED), SKIPPED (`reason` SCRIPT_ARCHIVED or "
        "NO_ACTIVE_VERSION) or CANCELLED (`reason` SCRIPT_ARCHIVED or SUBSCRIPTION_DEACTIVATED). Its runs, "
        "and their steps: `GET /runs?triggeringEventId=`.",
        responses=errors(400, 401, 403, 404),
    )
    async def get_incoming_event(
        self, incoming: NamedDependency[IncomingEventService], tenant_id: Tenant, event_id: FromPath[UUID]
    ) -> IncomingEventOut:
        return IncomingEventOut.of(*await incoming.get_event(tenant_id, event_id))

    @get(
        "/incoming",
        summary="List incoming events",
        description="The tenant's incoming events, newest first, each with its `outcomes` (see "
        "`GET /events/incoming/{eventId}`); filter by `subject`, `eventName` and received time "
        "(`from` inclusive, `to` exclusive).",
        responses=errors(400, 401, 403),
        dependencies={"window": Provide(provide_time_window)},
    )
    async def list_incoming_events(
        self,
        incoming: NamedDependency[IncomingEventService],
        tenant_id: Tenant,
        page: Paging,
        window: NamedDependency[TimeWindow],
        subject: Annotated[
            str | None, QueryParameter(description="Only events on this subject.", max_length=128)
        ] = None,
        event_name: Annotated[
            str | None,
            QueryParameter(name="eventName", description="Only events of this name.", max_length=100),
        ] = None,
    ) -> Page[IncomingEventOut]:
        rows = await incoming.list_events(
            tenant_id, page, subject=subject, event_name=event_name, window=window
        )
        return build_page(
            rows, page, lambda item: (item[0].created_at, item[0].id), lambda item: IncomingEventOut.of(*item)
        )


class ScriptScheduleController(Controller):
    path = "/scripts/{script_id:uuid}/schedules"
    tags = ["Triggers"]
    dependencies = {"schedules": Provide(create_service_provider(ScheduleService))}

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        summary="Schedule a script",
        description="The worker starts a SCHEDULED_TASK run of the script's active version at each fire "
        "time, computed in `timezone` (DST included), once per fire time even with several workers. "
        "`nextFireTimes` shows the next 5 (empty while inactive). A bad cron or time zone, or a cron "
        "that fires more often than SCHEDULE_MIN_INTERVAL_SECONDS (60), is 400 naming the field; a script "
        "with MAX_SCHEDULES_PER_SCRIPT (20) schedules already is 409 QUOTA_EXCEEDED.",
        responses=errors(400, 401, 403, 404, 409, 413),
    )
    async def create_schedule(
        self,
        schedules: Schedules,
        tenant_id: Tenant,
        actor: CurrentActor,
        settings: NamedDependency[Settings],
        script_id: FromPath[UUID],
        data: ScheduleCreateBody,
    ) -> ScheduleOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        schedule = await schedules.create_schedule(
            tenant_id,
            actor,
            script_id,
            data,
            max_per_script=settings.max_schedules_per_script,
            min_interval_seconds=settings.schedule_min_interval_seconds,
        )
        return _schedule_out(schedule)

    @get(
        "/",
        summary="List a script's schedules",
        description="Newest first.",
        responses=errors(400, 401, 403, 404),
    )
    async def list_schedules(
        self, schedules: Schedules, tenant_id: Tenant, page: Paging, script_id: FromPath[UUID]
    ) -> Page[ScheduleOut]:
        rows = await schedules.list_schedules(tenant_id, script_id, page)
        return build_page(rows, page, lambda s: (s.created_at, s.id), _schedule_out)


class ScheduleController(Controller):
    path = "/schedules"
    tags = ["Triggers"]
    dependencies = {"schedules": Provide(create_service_provider(ScheduleService))}

    @get("/{schedule_id:uuid}", summary="Get a schedule", responses=errors(400, 401, 403, 404))
    async def get_schedule(
        self, schedules: Schedules, tenant_id: Tenant, schedule_id: FromPath[UUID]
    ) -> ScheduleOut:
        return _schedule_out(await schedules.get_schedule(tenant_id, schedule_id))

    @patch(
        "/{schedule_id:uuid}",
        summary="Change a schedule",
        description="Absent fields stay as they are. A change of cron, time zone or `active` plans the next "
        "fire time afresh from now and clears a pending retry.",
        responses=errors(400, 401, 403, 404, 413),
    )
    async def update_schedule(
        self,
        schedules: Schedules,
        tenant_id: Tenant,
        actor: CurrentActor,
        settings: NamedDependency[Settings],
        schedule_id: FromPath[UUID],
        data: ScheduleUpdateBody,
    ) -> ScheduleOut:
        ensure_same_tenant(tenant_id, data.tenant_id or None)
        schedule = await schedules.update_schedule(
            tenant_id, actor, schedule_id, data, min_interval_seconds=settings.schedule_min_interval_seconds
        )
        return _schedule_out(schedule)

    @delete(
        "/{schedule_id:uuid}",
        status_code=HTTP_204_NO_CONTENT,
        summary="Delete a schedule",
        description="Stops it; its runs keep pointing at it. Idempotent; afterwards GET is 404.",
        responses=errors(400, 401, 403, 404),
    )
    async def delete_schedule(
        self, schedules: Schedules, tenant_id: Tenant, schedule_id: FromPath[UUID]
    ) -> None:
        await schedules.delete_schedule(tenant_id, schedule_id)
