"""OpenAPI details shared by every route: the error responses each one documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.enums import ParamType, RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIHeader,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Schema,
)
from litestar.params import BodyKwarg

from app.lib.errors import ErrorBody
from app.lib.principals import ROLES

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = [
    "IdempotentOperation",
    "document_access",
    "document_idempotency",
    "errors",
    "json_batch",
    "json_body",
]

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "Invalid request (VALIDATION_ERROR) or missing x-tenant-id (TENANT_REQUIRED).",
        "VALIDATION_ERROR",
        "Invalid name: Expected `str` of length >= 1",
    ),
    401: (
        "Missing, unknown, expired or otherwise invalid bearer token (with WWW-Authenticate).",
        "UNAUTHORIZED",
        "Missing bearer token.",
    ),
    403: (
        "The caller's roles may not call this operation (FORBIDDEN), its token is not granted the "
        "tenant (TENANT_FORBIDDEN), or a tenantId differs from x-tenant-id (TENANT_MISMATCH).",
        "TENANT_FORBIDDEN",
        "This token is not granted the tenant 'acme'.",
    ),
    404: ("No such resource in this tenant.", "NOT_FOUND", "No script with this id."),
    409: ("Conflicts with the current state.", "SLUG_TAKEN", "The slug 'welcome' is already used."),
    412: ("If-Match does not match the current ETag.", "PRECONDITION_FAILED", "The script has changed."),
    413: ("Body larger than MAX_BODY_BYTES.", "PAYLOAD_TOO_LARGE", "The request body is too large."),
    422: ("Well-formed but semantically invalid.", "GRAPH_INVALID", "graphJson is not a valid graph."),
    429: ("Rate limit exceeded; see Retry-After.", "RATE_LIMIT_EXCEEDED", "Too many requests; retry later."),
    431: (
        "Request headers larger than 64 KiB in all.",
        "HEADERS_TOO_LARGE",
        "The request headers are too large.",
    ),
    503: (
        "The database is unavailable; retry.",
        "UNAVAILABLE",
        "The database is unavailable; retry shortly.",
    ),
}

_MORE_EXAMPLES: dict[int, tuple[tuple[str, str], ...]] = {
    403: (
        ("FORBIDDEN", "This operation needs the role admin or editor."),
        ("TENANT_MISMATCH", "tenantId does not match the x-tenant-id header."),
    ),
}


def errors(
    *statuses: int, database: bool = True, codes: dict[int, list[tuple[str, str]]] | None = None
) -> dict[int, ResponseSpec]:
    """Response docs for the given error statuses, all with the ``{code, message, details}`` body.

    Every route can answer 431 (headers too large) and, when it uses the database, 503. ``codes``
    gives a status the route's own examples, ``(code, message)``, in place of the generic ones.
    """
    documented = dict.fromkeys((*statuses, 431, *((503,) if database else ())))
    specs: dict[int, ResponseSpec] = {}
    for status in documented:
        description, code, message = _ERRORS[status]
        examples = (codes or {}).get(status) or [(code, message), *_MORE_EXAMPLES.get(status, ())]
        specs[status] = ResponseSpec(
            data_container=ErrorBody,
            description=description,
            examples=[Example(summary=c, value={"code": c, "message": m}) for c, m in examples],
        )
    return specs


def json_body(example: Any, description: str | None = None) -> BodyKwarg:
    """A JSON request body documented with an example (use as ``Annotated[Struct, json_body(...)]``)."""
    return BodyKwarg(
        media_type=RequestEncodingType.JSON,
        description=description,
        examples=[Example(summary="Example", value=example)],
    )


def json_batch(min_items: int, max_items: int, description: str | None = None) -> BodyKwarg:
    """A JSON array body documented with its size bounds; the service checks them with its own
    messages, so they are documentation here (``Annotated[list[Item], json_batch(1, 1000)]``)."""
    return BodyKwarg(
        media_type=RequestEncodingType.JSON,
        description=description,
        schema_extra={"minItems": min_items, "maxItems": max_items},
    )


# What the Idempotency-Key layer (app.lib.idempotency) can answer on any POST, on its own.
_IDEMPOTENCY_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "Invalid request, e.g. an Idempotency-Key that is not 1-255 printable characters.",
        "VALIDATION_ERROR",
        "Idempotency-Key must be 1-255 printable ASCII characters.",
    ),
    409: (
        "A request with this Idempotency-Key is still being processed.",
        "IDEMPOTENCY_IN_PROGRESS",
        "A request with this Idempotency-Key is still being processed; retry shortly.",
    ),
    413: _ERRORS[413],
    422: (
        "This Idempotency-Key was used for a different request.",
        "IDEMPOTENCY_KEY_REUSED",
        "This Idempotency-Key was used for a different request.",
    ),
}


_IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    description="Makes a retry safe: the first request with this key (per tenant and actor) is processed, "
    "and any later one with the same method, path and body gets the stored answer again, with "
    "`Idempotent-Replayed: true` (2xx answers, and 4xx answers of the route itself). Keys are kept for "
    "IDEMPOTENCY_TTL_HOURS (24).",
    schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=255, pattern=r"^[\x20-\x7e]{1,255}$"),
)
_REPLAYED = OpenAPIHeader(
    description="`true` when this answer is the stored answer to an earlier request with the same "
    "Idempotency-Key.",
    schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
)


@dataclass
class IdempotentOperation(Operation):
    """A POST as the Idempotency-Key layer serves it: the request header, and the replay header on
    its success answers. The layer is middleware, so no handler declares either itself."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), _IDEMPOTENCY_KEY]
        for status, response in (self.responses or {}).items():
            if status.startswith("2") and isinstance(response, OpenAPIResponse):
                response.headers = {**(response.headers or {}), "Idempotent-Replayed": _REPLAYED}


def document_idempotency(app: Litestar) -> None:
    """Every POST honours Idempotency-Key, so every POST documents the header, the replay
    header and what that layer answers; statuses a route documents itself keep the route's
    description."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if "POST" in handler.http_methods:
                if handler.operation_class is Operation:
                    handler.operation_class = IdempotentOperation
                added = {
                    status: ResponseSpec(
                        data_container=ErrorBody,
                        description=description,
                        examples=[Example(summary=code, value={"code": code, "message": message})],
                    )
                    for status, (description, code, message) in _IDEMPOTENCY_ERRORS.items()
                }
                handler.responses = {**added, **(handler.responses or {})}


def document_access(app: Litestar) -> None:
    """Each operation's description ends with the roles that may call it, read from the one
    table that enforces them (``app.lib.access.ACCESS``)."""
    from app.lib.access import access_of

    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            methods = sorted(handler.http_methods - {"OPTIONS", "HEAD"})
            rules = {access_of(method, route.path_format) for method in methods}
            if len(rules) != 1 or (access := rules.pop()) is None:
                continue
            if access.public:
                note = "No bearer token needed."
            elif access.roles is not None and access.roles >= ROLES:
                note = "Roles: any (every role may read)."
            else:
                note = f"Roles: {access.describe()} (403 FORBIDDEN otherwise)."
            handler.description = f"{handler.description or ''}\n\n{note}".strip()
