"""HTTP surface of incoming events (``POST /events``, ``/events/{eventId}``, ``/events/incoming``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from app.domain.incoming_events.schemas import EventAccepted, EventIn, IncomingEventOut
from app.domain.incoming_events.services import IncomingEventService
from app.lib.dependencies import CurrentActor, Paging, Tenant
from app.lib.openapi import json_body
from app.lib.pagination import Page, build_page
from app.lib.routes import accept_route, list_route, read_route, served_as
from app.lib.service import provide_service
from app.lib.tenancy import ensure_same_tenant
from app.lib.timerange import TimeWindow, provide_time_window

Incoming = NamedDependency[IncomingEventService]
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


class IncomingEventController(Controller):
    path = "/events"
    tags = ["Triggers"]
    dependencies = {"incoming": Provide(provide_service(IncomingEventService))}

    @accept_route(
        "Receive an event",
        "Stores the event and starts one EVENT_TRIGGER run (of the active version) per "
        "script with an active subscription to `eventName` on `subject` or on `*`, all in one "
        "transaction. Archived scripts and scripts without an active version are not started and "
        "are listed in `skipped` with the reason (SCRIPT_ARCHIVED, NO_ACTIVE_VERSION). "
        "A subscription with `flowControl` decides per subject: a debounced one lists the event in "
        "`deferred` with the `dueAt` of the window it joined (the worker starts the window's run), a "
        "throttled one over its limit lists it in `suppressed` (reason THROTTLED). "
        "Unknown event name → 404. The same `sourceEventId` again (even concurrently) starts nothing "
        "and answers the first answer. Rate-limited per tenant (429 RATE_LIMIT_EXCEEDED). What became "
        "of the event later: `GET /events/incoming/{eventId}`.",
        rate_limit="events",
        also=(404,),
    )
    async def receive_event(
        self,
        incoming: Incoming,
        tenant_id: Tenant,
        actor: CurrentActor,
        data: EventBody,
    ) -> EventAccepted:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return await incoming.receive(tenant_id, actor, data)

    @read_route(
        "/incoming/{event_id:uuid}",
        "Get an incoming event and what became of it",
        "The event as received, what `POST /events` answered (`runs`, `deferred`, `suppressed`, "
        "`skipped`), and `outcomes`: per matching subscription, what became of the event as of now — "
        "STARTED (`runId`), DEFERRED (in a debounce window due at `dueAt`), FOLDED (its window's run "
        "started: `foldedInto`), SUPPRESSED (`reason` THROTTLED), SKIPPED (`reason` SCRIPT_ARCHIVED or "
        "NO_ACTIVE_VERSION) or CANCELLED (`reason` SCRIPT_ARCHIVED or SUBSCRIPTION_DEACTIVATED). Its runs, "
        "and their steps: `GET /runs?triggeringEventId=`.",
    )
    async def get_incoming_event(
        self, incoming: Incoming, tenant_id: Tenant, event_id: FromPath[UUID]
    ) -> IncomingEventOut:
        return IncomingEventOut.of(*await incoming.get_event(tenant_id, event_id))

    get_event = read_route(
        "/{event_id:uuid}", "Get an incoming event", "The same as `GET /events/incoming/{eventId}`."
    )(served_as("get_event", get_incoming_event.fn))

    @list_route(
        "List incoming events",
        "The tenant's incoming events, newest first, each with its `outcomes` (see "
        "`GET /events/incoming/{eventId}`); filter by `subject`, `eventName` and received time "
        "(`from` inclusive, `to` exclusive).",
        path="/incoming",
        dependencies={"window": Provide(provide_time_window)},
    )
    async def list_incoming_events(
        self,
        incoming: Incoming,
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
