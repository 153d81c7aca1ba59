"""Correlation ids: read from ``Correlation-Id`` / ``X-Correlation-Id`` or generated, bound to
every log line of the request, echoed on every response (errors and unknown routes included).
The same middleware writes the access log: one line per request with method, route, status,
duration, correlation id, tenant and actor. It never logs headers or query strings, where
tokens travel. Being the outermost layer, it also refuses headers past their cap
(``app.lib.limits``) before any other layer reads them.

The id lives in the ASGI scope's state so that the middleware (which binds it for logging), the
exception handler and the ``before_send`` hook (which sees responses no route produced) all agree.
"""

from __future__ import annotations

import re
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import ASGIMiddleware
from uuid_utils.compat import uuid7

from app.lib.limits import headers_too_large
from app.lib.logging import FastLogger

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CORRELATION_HEADER",
    "CorrelationIdMiddleware",
    "add_correlation_header",
    "correlation_id_of",
    "current_correlation_id",
]

CORRELATION_HEADER = "Correlation-Id"
_HEADER_NAMES = (b"correlation-id", b"x-correlation-id")
_STATE_KEY = "correlation_id"
_ACCEPTABLE = re.compile(r"^[\x21-\x7e]{1,128}$")
_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def current_correlation_id() -> str | None:
    return _current.get()


def correlation_id_of(scope: Scope | dict[str, Any]) -> str:
    state = scope.setdefault("state", {})  # type: ignore[misc]
    value = state.get(_STATE_KEY)
    if value is None:
        value = _from_headers(scope) or str(uuid7())
        state[_STATE_KEY] = value
    return value


def _from_headers(scope: Scope | dict[str, Any]) -> str | None:
    found: dict[bytes, str] = {}
    for name, raw in scope.get("headers", ()):
        lowered = name.lower()
        if lowered in _HEADER_NAMES and lowered not in found:
            try:
                text = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                continue
            if _ACCEPTABLE.match(text):
                found[lowered] = text
    for name in _HEADER_NAMES:
        if name in found:
            return found[name]
    return None


access_log = FastLogger("app.access")


class CorrelationIdMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        correlation_id = correlation_id_of(scope)
        token = _current.set(correlation_id)
        started = time.perf_counter()
        status = 500

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        # Bound by token rather than with ``bound_contextvars``: its generator frame would live as
        # long as the request, a stream's included.
        bound = structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
        try:
            if scope["type"] == "http" and (refused := headers_too_large(scope)) is not None:
                raise refused  # before any other layer scans the headers
            await next_app(scope, receive, send_and_watch)
        except Exception as error:
            # Raised by a middleware inside this one (say a 401 from authentication) and answered
            # by the exception handler outside it: log the status the client gets.
            status = getattr(error, "status_code", 500)
            raise
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            _current.reset(token)
            if scope["type"] == "http":
                _log_request(scope, status, time.perf_counter() - started, correlation_id)


def _log_request(scope: Scope, status: int, seconds: float, correlation_id: str) -> None:
    tenant = None
    for name, value in scope.get("headers", ()):
        if name == b"x-tenant-id":
            tenant = value.decode("latin-1")[:64]
            break
    user = scope.get("user")
    access_log.info(
        "request",
        method=scope.get("method"),
        route=scope.get("path_template") or scope.get("path"),
        status=status,
        duration_ms=round(seconds * 1000, 2),
        correlation_id=correlation_id,
        tenant_id=tenant,
        actor_id=getattr(user, "id", None),
    )


async def add_correlation_header(message: Message, scope: Scope) -> None:
    """App-level ``before_send`` hook: every HTTP response carries the correlation id."""
    if message["type"] == "http.response.start":
        MutableScopeHeaders.from_message(message)[CORRELATION_HEADER] = correlation_id_of(scope)
