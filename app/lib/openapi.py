"""OpenAPI details shared by every route: the shared error responses each one refers to, its
links, the Idempotency-Key layer's header and answers, and the roles that may call it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litestar.enums import ParamType, RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.params import BodyKwarg

from app.lib.errors import ErrorBody
from app.lib.openapi_links import LINKS
from app.lib.openapi_structs import any_of
from app.lib.principals import ROLES

if TYPE_CHECKING:
    from litestar import Litestar

__all__ = [
    "ERROR_ANSWERS",
    "ContractOperation",
    "ErrorAnswer",
    "IdempotentOperation",
    "document_access",
    "document_contract",
    "error_responses",
    "errors",
    "json_batch",
    "json_body",
]


@dataclass(frozen=True)
class ErrorAnswer:
    """An error status as ``components.responses`` documents it once, for every operation: its
    name there, what it means, and an example per code it carries (the usual one first)."""

    name: str
    description: str
    examples: tuple[tuple[str, str], ...]
    headers: dict[str, OpenAPIHeader] | None = None


_RETRY_AFTER = {
    "Retry-After": OpenAPIHeader(
        description="Seconds to wait before retrying.", schema=Schema(type=OpenAPIType.INTEGER, minimum=1)
    )
}
ERROR_ANSWERS: dict[int, ErrorAnswer] = {
    400: ErrorAnswer(
        "BadRequest",
        "Invalid request (VALIDATION_ERROR) or missing x-tenant-id (TENANT_REQUIRED).",
        (
            ("VALIDATION_ERROR", "Invalid name: Expected `str` of length >= 1"),
            ("TENANT_REQUIRED", "The x-tenant-id header is required."),
        ),
    ),
    401: ErrorAnswer(
        "Unauthorized",
        "Missing, unknown, expired or otherwise invalid bearer token (with WWW-Authenticate).",
        (("UNAUTHORIZED", "Missing bearer token."),),
        {
            "WWW-Authenticate": OpenAPIHeader(
                description="The Bearer challenge.", schema=Schema(type=OpenAPIType.STRING)
            )
        },
    ),
    403: ErrorAnswer(
        "Forbidden",
        "The caller's roles may not call this operation (FORBIDDEN), its token is not granted the "
        "tenant (TENANT_FORBIDDEN), or a tenantId differs from x-tenant-id (TENANT_MISMATCH).",
        (
            ("TENANT_FORBIDDEN", "This token is not granted the tenant 'acme'."),
            ("FORBIDDEN", "This operation needs the role admin or editor."),
            ("TENANT_MISMATCH", "tenantId does not match the x-tenant-id header."),
        ),
    ),
    404: ErrorAnswer(
        "NotFound", "No such resource in this tenant.", (("NOT_FOUND", "No script with this id."),)
    ),
    409: ErrorAnswer(
        "Conflict",
        "Conflicts with the current state.",
        (
            ("SLUG_TAKEN", "The slug 'welcome' is already used."),
            ("RUN_FINISHED", "The run has already finished (SUCCEEDED)."),
            ("SCRIPT_ARCHIVED", "The script is archived; restore it before publishing."),
            (
                "SUBSCRIPTION_EXISTS",
                "An active subscription to 'LOCATION_LIVING_ROOM' on subject 'sensor-1' exists already; "
                "delete it first.",
            ),
            (
                "DUPLICATE_CORRELATION_ID",
                "A command with correlationId 'order-4711' already exists in this tenant.",
            ),
            (
                "COMMAND_NOT_RETRYABLE",
                "Only a FAILED or CANCELLED command can be retried; this one is PENDING.",
            ),
            ("COMMAND_NOT_CANCELLABLE", "Only a PENDING command can be cancelled; this one is PROCESSING."),
            ("QUOTA_EXCEEDED", "The limit of 20 schedules per script is reached; delete one first."),
            ("EVENT_TYPE_EXISTS", "The event type 'LOCATION_LIVING_ROOM' exists already."),
            ("ROUTE_TAKEN", "POST /hooks/acme/crm/lead-created is taken by another endpoint of this tenant."),
            (
                "IDEMPOTENCY_IN_PROGRESS",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
            ),
        ),
    ),
    412: ErrorAnswer(
        "PreconditionFailed",
        "If-Match does not match the current ETag.",
        (("PRECONDITION_FAILED", "The script has changed."),),
    ),
    413: ErrorAnswer(
        "PayloadTooLarge",
        "Body larger than MAX_BODY_BYTES.",
        (("PAYLOAD_TOO_LARGE", "The request body is too large."),),
    ),
    422: ErrorAnswer(
        "Unprocessable",
        "Well-formed but semantically invalid.",
        (
            ("GRAPH_INVALID", "graphJson is not a valid graph."),
            ("VERSION_NOT_FOUND", "Version 7 of this script does not exist."),
            ("NODE_NOT_IN_VERSION", "Node 'greet' is not in version 2 of this script."),
            ("STEP_TYPE_MISMATCH", "Node 'greet' is a say node, not a wait node."),
            ("STEP_DATA_MISMATCH", "The step's data does not fit its node type."),
            ("IDEMPOTENCY_KEY_REUSED", "This Idempotency-Key was used for a different request."),
        ),
    ),
    429: ErrorAnswer(
        "TooManyRequests",
        "Rate limit exceeded; see Retry-After.",
        (("RATE_LIMIT_EXCEEDED", "Too many requests; retry later."),),
        _RETRY_AFTER,
    ),
    431: ErrorAnswer(
        "HeadersTooLarge",
        "Request headers larger than 64 KiB in all.",
        (("HEADERS_TOO_LARGE", "The request headers are too large."),),
    ),
    503: ErrorAnswer(
        "Unavailable",
        "The database is unavailable; retry.",
        (("UNAVAILABLE", "The database is unavailable; retry shortly."),),
        _RETRY_AFTER,
    ),
}


def error_responses() -> dict[str, OpenAPIResponse | Reference]:
    """``components.responses``: one response per error status, each with the ``{code, message,
    details}`` body and an example of every code it carries."""
    return {
        answer.name: OpenAPIResponse(
            description=answer.description,
            headers=answer.headers,
            content={
                "application/json": OpenAPIMediaType(
                    schema=Reference(ref=f"#/components/schemas/{ErrorBody.__name__}"),
                    examples={
                        code: Example(summary=code, value={"code": code, "message": message})
                        for code, message in answer.examples
                    },
                )
            },
        )
        for answer in ERROR_ANSWERS.values()
    }


def _error(description: str) -> ResponseSpec:
    # The body schema registers ErrorBody among the component schemas; ``ContractOperation``
    # then puts the shared response in place of this one.
    return ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)


def errors(
    *statuses: int, database: bool = True, codes: dict[int, list[tuple[str, str]]] | None = None
) -> dict[int, ResponseSpec]:
    """The error statuses a route answers; each becomes a ``$ref`` to its shared response.

    Every route can answer 431 (headers too large) and, when it uses the database, 503. ``codes``
    names the codes a route answers with a status, ``(code, message)``, in place of the generic
    description.
    """
    documented = dict.fromkeys((*statuses, 431, *((503,) if database else ())))
    specs: dict[int, ResponseSpec] = {}
    for status in documented:
        route_codes = (codes or {}).get(status)
        description = (
            " ".join(f"{code}: {message}" for code, message in route_codes)
            if route_codes
            else ERROR_ANSWERS[status].description
        )
        specs[status] = _error(description)
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
_IDEMPOTENCY_ERRORS: dict[int, str] = {
    400: "Invalid request, e.g. an Idempotency-Key that is not 1-255 printable characters.",
    409: "A request with this Idempotency-Key is still being processed (IDEMPOTENCY_IN_PROGRESS).",
    413: ERROR_ANSWERS[413].description,
    422: "This Idempotency-Key was used for a different request (IDEMPOTENCY_KEY_REUSED).",
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
class ContractOperation(Operation):
    """An operation as the contract documents it: each error answer is a ``$ref`` to its shared
    response in ``components.responses`` (with the route's own description where it has one), and
    the success answer links to the operations that take the ids it returns (``LINKS``)."""

    def __post_init__(self) -> None:
        responses = self.responses or {}
        for status, response in responses.items():
            if status.startswith(("4", "5")) and isinstance(response, OpenAPIResponse):
                answer = ERROR_ANSWERS.get(int(status))
                if answer is None:
                    raise LookupError(f"{self.operation_id}: no shared response for status {status}")
                own = None if response.description == answer.description else response.description
                responses[status] = Reference(ref=f"#/components/responses/{answer.name}", description=own)
        for response in responses.values():
            stream = isinstance(response, OpenAPIResponse) and (response.content or {}).get(
                "text/event-stream"
            )
            if stream:
                stream.schema = any_of(stream.schema)
        if links := LINKS.get(self.operation_id or ""):
            success = next(r for s, r in responses.items() if s.startswith("2"))
            assert isinstance(success, OpenAPIResponse)
            success.links = dict(links)


@dataclass
class IdempotentOperation(ContractOperation):
    """A POST as the Idempotency-Key layer serves it: the request header, and the replay header on
    its success answers. The layer is middleware, so no handler declares either itself."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parameters = [*(self.parameters or []), _IDEMPOTENCY_KEY]
        for status, response in (self.responses or {}).items():
            if status.startswith("2") and isinstance(response, OpenAPIResponse):
                response.headers = {**(response.headers or {}), "Idempotent-Replayed": _REPLAYED}


def document_contract(app: Litestar) -> None:
    """Every operation refers to the shared error responses and carries its links; every POST
    honours Idempotency-Key, so every POST documents the header, the replay header and what that
    layer answers (statuses a route documents itself keep the route's description)."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if handler.operation_class is not Operation:
                continue
            if "POST" in handler.http_methods:
                handler.operation_class = IdempotentOperation
                added = {status: _error(description) for status, description in _IDEMPOTENCY_ERRORS.items()}
                handler.responses = {**added, **(handler.responses or {})}
            else:
                handler.operation_class = ContractOperation


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
