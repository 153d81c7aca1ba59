"""The one error shape, ``{code, message, details}``, for every failure the API can produce.

Failures are types: domain code raises ``ApiError`` subclasses, and every other exception
(Litestar's, msgspec's, advanced-alchemy's, the database driver's, the unknown) becomes one in
``app.lib.error_handler``, whose one renderer serves Litestar's exception handler and raw ASGI
code alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from litestar import MediaType, Response

if TYPE_CHECKING:
    pass

__all__ = [
    "ApiError",
    "Conflict",
    "ErrorBody",
    "Forbidden",
    "HeadersTooLarge",
    "InternalError",
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
    "error_response",
]


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
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details = details
        self.headers = headers
        if status_code is not None:
            self.status_code = status_code


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


class InternalError(ApiError):
    """Our fault, said without detail; what happened goes to the log."""

    status_code = 500
    default_code = "INTERNAL_ERROR"


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
