"""The one error shape, ``{code, message, details}``, for every failure the API can produce.

Domain code raises ``ApiError`` subclasses. ``exception_to_response`` turns *any* exception into
that shape: ours, Litestar's (validation, unknown route, wrong method, body too large,
rate limit), advanced-alchemy's and the database driver's, and the unknown (logged, never
leaked: no stack trace, SQL or framework text reaches a client).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from advanced_alchemy import exceptions as aa_exc
from litestar import MediaType, Response
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy import exc as sa_exc

from app.lib.correlation import correlation_id_of

if TYPE_CHECKING:
    from litestar import Request

__all__ = [
    "ApiError",
    "Conflict",
    "ErrorBody",
    "Forbidden",
    "HeadersTooLarge",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "TenantForbidden",
    "TenantMismatch",
    "TenantRequired",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "ValidationFailed",
    "exception_to_response",
]

logger = logging.getLogger("app.errors")


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every non-2xx response body."""

    code: str
    message: str
    details: Any = None
    correlationId: str | None = None


class ApiError(Exception):
    """A failure the client caused or should know about, with its status and stable code."""

    status_code: ClassVar[int] = 400
    default_code: ClassVar[str] = "VALIDATION_ERROR"
    headers: dict[str, str] | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.headers = headers


class ValidationFailed(ApiError):
    status_code = 400
    default_code = "VALIDATION_ERROR"


class TenantRequired(ApiError):
    status_code = 400
    default_code = "TENANT_REQUIRED"


class Unauthorized(ApiError):
    status_code = 401
    default_code = "UNAUTHORIZED"


class Forbidden(ApiError):
    status_code = 403
    default_code = "FORBIDDEN"


class TenantForbidden(ApiError):
    status_code = 403
    default_code = "TENANT_FORBIDDEN"


class TenantMismatch(ApiError):
    status_code = 403
    default_code = "TENANT_MISMATCH"


class NotFound(ApiError):
    status_code = 404
    default_code = "NOT_FOUND"


class Conflict(ApiError):
    status_code = 409
    default_code = "CONFLICT"


class PreconditionFailed(ApiError):
    status_code = 412
    default_code = "PRECONDITION_FAILED"


class PayloadTooLarge(ApiError):
    status_code = 413
    default_code = "PAYLOAD_TOO_LARGE"


class HeadersTooLarge(ApiError):
    status_code = 431
    default_code = "HEADERS_TOO_LARGE"


class Unprocessable(ApiError):
    status_code = 422
    default_code = "UNPROCESSABLE"


class RateLimited(ApiError):
    status_code = 429
    default_code = "RATE_LIMIT_EXCEEDED"


class Unavailable(ApiError):
    status_code = 503
    default_code = "UNAVAILABLE"


_MISSING_FIELD = re.compile(
    r"^Object missing required field `(?P<name>[^`]+)`(?: - at `\$\.(?P<at>[^`]+)`)?$"
)

# Codes for Litestar's own HTTP exceptions, by status.
_HTTP_CODES = {
    400: ("VALIDATION_ERROR", "The request is not valid."),
    401: ("UNAUTHORIZED", "A bearer token is required."),
    403: ("FORBIDDEN", "Not allowed."),
    404: ("NOT_FOUND", "No such resource."),
    405: ("METHOD_NOT_ALLOWED", "This method is not allowed on this path."),
    406: ("NOT_ACCEPTABLE", "Cannot produce the requested media type."),
    413: ("PAYLOAD_TOO_LARGE", "The request body is too large."),
    415: ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type."),
    429: ("RATE_LIMIT_EXCEEDED", "Too many requests; retry later."),
    500: ("INTERNAL_ERROR", "An unexpected error occurred."),
    503: ("UNAVAILABLE", "The service is temporarily unavailable."),
}


# msgspec's own location of a body error, e.g. "... - at `$.data[3].key`" for an array body.
_BODY_LOCATION = re.compile(r" - at `\$\.data(?P<path>(?:\[\d+\]|\.[^`]+)+)`$")


def _body_location(cause: BaseException | None) -> str | None:
    """Where in the body a decoding error lies, when Litestar's own report dropped it.

    Litestar keeps the location of errors inside object bodies but loses it for array bodies
    (it reports just ``data``); the msgspec error it chains still has it.
    """
    if not isinstance(cause, msgspec.ValidationError):
        return None
    match = _BODY_LOCATION.search(str(cause))
    return match.group("path").removeprefix(".") if match else None


