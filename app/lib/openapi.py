"""OpenAPI details shared by every route: the error responses each one documents."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import BodyKwarg

from app.lib.errors import ErrorBody

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = ["document_idempotency", "errors", "json_batch", "json_body"]

_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "Invalid request (VALIDATION_ERROR) or missing x-tenant-id (TENANT_REQUIRED).",
        "VALIDATION_ERROR",
        "Invalid name: Expected `str` of length >= 1",
    ),
    401: ("Missing or invalid bearer token.", "UNAUTHORIZED", "Missing bearer token."),
    403: (
        "Not allowed (FORBIDDEN) or tenantId differs from x-tenant-id (TENANT_MISMATCH).",
        "TENANT_MISMATCH",
        "tenantId does not match the x-tenant-id header.",
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


def errors(*statuses: int, database: bool = True) -> dict[int, ResponseSpec]:
    """Response docs for the given error statuses, all with the ``{code, message, details}`` body.

    Every route can answer 431 (headers too large) and, when it uses the database, 503.
    """
    documented = dict.fromkeys((*statuses, 431, *((503,) if database else ())))
    specs: dict[int, ResponseSpec] = {}
    for status in documented:
        description, code, message = _ERRORS[status]
        specs[status] = ResponseSpec(
            data_container=ErrorBody,
            description=description,
            examples=[Example(summary=code, value={"code": code, "message": message})],
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


def document_idempotency(app: Litestar) -> None:
    """Every POST honours Idempotency-Key, so every POST documents what that layer answers;
    statuses a route documents itself keep the route's description."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if "POST" in handler.http_methods:
                added = {
                    status: ResponseSpec(
                        data_container=ErrorBody,
                        description=description,
                        examples=[Example(summary=code, value={"code": code, "message": message})],
                    )
                    for status, (description, code, message) in _IDEMPOTENCY_ERRORS.items()
                }
                handler.responses = {**added, **(handler.responses or {})}
