"""``GET /events/stream``: Server-Sent Events for browsers and integration clients, and the
stream tickets that open it (``POST /events/stream-tickets``). What a stream sends, replay
then live: ``app.domain.events.services``."""

from __future__ import annotations

import re
from typing import Annotated, Any

import anyio
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import HeaderParameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from litestar.types import ASGIApp, Receive, Scope, Send
from sse_starlette import EventSourceResponse

from app.config import Settings
from app.domain.events.hub import EventHub
from app.domain.events.schemas import StreamFrame
from app.domain.events.services import ping, stream
from app.lib.auth import STREAM_AUTH_OPT, Authenticator
from app.lib.errors import TenantRequired, ValidationFailed
from app.lib.openapi import errors
from app.lib.schema import CamelStruct, Timestamp, timestamp
from app.lib.tenancy import ensure_granted, ensure_same_tenant, provide_tenant_id, validate_tenant_id

__all__ = ["EventStreamController"]

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_EVENT_ID = re.compile(r"[0-9]{1,19}")
MAX_EVENT_ID = 2**63 - 1  # event ids are bigints
_encode = msgspec.json.Encoder().encode


class StreamTicketOut(CamelStruct):
    """A stream ticket: put it into `?access_token=` of `/events/stream`."""

    ticket: str
    expires_at: Timestamp


async def provide_stream_tenant(
    request: Request[Any, Any, Any],
    x_tenant_id: Annotated[
        str | None,
        HeaderParameter(name="x-tenant-id", required=False, description="The tenant (or use ?tenantId=)."),
    ] = None,
    tenant_query: Annotated[
        str | None,
        QueryParameter(
            name="tenantId",
            description="The tenant, for EventSource clients that cannot send headers.",
            max_length=64,
        ),
    ] = None,
) -> str:
    if x_tenant_id is None and tenant_query is None:
        raise TenantRequired("Name the tenant with the x-tenant-id header or ?tenantId=.")
    if x_tenant_id is not None:
        tenant_id = validate_tenant_id(x_tenant_id)
        ensure_same_tenant(tenant_id, tenant_query)
    else:
        tenant_id = validate_tenant_id(tenant_query, field="tenantId")
    return ensure_granted(request.scope.get("user"), tenant_id)


def _event_id(value: str | None, field: str) -> int | None:
    if value is None or value.strip(" \t") == "":
        return None
    text = value.strip(" \t")
    # Plain ASCII digits only: int() would also take "+5", "1_000" and other scripts' digits.
    number = int(text) if _EVENT_ID.fullmatch(text) else -1
    if not 0 <= number <= MAX_EVENT_ID:
        raise ValidationFailed(
            f"{field} must be an event id (an integer from 0 to {MAX_EVENT_ID}).",
            details=[{"field": field, "message": f"must be an integer from 0 to {MAX_EVENT_ID}"}],
        )
    return number