def _validation_details(extra: Any, cause: BaseException | None = None) -> list[dict[str, Any]] | None:
    if not isinstance(extra, list):
        return None
    details: list[dict[str, Any]] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        source = item.get("source")
        field = item.get("key")
        message = item.get("message")
        if source == "header" and isinstance(field, str):
            field = field.replace("_", "-")
        if source == "body" and isinstance(message, str):
            missing = _MISSING_FIELD.match(message)
            if missing:
                # msgspec names a missing field in the message, not in the location.
                parent = missing.group("at") or _body_location(cause)
                field = f"{parent}.{missing.group('name')}" if parent else missing.group("name")
                message = "required field is missing"
            elif field == "data":
                # A missing or wrongly typed body is reported under the parameter's name.
                field = _body_location(cause) or "body"
                if message == "'data'":
                    message = "a JSON body is required"
        entry = {"field": field, "message": message}
        if source:
            entry["source"] = source
        details.append(entry)
    return details or None


def _misfiled_body_error(exc: HTTPException) -> list[dict[str, Any]] | None:
    """The details of a body error that Litestar reported as a server error.

    Litestar decides whether a failed parse is the client's fault by the failing key's name, and
    takes a key that is also a dependency's name (``actor`` in ``POST /commands``) for a broken
    dependency: a 500 with no details. The msgspec error it chains says where in the body the
    problem is; only that case (a location inside ``$.data``, the body) is recovered here.
    """
    cause = exc.__cause__
    if not isinstance(exc, InternalServerException) or not isinstance(cause, msgspec.ValidationError):
        return None
    message, found, location = str(cause).partition(" - at `$.data")
    if not found:
        return None
    where = location.removesuffix("`").removeprefix(".")
    missing = _MISSING_FIELD.match(str(cause))
    if missing:
        name = missing.group("name")
        return [
            {
                "field": f"{where}.{name}" if where else name,
                "message": "required field is missing",
                "source": "body",
            }
        ]
    return [{"field": where or "body", "message": message, "source": "body"}]


def _from_http_exception(exc: HTTPException) -> tuple[int, str, str, Any, dict[str, str] | None]:
    if (misfiled := _misfiled_body_error(exc)) is not None:
        return 400, "VALIDATION_ERROR", _validation_message(misfiled) or "Invalid body.", misfiled, None
    status = exc.status_code
    code, default_message = _HTTP_CODES.get(status, ("HTTP_ERROR", "Request failed."))
    if status >= 500:
        return status, code, default_message, None, None
    headers = dict(exc.headers) if exc.headers else None
    if isinstance(exc, ValidationException):
        details = _validation_details(exc.extra, exc.__cause__)
        return 400, code, _validation_message(details) or "The request is not valid.", details, headers
    if status == 400:
        # Litestar raises a bare 400 when the body cannot be decoded at all.
        reason = exc.detail if isinstance(exc.detail, str) else None
        details = [{"field": "body", "message": reason, "source": "body"}] if reason else None
        return 400, code, "The request body is not valid JSON.", details, headers
    return status, code, default_message, None, headers


def _validation_message(details: list[dict[str, Any]] | None) -> str | None:
    if not details:
        return None
    first = details[0]
    where = f"{first.get('field')}" if first.get("field") else "request"
    return f"Invalid {where}: {first.get('message')}"


_CONNECTION_ERRORS = {
    "CannotConnectNowError",
    "ConnectionDoesNotExistError",
    "ConnectionFailureError",
    "InterfaceError",
    # A pooled connection whose last statement was cut off by a restarting server ("another
    # operation is in progress"): the pool drops it on release, the retry gets a fresh one.
    "InternalClientError",
    "AdminShutdownError",
    "CrashShutdownError",
    "TooManyConnectionsError",
}


