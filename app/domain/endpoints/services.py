"""Custom endpoints: ``/hooks/{tenantId}/{route}`` requests that start runs of a script.

An endpoint is (method, route) unique per tenant (409 ``ROUTE_TAKEN``). A request to it starts an
``ENDPOINT_REQUEST`` run of the script's active version whose ``eventData`` is the request in a
standard shape, ``{endpoint, authenticated, headers, query, body}``, with secrets removed from
the headers (see ``is_secret_header``).

``/hooks`` is outside the global bearer authentication (its callers are often third parties);
an endpoint with ``authRequired`` checks the token itself (valid, and granted the tenant), and one
with a signing secret checks the ``Scriptworks-Signature`` of every request (``signatures.py``).
Secret query parameters (``SECRET_QUERY_NAMES``) are stored as ``[redacted]``.

Anything about the path that is not a plain registered route (``..``, ``.``, ``//``, encoded
slashes or dots, a bad tenant id) is simply no endpoint: 404.
"""

from __future__ import annotations

import datetime
import re
import urllib.parse
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from app.db.triggers import Endpoint
from app.domain.endpoints.repositories import ENDPOINTS_PER_TENANT, EndpointRepository
from app.domain.endpoints.schemas import ROUTE_PATTERN, EndpointCreate
from app.domain.endpoints.signatures import SIGNATURE_HEADER
from app.domain.endpoints.signatures import verify as verify_signature
from app.domain.runs.services import RunSource, TriggeredStart, start_active_runs
from app.domain.scripts.services import ensure_script
from app.lib.correlation import current_correlation_id
from app.lib.errors import ApiError, Conflict, NotFound, Unauthorized, ValidationFailed
from app.lib.pagination import PageParams
from app.lib.principals import Principal
from app.lib.service import Service
from app.lib.tenancy import TENANT_PATTERN
from app.lib.uow import driver_connection

__all__ = [
    "SECRET_HEADER_NAMES",
    "SECRET_HEADER_PARTS",
    "SECRET_QUERY_NAMES",
    "EndpointService",
    "HookRequest",
    "is_secret_header",
    "request_body_value",
    "resolve_route",
]

_ROUTE = re.compile(ROUTE_PATTERN)
_TENANT = re.compile(TENANT_PATTERN)
# Headers never copied into a run's eventData: these names exactly, and any name containing
# one of the parts (so x-api-key, x-auth-token, x-hub-signature, x-session-id, …).
SECRET_HEADER_NAMES = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})
SECRET_HEADER_PARTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "key",
    "auth",
    "session",
    "signature",
    "credential",
)
# Query parameters that carry credentials: kept by name, their values replaced.
SECRET_QUERY_NAMES = frozenset({"token", "access_token", "key", "api_key", "secret", "signature", "password"})
REDACTED = "[redacted]"
# Percent-encoded '/', '\' and '.' have no business in a route.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|2e)", re.IGNORECASE)


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADER_NAMES or any(part in lowered for part in SECRET_HEADER_PARTS)


def resolve_route(tenant_id: str, route: str, raw_path: str) -> str | None:
    """The registered-route form of a /hooks request's path, or None when it cannot be one.

    ``raw_path`` is the path as the client sent it: the router has already collapsed ``//`` and
    resolved dot segments in the decoded path, and a route must not depend on that.
    """
    if not _TENANT.match(tenant_id) or _ENCODED_SEPARATOR.search(raw_path):
        return None
    candidate = route.removeprefix("/")
    if urllib.parse.unquote(raw_path) != f"/hooks/{tenant_id}/{candidate}":
        return None
    if not _ROUTE.match(candidate) or "//" in candidate or candidate.endswith("/") or len(candidate) > 200:
        return None
    return candidate


def request_body_value(body: bytes, content_type: str) -> Any:
    """The body as eventData carries it: JSON parsed, a form as a mapping, other text as a string."""
    if not body:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise ValidationFailed(
                "The request body is not valid JSON.",
                details=[{"field": "body", "message": "not valid JSON", "source": "body"}],
            ) from None
    text = body.decode("utf-8", errors="replace")
    if media_type == "application/x-www-form-urlencoded":
        return _multi(urllib.parse.parse_qsl(text, keep_blank_values=True))
    return text


