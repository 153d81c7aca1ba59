"""HTTP surface of event types (``/event-types``)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller
from litestar.di import NamedDependency, Provide

from app.domain.event_types.schemas import EventTypeCreate, EventTypeOut
from app.domain.event_types.services import EventTypeService
from app.lib.dependencies import CurrentActor, Paging, Tenant
from app.lib.openapi import json_body
from app.lib.pagination import Page, build_page
from app.lib.routes import create_route, list_route
from app.lib.service import provide_service
from app.lib.tenancy import ensure_same_tenant

EventTypeBody = Annotated[
    EventTypeCreate,
    json_body({"name": "LOCATION_LIVING_ROOM", "description": "Someone entered the living room"}),
]


class EventTypeController(Controller):
    path = "/event-types"
    tags = ["Triggers"]
    dependencies = {"event_types": Provide(provide_service(EventTypeService))}

    @list_route(
        "List event types",
        "The tenant's registered event types, newest first, followed by the built-in "
        "lifecycle names (`builtIn: true`, no id).",
    )
    async def list_event_types(
        self, event_types: NamedDependency[EventTypeService], tenant_id: Tenant, page: Paging
    ) -> Page[EventTypeOut]:
        items = await event_types.list_event_types(tenant_id, page)
        return build_page(items, page, lambda item: item[0], lambda item: item[1])

    @create_route(
        "Register an event type",
        "Admin only (403 FORBIDDEN). Names match `^[A-Za-z][A-Za-z0-9_.]{0,99}$`; a name "
        "the tenant has, or a built-in lifecycle name, is 409 EVENT_TYPE_EXISTS.",
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
