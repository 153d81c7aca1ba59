"""Any exception as the ``ApiError`` a client is told about, and the one renderer of it.

Litestar's failures (validation, unknown route, wrong method, body too large), msgspec's,
advanced-alchemy's and the database driver's each get a code, a message and, where the client
can fix something, details; anything else is an ``InternalError``, logged with its stack trace
and said without detail (no stack trace, SQL or framework text reaches a client).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec
from advanced_alchemy import exceptions as aa_exc
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from sqlalchemy import exc as sa_exc

from app.lib.correlation import correlation_id_of
from app.lib.errors import (
    ApiError,
    Conflict,
    ErrorBody,
    InternalError,
    NotFound,
    Unavailable,
    ValidationFailed,
    error_response,
)

if TYPE_CHECKING:
    from litestar import Request, Response

__all__ = ["as_api_error", "exception_to_response", "send_error"]

logger = logging.getLogger("app.errors")

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


def _from_http_exception(exc: HTTPException) -> ApiError:
    if (misfiled := _misfiled_body_error(exc)) is not None:
        return ValidationFailed(_validation_message(misfiled) or "Invalid body.", details=misfiled)
    status = exc.status_code
    code, default_message = _HTTP_CODES.get(status, ("HTTP_ERROR", "Request failed."))
    if status >= 500:
        return ApiError(default_message, code=code, status_code=status)
    headers = dict(exc.headers) if exc.headers else None
    if isinstance(exc, ValidationException):
        details = _validation_details(exc.extra, exc.__cause__)
        message = _validation_message(details) or "The request is not valid."
        return ValidationFailed(message, code=code, details=details, headers=headers)
    if status == 400:
        # Litestar raises a bare 400 when the body cannot be decoded at all.
        reason = exc.detail if isinstance(exc.detail, str) else None
        details = [{"field": "body", "message": reason, "source": "body"}] if reason else None
        return ValidationFailed("The request body is not valid JSON.", details=details, headers=headers)
    return ApiError(default_message, code=code, headers=headers, status_code=status)


def _validation_message(details: list[dict[str, Any]] | None) -> str | None:
    if not details:
        return None
    first = details[0]
    where = f"{first.get('field')}" if first.get("field") else "request"
    return f"Invalid {where}: {first.get('message')}"


# Connection trouble by SQLSTATE, whichever class carries it (asyncpg's own, or SQLAlchemy's
# translation of it): a connection exception (class 08), the server shutting down, crashed or
# starting (57P01-57P03), no connection slot left (53300).
_CONNECTION_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")

# ...and the driver's failures, which have no SQLSTATE.
_CONNECTION_ERRORS = (
    asyncpg.exceptions.InterfaceError,
    # A pooled connection whose last statement was cut off by a restarting server ("another
    # operation is in progress"): the pool drops it on release, the retry gets a fresh one.
    asyncpg.exceptions.InternalClientError,
)


def _rolled_back_by_the_server(exc: BaseException) -> bool:
    """PostgreSQL undid the transaction to let a concurrent one through (SQLSTATE class 40: a
    deadlock, a serialization failure). Nothing of the request stayed, so it is safe to retry:
    a 503 with Retry-After, like the other transient failures, rather than a 500."""
    return any(str(getattr(error, "sqlstate", "") or "").startswith("40") for error in _chain(exc))


def _is_unavailable(exc: BaseException) -> bool:
    """Connection-level trouble with the database: refused, dropped, timed out, pool exhausted.

    Looked for along the whole chain: advanced-alchemy wraps SQLAlchemy's pool timeout in its
    RepositoryError, which says nothing itself. The chain here includes what was being handled
    when the exception was raised: cleaning up after a dropped connection (closing a session,
    rolling back) can fail in turn, and that failure is the outage's, not a bug's.
    """
    for error in _chain(exc, implicit=True):
        if isinstance(error, sa_exc.TimeoutError | ConnectionError | asyncio.TimeoutError | TimeoutError):
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.InterfaceError | sa_exc.OperationalError | OSError):
            return True
        if isinstance(error, _CONNECTION_ERRORS):
            return True
        if str(getattr(error, "sqlstate", "") or "").startswith(_CONNECTION_SQLSTATES):
            return True
    return False


def _chain(exc: BaseException, *, implicit: bool = False) -> list[BaseException]:
    """The exception and what it wraps (SQLAlchemy's ``orig``, ``__cause__``), outermost first;
    with ``implicit``, also the exception being handled when one was raised (``__context__``)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in found):
        found.append(current)
        wrapped = getattr(current, "orig", None) or current.__cause__
        if wrapped is None and implicit and not current.__suppress_context__:
            wrapped = current.__context__
        current = wrapped
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


def as_api_error(exc: BaseException) -> ApiError:
    """Any exception as the ``ApiError`` a client is told about."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        return _from_http_exception(exc)
    if isinstance(exc, UnicodeDecodeError):
        # msgspec decodes JSON strings as UTF-8 and lets this through; only client input is decoded.
        return _body_error("The request body is not valid UTF-8.", "not valid UTF-8")
    if isinstance(exc, RecursionError) and "deserializing" in str(exc):
        # msgspec stops at Python's recursion limit while decoding a deeply nested body.
        return _body_error("The request body is nested too deeply.", "nested too deeply")
    if isinstance(exc, aa_exc.NotFoundError):
        return NotFound("No such resource.")
    if (reason := _bad_value(exc)) is not None:
        return ValidationFailed(f"Invalid request: {reason}.", details=[{"message": reason}])
    if _rolled_back_by_the_server(exc):
        return Unavailable(
            "The change collided with a concurrent one and was undone; retry it.",
            headers={"Retry-After": "1"},
        )
    if _is_unavailable(exc):
        return Unavailable("The database is unavailable; retry shortly.", headers={"Retry-After": "1"})
    if isinstance(exc, aa_exc.DuplicateKeyError | aa_exc.IntegrityError | sa_exc.IntegrityError):
        return Conflict("The change conflicts with the current state.")
    return InternalError("An unexpected error occurred.")


def _body_error(message: str, reason: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": "body", "message": reason, "source": "body"}])


def _logged(exc: BaseException, method: str | None, path: str | None) -> ApiError:
    """The exception as an ``ApiError``; a 5xx is logged (with its stack trace when unexpected)."""
    error = as_api_error(exc)
    if isinstance(error, InternalError):
        logger.error("unhandled error on %s %s", method, path, exc_info=exc)
    elif error.status_code >= 500:
        reason = getattr(exc, "detail", "") or ""
        logger.warning("%s on %s %s: %s %s", error.code, method, path, type(exc).__name__, reason)
    return error


def exception_to_response(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Litestar's exception handler."""
    error = _logged(exc, request.method, request.url.path)
    return error_response(
        error.status_code,
        error.code,
        error.message,
        error.details,
        correlation_id=correlation_id_of(request.scope),
        headers=error.headers,
    )


async def send_error(scope: Any, send: Any, exc: BaseException) -> None:
    """Answer with the error shape from raw ASGI code that cannot re-raise (a response was
    already produced by the route and held back, so Litestar's handler would refuse)."""
    error = _logged(exc, scope.get("method"), scope.get("path"))
    body = msgspec.json.encode(
        ErrorBody(
            code=error.code,
            message=error.message,
            details=error.details,
            correlationId=correlation_id_of(scope),
        )
    )
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (error.headers or {}).items()
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
