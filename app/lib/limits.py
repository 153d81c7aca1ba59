"""A cap on the total size of a request's headers.

Uvicorn's default parser (httptools) takes header blocks of any size, so without this a client
could send megabytes of headers that every middleware then scans. Past the cap the request is
refused with 431 in the usual error shape, by the outermost layer (``app.lib.correlation``),
before any other middleware reads the headers. A check rather than a middleware layer of its
own: a layer costs every request a coroutine frame, and a stream keeps it for its whole life.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.lib.errors import HeadersTooLarge

if TYPE_CHECKING:
    from litestar.types import Scope

__all__ = ["MAX_HEADER_BYTES", "headers_too_large"]

# Generous for browsers (cookies included) and proxies, which commonly stop at 8-32 KiB.
MAX_HEADER_BYTES = 64 * 1024


def headers_too_large(scope: Scope) -> HeadersTooLarge | None:
    """The 431 for a request whose headers pass MAX_HEADER_BYTES in all, else None."""
    size = sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
    if size <= MAX_HEADER_BYTES:
        return None
    return HeadersTooLarge(
        f"The request headers are too large ({size} bytes; at most {MAX_HEADER_BYTES}).",
        details=[{"field": "headers", "message": f"at most {MAX_HEADER_BYTES} bytes in all"}],
    )
