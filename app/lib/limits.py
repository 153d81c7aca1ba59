"""A cap on the total size of a request's headers.

Uvicorn's default parser (httptools) takes header blocks of any size, so without this a client
could send megabytes of headers that every middleware then scans. Past the cap the request is
refused before anything else reads it, with 431 in the usual error shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from app.lib.error_handler import send_error
from app.lib.errors import HeadersTooLarge

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Receive, Scope, Send

__all__ = ["MAX_HEADER_BYTES", "HeaderLimitMiddleware"]

# Generous for browsers (cookies included) and proxies, which commonly stop at 8-32 KiB.
MAX_HEADER_BYTES = 64 * 1024


class HeaderLimitMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        size = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
        if size > MAX_HEADER_BYTES:
            await send_error(
                scope,
                send,
                HeadersTooLarge(
                    f"The request headers are too large ({size} bytes; at most {MAX_HEADER_BYTES}).",
                    details=[{"field": "headers", "message": f"at most {MAX_HEADER_BYTES} bytes in all"}],
                ),
            )
            return
        await next_app(scope, receive, send)