def _multi(pairs: list[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Pairs as a mapping; a name given more than once maps to the list of its values."""
    values: dict[str, str | list[str]] = {}
    for name, value in pairs:
        if name not in values:
            values[name] = value
        else:
            existing = values[name]
            values[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
    return values


@dataclass(frozen=True, slots=True)
class HookRequest:
    """A /hooks request, parsed: what the endpoint is asked and what the run will carry."""

    tenant_id: str
    method: str
    route: str
    principal: Principal | None  # the caller of a valid bearer token granted the tenant, if sent
    refusal: ApiError | None  # why there is no principal, for endpoints that require one
    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]
    body: bytes
    content_type: str

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def event_data(self, endpoint: Endpoint) -> dict[str, Any]:
        headers: dict[str, str] = {}
        for name, value in self.headers:
            lowered = name.lower()
            if is_secret_header(lowered):
                continue
            headers[lowered] = f"{headers[lowered]}, {value}" if lowered in headers else value
        return {
            "endpoint": {
                "id": str(endpoint.id),
                "method": endpoint.method,
                "route": endpoint.route,
                "path": f"/hooks/{endpoint.tenant_id}/{endpoint.route}",
            },
            "authenticated": self.principal is not None,
            "headers": headers,
            "query": _multi(
                [
                    (name, REDACTED if name.lower() in SECRET_QUERY_NAMES else value)
                    for name, value in self.query
                ]
            ),
            "body": request_body_value(self.body, self.content_type),
        }


class EndpointService(Service[Endpoint, EndpointRepository]):
    repository_type = EndpointRepository

    async def list_endpoints(self, tenant_id: str, script_id: uuid.UUID, page: PageParams) -> list[Endpoint]:
        await ensure_script(self.session, tenant_id, script_id)
        return await self.repository.newest_first(tenant_id, page, script_id=script_id)

    async def create_endpoint(
        self,
        tenant_id: str,
        actor: Principal,
        script_id: uuid.UUID,
        data: EndpointCreate,
    ) -> Endpoint:
        if "//" in data.route or data.route.endswith("/"):
            raise ValidationFailed(
                "A route has no empty segments: no '//' and no trailing '/'.",
                details=[{"field": "route", "message": "empty path segment", "source": "body"}],
            )
        await ensure_script(self.session, tenant_id, script_id)
        await ENDPOINTS_PER_TENANT.ensure_room(
            self.session, tenant_id, self.settings.max_endpoints_per_tenant
        )
        row = await self.repository.insert_unless_taken(
            datetime.datetime.now(datetime.UTC),
            tenant_id=tenant_id,
            script_id=script_id,
            method=data.method,
            route=data.route,
            auth_required=data.auth_required,
            signing_secret=data.signing_secret,
            created_by_id=actor.id,
        )
        if row is None:
            raise Conflict(
                f"{data.method} /hooks/{tenant_id}/{data.route} is taken by another endpoint of this tenant.",
                code="ROUTE_TAKEN",
            )
        await self.uow.commit()
        return row

    async def delete_endpoint(self, tenant_id: str, script_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
        if not await self.repository.delete_of_script(endpoint_id, tenant_id, script_id):
            raise NotFound("No endpoint with this id for this script.")
        await self.uow.commit()

    async def start_from_request(self, request: HookRequest) -> uuid.UUID:
        """Start the endpoint's run: 404 for no such endpoint (or a script without an active
        version), 401 for a missing or invalid token when the endpoint requires one."""
        found = await self.repository.with_script(request.tenant_id, request.method, request.route)
        if found is None:
            raise NotFound(f"No endpoint for {request.method} /hooks/{request.tenant_id}/{request.route}.")
        endpoint, active_version_id, script_status = found
        if endpoint.signing_secret is not None:
            verify_signature(endpoint.signing_secret, request.header(SIGNATURE_HEADER), request.body)
        if endpoint.auth_required and request.principal is None:
            raise request.refusal or Unauthorized(
                "This endpoint requires 'Authorization: Bearer <token>' with a valid token.",
                headers={"WWW-Authenticate": 'Bearer realm="scriptworks"'},
            )
        if script_status == "ARCHIVED":
            raise Conflict(
                "The endpoint's script is archived: it starts no runs until it is set back to DRAFT "
                "or PUBLISHED.",
                code="SCRIPT_ARCHIVED",
            )
        if active_version_id is None:
            raise NotFound("The endpoint's script has no published (active) version to run.")
        source = RunSource(trigger_type="ENDPOINT_REQUEST", event_data=request.event_data(endpoint))
        start = TriggeredStart(
            tenant_id=request.tenant_id,
            script_id=endpoint.script_id,
            source=source,
            started_by_id=request.principal.id if request.principal is not None else None,
        )
        started = await start_active_runs(
            await driver_connection(self.session), [start], correlation_id=current_correlation_id()
        )
        if not started:
            raise NotFound("The endpoint's script has no published (active) version to run.")
        await self.uow.commit()
        return started[0]["id"]
