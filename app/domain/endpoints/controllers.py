"""HTTP surface of custom endpoints (``/scripts/{id}/endpoints``) and the requests they receive
(``/hooks/{tenantId}/{route}``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, route
from litestar.di import NamedDependency, Provide
from litestar.enums import HttpMethod
from litestar.params import FromPath
from litestar.status_codes import HTTP_202_ACCEPTED

from app.config import Settings
from app.domain.endpoints.schemas import EndpointCreate, EndpointOut, HookAccepted
from app.domain.endpoints.services import EndpointService, HookRequest, resolve_route
from app.lib.auth import PUBLIC_OPT, Authenticator, bearer_token
from app.lib.dependencies import Paging, Tenant
from app.lib.errors import ApiError, NotFound, PayloadTooLarge
from app.lib.openapi import errors, json_body
from app.lib.pagination import Page, build_page
from app.lib.principals import Principal
from app.lib.rate_limit import RATE_LIMIT_OPT
from app.lib.routes import create_route, delete_route, list_route, served_as
from app.lib.service import provide_service
from app.lib.tenancy import ensure_granted, ensure_same_tenant

__all__ = ["HookController", "ScriptEndpointController"]

Endpoints = NamedDependency[EndpointService]

EndpointBody = Annotated[
    EndpointCreate,
    json_body(
        {"method": "POST", "route": "crm/lead-created", "authRequired": False},
        "route without a leading slash (`^[a-z0-9][a-z0-9/_-]*$`); authRequired defaults to true.",
    ),
]


class EndpointsController(Controller):
    """What both controllers of custom endpoints share: their API section and their service."""

    tags = ["Triggers"]
    dependencies = {"endpoints": Provide(provide_service(EndpointService))}


class ScriptEndpointController(EndpointsController):
    path = "/scripts/{script_id:uuid}/endpoints"

    @create_route(
        "Create a custom endpoint",
        "Requests to `/hooks/{tenantId}/{route}` with this method start ENDPOINT_REQUEST runs "
        "of the script's active version. (method, route) is unique per tenant: 409 ROUTE_TAKEN; a tenant "
        "with MAX_ENDPOINTS_PER_TENANT (1,000) endpoints already is 409 QUOTA_EXCEEDED.",
        also=(404,),
    )
    async def create_endpoint(
        self,
        endpoints: Endpoints,
        tenant_id: Tenant,
        actor: NamedDependency[Principal],
        script_id: FromPath[UUID],
        data: EndpointBody,
    ) -> EndpointOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return EndpointOut.of(await endpoints.create_endpoint(tenant_id, actor, script_id, data))

    @list_route("List a script's endpoints", "Newest first.", also=(404,))
    async def list_endpoints(
        self, endpoints: Endpoints, tenant_id: Tenant, page: Paging, script_id: FromPath[UUID]
    ) -> Page[EndpointOut]:
        rows = await endpoints.list_endpoints(tenant_id, script_id, page)
        return build_page(rows, page, lambda e: (e.created_at, e.id), EndpointOut.of)

    @delete_route(
        "/{endpoint_id:uuid}", "Delete a custom endpoint", "The route is free again at once; its runs stay."
    )
    async def delete_endpoint(
        self, endpoints: Endpoints, tenant_id: Tenant, script_id: FromPath[UUID], endpoint_id: FromPath[UUID]
    ) -> None:
        await endpoints.delete_endpoint(tenant_id, script_id, endpoint_id)


_OTHER_METHODS = [HttpMethod.GET, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]
_HOOK_ROUTE: dict[str, Any] = {
    "status_code": HTTP_202_ACCEPTED,
    "summary": "Call a custom endpoint",
    "description": "Starts an ENDPOINT_REQUEST run of the endpoint's script (active version) with "
    "`eventData {endpoint, authenticated, headers, query, body}`; headers that carry secrets "
    "(authorization, proxy-authorization, cookie, set-cookie, x-api-key, and any name containing "
    "token, secret, password, passwd, key, auth, session, signature or credential) are left out. "
    "A JSON body is parsed, a form becomes a mapping, other bodies are text. No such endpoint for "
    "this method, a path that is not a plain route (`..`, `//`, encoded separators), or a script "
    "without an active version → 404; an archived script → 409 SCRIPT_ARCHIVED; an `authRequired` "
    "endpoint without a valid bearer token → 401, with one not granted the tenant → 403 "
    "TENANT_FORBIDDEN; a `signingSecret` endpoint without a valid Scriptworks-Signature → 401; a body "
    "over HOOK_MAX_BODY_BYTES → 413. "
    "Rate-limited per tenant (429 RATE_LIMIT_EXCEEDED).",
    "responses": errors(400, 401, 403, 404, 409, 413, 429),
    "opt": {PUBLIC_OPT: True, RATE_LIMIT_OPT: "hooks"},
    "security": [{}, {"BearerJWT": []}, {"StaticToken": []}],
}


class HookController(EndpointsController):
    """Requests to custom endpoints. Outside the global bearer authentication; the tenant is
    in the path (``tenant_id``, the name the idempotency and rate-limit layers read)."""

    path = "/hooks"

    @route("/{tenant_id:str}/{route:path}", http_method=_OTHER_METHODS, **_HOOK_ROUTE)
    async def call_endpoint(
        self,
        request: Request[Any, Any, Any],
        endpoints: Endpoints,
        tenant_id: FromPath[str],
        route: FromPath[str],
    ) -> HookAccepted:
        return await _call(request, endpoints, tenant_id, route)

    # POST is a route of its own: only POST goes through the Idempotency-Key layer, and the API
    # description says so per operation.
    post_endpoint = route("/{tenant_id:str}/{route:path}", http_method=[HttpMethod.POST], **_HOOK_ROUTE)(
        served_as("post_endpoint", call_endpoint.fn)
    )


async def _caller(
    request: Request[Any, Any, Any], tenant_id: str
) -> tuple[Principal | None, ApiError | None]:
    """The caller, and why there is none. A public endpoint treats a missing, invalid or
    foreign token alike (an anonymous call); one with ``authRequired`` answers with the reason:
    401 for a missing or invalid token, 403 TENANT_FORBIDDEN for a token not granted the tenant."""
    token = bearer_token(request)
    if token is None:
        return None, None
    authenticator: Authenticator = request.app.state.authenticator
    try:
        principal = await authenticator.principal(token)
        ensure_granted(principal, tenant_id)
    except ApiError as refusal:
        return None, refusal
    return principal, None


async def _body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The body, at most HOOK_MAX_BODY_BYTES (413 beyond, checked before and while reading)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"A custom endpoint accepts bodies of at most {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"A custom endpoint accepts bodies of at most {limit} bytes.")
    return bytes(body)


async def _call(
    request: Request[Any, Any, Any], endpoints: EndpointService, tenant_id: str, route: str
) -> HookAccepted:
    # The path as sent (some servers leave the query on it); the router normalised scope["path"].
    raw_path = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
    resolved = resolve_route(tenant_id, route, raw_path or request.scope["path"])
    if resolved is None:
        raise NotFound("No endpoint at this path.")
    settings: Settings = request.app.state.settings
    principal, refusal = await _caller(request, tenant_id)
    hook = HookRequest(
        tenant_id=tenant_id,
        method=request.method,
        route=resolved,
        principal=principal,
        refusal=refusal,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
        query=list(request.query_params.multi_items()),
        body=await _body(request, settings.hook_max_body_bytes),
        content_type=request.headers.get("content-type", ""),
    )
    return HookAccepted(run_id=await endpoints.start_from_request(hook))