class EventStreamController(Controller):
    path = "/events"
    tags = ["Events"]

    @get(
        "/stream",
        summary="Live events (Server-Sent Events)",
        description=(
            "A `text/event-stream` of the tenant's events: frames `id: <event id>`, `event: <name>`, "
            "`data: <event JSON>` ({id, event, correlationId, tenantId, success, payload, occurredAt}), "
            "and an `event: ping` frame every SSE_PING_SECONDS. On connect it replays stored events after "
            "`Last-Event-ID` (or `?since=`); with `?correlationId=` and no cursor it replays that "
            "correlation's events, so a client that subscribes after the work finished still gets the "
            "completion. A cursor older than the retained history gets an `event: resync` frame, then "
            "the replay of everything retained. When the server shuts down, an `event: shutdown` frame "
            "ends the stream (reconnect with Last-Event-ID). The 200 schema lists the frames and what "
            "each one's `data` holds. "
            "Authentication: bearer header, `?access_token=` or an `access_token` cookie (EventSource "
            "cannot send headers); browsers should put a stream ticket there (POST "
            "/events/stream-tickets), never a long-lived token. Tenant: `x-tenant-id` or `?tenantId=`; "
            "a tenant the token is not granted is 403 TENANT_FORBIDDEN."
        ),
        opt={STREAM_AUTH_OPT: True},
        dependencies={"tenant_id": Provide(provide_stream_tenant)},
        media_type="text/event-stream",
        responses={
            200: ResponseSpec(
                data_container=StreamFrame,
                media_type="text/event-stream",
                description="An endless stream of frames; each item of the schema is one frame, its "
                "properties the frame's fields. `data` is JSON except on `ping`.",
                generate_examples=False,
            ),
            **errors(400, 401, 403),
        },
        security=[{"StreamTicket": []}, {"BearerJWT": []}, {"StaticToken": []}],
    )
    async def stream(
        self,
        request: Request[Any, Any, Any],
        tenant_id: NamedDependency[str],
        correlation_id: Annotated[
            str | None,
            QueryParameter(
                name="correlationId", description="Only events of this correlation.", max_length=128
            ),
        ] = None,
        event: Annotated[
            str | None,
            QueryParameter(
                description="Only events with these names (comma-separated), e.g. Contacts.Upserted.v1",
                max_length=2000,
            ),
        ] = None,
        since: Annotated[
            str | None,
            QueryParameter(
                description="Replay stored events after this event id (a frame's `id:`); 0 replays every "
                "retained event. Last-Event-ID wins when both are sent.",
                max_length=20,
            ),
        ] = None,
        last_event_id: Annotated[
            str | None,
            HeaderParameter(
                name="Last-Event-ID",
                required=False,
                description="The `id:` of the last frame received: replay resumes after it. EventSource "
                "sends it on reconnect.",
            ),
        ] = None,
        access_token: Annotated[
            str | None,
            QueryParameter(
                description="A stream ticket (or another bearer token), for EventSource clients.",
                max_length=4096,
            ),
        ] = None,
    ) -> ASGIApp:
        settings: Settings = request.app.state.settings
        hub: EventHub = request.app.state.hub
        cursor = _event_id(last_event_id, "Last-Event-ID")
        if cursor is None:
            cursor = _event_id(since, "since")
        names = frozenset(n.strip() for n in event.split(",") if n.strip()) if event else None
        cut_off = anyio.CancelScope()
        response = EventSourceResponse(
            stream(hub, tenant_id, cursor, correlation_id, names or None, cut_off),
            headers=STREAM_HEADERS,
            ping=settings.sse_ping_seconds,
            ping_message_factory=ping,
            shutdown_event=hub.shutdown_event,
            shutdown_grace_period=1.0,
            # No send_timeout: it arms a timer for every frame of every stream (a fan-out to
            # thousands of streams pays for thousands). A reader that stops reading is cut off
            # by the hub instead, once its bounded queue overflows (see ``Subscription.close``).
        )
        return _cancellable(response, cut_off)

    @post(
        "/stream-tickets",
        status_code=HTTP_201_CREATED,
        summary="Mint a stream ticket",
        description="A short-lived token (STREAM_TICKET_SECONDS, default 300) that opens `/events/stream` "
        "for the caller and this tenant only, and is refused everywhere else: what a browser puts into "
        "`EventSource`'s `?access_token=` instead of a long-lived credential. Any role may mint one for "
        "a tenant it is granted. Every API process of the deployment accepts it.",
        dependencies={"tenant_id": Provide(provide_tenant_id)},
        responses=errors(400, 401, 403, 413),
    )
    async def mint_stream_ticket(
        self, request: Request[Any, Any, Any], tenant_id: NamedDependency[str]
    ) -> StreamTicketOut:
        authenticator: Authenticator = request.app.state.authenticator
        ticket, expires_at = await authenticator.tickets.mint(request.user, tenant_id)
        return StreamTicketOut(ticket=ticket, expires_at=timestamp(expires_at))


def _cancellable(response: ASGIApp, cut_off: anyio.CancelScope) -> ASGIApp:
    """The stream inside a cancel scope the hub can trigger (see ``Subscription.close``): one
    scope object per stream, no extra task."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        with cut_off:
            await response(scope, receive, send)

    return app
