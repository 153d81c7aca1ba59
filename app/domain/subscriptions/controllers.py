"""HTTP surface of trigger subscriptions (``/subjects/{subject}/subscriptions/triggers`` and
``/internal/…``)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from app.domain.subscriptions.schemas import SubscriptionCreate, SubscriptionOut
from app.domain.subscriptions.services import SubscriptionService
from app.lib.dependencies import CurrentActor, Paging, Tenant
from app.lib.openapi import json_body
from app.lib.pagination import Page, build_page
from app.lib.routes import create_route, delete_route, list_route
from app.lib.service import provide_service
from app.lib.tenancy import ensure_same_tenant

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


class SubscriptionController(Controller):
    """Trigger subscriptions for administrators. ``InternalSubscriptionController`` mounts the same
    handlers under ``/internal`` for service callers (roles: app.lib.access)."""

    path = "/subjects/{subject:str}/subscriptions/triggers"
    tags = ["Trigger subscriptions"]
    dependencies = {"subscriptions": Provide(provide_service(SubscriptionService))}

    @create_route(
        "Subscribe a script to an event on a subject",
        "The subject is `[A-Za-z0-9_.:-]{1,128}` or `*` (every subject). `eventName` is one "
        "string (an array or an empty string is 400); an unknown event name or script is 404; an active "
        "subscription for the same subject and event, whatever its script, is 409 SUBSCRIPTION_EXISTS "
        "(inactive ones do not count). Optional `flowControl`: `debounceSeconds` (1-3600) with "
        "`maxDelaySeconds` (debounceSeconds-86400), and/or `throttle` `{runs (1-1000), perSeconds "
        "(1-86400)}`, per subject of the incoming events (400 VALIDATION_ERROR naming the field; not on "
        "lifecycle event names). Under `/subjects/…` the caller needs the admin role, under "
        "`/internal/subjects/…` the service or admin role (403 FORBIDDEN otherwise).",
        also=(404,),
    )
    async def subscribe(
        self,
        subscriptions: NamedDependency[SubscriptionService],
        tenant_id: Tenant,
        actor: CurrentActor,
        subject: FromPath[str],
        data: SubscriptionBody,
    ) -> SubscriptionOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return SubscriptionOut.of(await subscriptions.subscribe(tenant_id, actor, subject, data))

    @list_route("List a subject's subscriptions", "Newest first, active and inactive (filter with `active`).")
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

    @delete_route(
        "/{subscription_id:uuid}",
        "Deactivate a subscription",
        "Soft: the subscription stays listed as inactive and stops matching events. "
        "Idempotent; an id of another subject (or tenant) is 404.",
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