def _is_unavailable(exc: BaseException) -> bool:
    """Connection-level trouble with the database: refused, dropped, timed out, pool exhausted.

    Looked for along the whole chain: advanced-alchemy wraps SQLAlchemy's pool timeout in its
    RepositoryError, which says nothing itself.
    """
    for error in _chain(exc):
        if isinstance(error, sa_exc.TimeoutError | ConnectionError | asyncio.TimeoutError | TimeoutError):
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.InterfaceError | sa_exc.OperationalError | OSError):
            return True
        if type(error).__name__ in _CONNECTION_ERRORS:
            return True
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's ``orig``, ``__cause__``), outermost first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return found


# What PostgreSQL (SQLSTATE class 22, "data exception") or the driver refused in a value the
# client sent: said without echoing the value or the SQL.
_DATA_EXCEPTIONS = {
    "22021": "text must not contain NUL characters (\\u0000)",
    "22P05": "JSON strings must not contain NUL characters (\\u0000)",
    "22003": "a number is out of range",
    "22008": "a date-time is out of range",
}


def _bad_value(exc: BaseException) -> str | None:
    """Why the database could not take a value of the request, or None if that is not the failure.

    advanced-alchemy reports every failed statement as its IntegrityError, and the driver raises
    on values it cannot encode (a date-time beyond year 9999 in UTC, an integer beyond the
    column's range): the cause decides, so these are a 400 rather than a 409 or a 500. The
    driver's refusals are ``asyncpg.exceptions.DataError``, SQLSTATE 22000, so the SQLSTATE
    covers them as well as the server's.
    """
    for error in _chain(exc):
        sqlstate = getattr(error, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith("22"):
            return _DATA_EXCEPTIONS.get(sqlstate, "a value is out of range or otherwise not acceptable")
    return None


def describe(exc: BaseException) -> tuple[int, str, str, Any, dict[str, str] | None]:
    """(status, code, message, details, headers) for any exception."""
    if isinstance(exc, ApiError):
        return exc.status_code, exc.code, exc.message, exc.details, exc.headers
    if isinstance(exc, HTTPException):
        return _from_http_exception(exc)
    if isinstance(exc, UnicodeDecodeError):
        # msgspec decodes JSON strings as UTF-8 and lets this through; only client input is decoded.
        details = [{"field": "body", "message": "not valid UTF-8", "source": "body"}]
        return 400, "VALIDATION_ERROR", "The request body is not valid UTF-8.", details, None
    if isinstance(exc, RecursionError) and "deserializing" in str(exc):
        # msgspec stops at Python's recursion limit while decoding a deeply nested body.
        details = [{"field": "body", "message": "nested too deeply", "source": "body"}]
        return 400, "VALIDATION_ERROR", "The request body is nested too deeply.", details, None
    if isinstance(exc, aa_exc.NotFoundError):
        return 404, "NOT_FOUND", "No such resource.", None, None
    if (reason := _bad_value(exc)) is not None:
        return 400, "VALIDATION_ERROR", f"Invalid request: {reason}.", [{"message": reason}], None
    if _is_unavailable(exc):
        return 503, "UNAVAILABLE", "The database is unavailable; retry shortly.", None, {"Retry-After": "1"}
    if isinstance(exc, aa_exc.DuplicateKeyError | aa_exc.IntegrityError | sa_exc.IntegrityError):
        return 409, "CONFLICT", "The change conflicts with the current state.", None, None
    return HTTP_500_INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "An unexpected error occurred.", None, None


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    *,
    correlation_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    return Response(
        content=ErrorBody(code=code, message=message, details=details, correlationId=correlation_id),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def exception_to_response(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    status, code, message, details, headers = describe(exc)
    if status >= 500 and code == "INTERNAL_ERROR":
        logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    elif status >= 500:
        reason = getattr(exc, "detail", "") or ""
        logger.warning(
            "%s on %s %s: %s %s", code, request.method, request.url.path, type(exc).__name__, reason
        )
    return error_response(
        status, code, message, details, correlation_id=correlation_id_of(request.scope), headers=headers
    )


async def send_error(scope: Any, send: Any, exc: BaseException) -> None:
    """Answer with the error shape from raw ASGI code that cannot re-raise (a response was
    already produced by the route and held back, so Litestar's handler would refuse)."""
    status, code, message, details, headers = describe(exc)
    if status >= 500 and code == "INTERNAL_ERROR":
        logger.error("unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc)
    body = msgspec.json.encode(
        ErrorBody(code=code, message=message, details=details, correlationId=correlation_id_of(scope))
    )
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
