"""Rate limits per tenant on the routes that let outsiders create work: ``POST /commands``,
``POST /events`` and ``/hooks/…``.

A route counts when its handler's opt names a limit group (``RATE_LIMIT_OPT``); a key is the
group and the tenant (the ``tenant_id`` path parameter of ``/hooks``, else the ``x-tenant-id``
header). Each key has a fixed window: it opens with the key's first request and ends a minute
later, and a refused request does not count. Beyond the limit the answer is 429
``RATE_LIMIT_EXCEEDED`` in the standard error shape with ``Retry-After``; every counted response
carries the ``RateLimit-*`` headers. Each group counts separately, so a flood of webhooks does
not starve a tenant's commands.

The counts live where the app's ``rate_limit`` store says, the store Litestar's own rate limiting
uses: with Litestar's default in-memory store, in this process (``FixedWindows``), so behind N
API processes a tenant gets up to N times the limit; with any other store (e.g. Litestar's
``RedisStore``), in that store (``StoreWindows``), one limit for every process sharing it.

Written here rather than with Litestar's ``RateLimitMiddleware``: that one is built on the
deprecated ``AbstractMiddleware``, keeps a list of every request's timestamp per key (up to the
limit), JSON-encodes it back into the store on every request, and does so under one process-wide
lock held across three event-loop yields. Every limited request of the process queued behind
that lock; at 500 requests/s it added some 35 ms of waiting to each ``POST /commands``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.stores.memory import MemoryStore

from app.lib.errors import RateLimited

if TYPE_CHECKING:
    from litestar.stores.base import Store
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RATE_LIMIT_OPT", "RATE_LIMIT_STORE", "FixedWindows", "StoreWindows", "TenantRateLimitMiddleware"]

# Route opt: the name of the limit group the route counts against.
RATE_LIMIT_OPT = "rate_limit_group"
# The app's store (``Litestar.stores``) holding the counts; Litestar's rate limiting uses it too.
RATE_LIMIT_STORE = "rate_limit"
_PERIOD = 60  # seconds: the limit is per minute
_SWEEP_AT = 10_000
_LOCK_STRIPES = 64


class FixedWindows:
    """Per-key request counts in fixed windows, in this process's memory, with no awaits."""

    __slots__ = ("_counts", "_period")

    def __init__(self, period: int) -> None:
        self._period = period
        self._counts: dict[str, list[int]] = {}  # key -> [requests in the window, window reset]

    def hit(self, key: str, limit: int) -> tuple[bool, int, int]:
        """Count a request unless the key is at its limit: (allowed, requests, reset time)."""
        now = int(time.time())
        window = self._counts.get(key)
        if window is None or window[1] <= now:
            if len(self._counts) >= _SWEEP_AT:
                self._sweep(now)
            window = self._counts[key] = [0, now + self._period]
        if window[0] >= limit:
            return False, window[0], window[1]
        window[0] += 1
        return True, window[0], window[1]

    def _sweep(self, now: int) -> None:
        # Tenants (and tenantless clients) come and go: drop windows that have ended.
        for key in [key for key, (_, reset) in self._counts.items() if reset <= now]:
            del self._counts[key]


class StoreWindows:
    """The same windows kept in a Litestar ``Store``, shared by every process that uses it.

    A store offers get and set, no increment: a count is read, then written back. Within the
    process a lock per stripe of keys keeps two requests of one key from both reading the same
    count; across processes two such requests may still both pass, as with Litestar's own
    store-backed limit.
    """

    __slots__ = ("_locks", "_period", "store")

    def __init__(self, store: Store, period: int) -> None:
        self.store = store
        self._period = period
        self._locks = [asyncio.Lock() for _ in range(_LOCK_STRIPES)]

    async def hit(self, key: str, limit: int) -> tuple[bool, int, int]:
        """Count a request unless the key is at its limit: (allowed, requests, reset time)."""
        async with self._locks[hash(key) % _LOCK_STRIPES]:
            now = int(time.time())
            count, reset = _decode(await self.store.get(key))
            if reset <= now:
                count, reset = 0, now + self._period
            if count >= limit:
                return False, count, reset
            count += 1
            await self.store.set(key, f"{count} {reset}", expires_in=reset - now)
            return True, count, reset


def _decode(stored: bytes | None) -> tuple[int, int]:
    """(requests, reset time) of a stored window; an absent or unreadable one has ended."""
    count, _, reset = (stored or b"").partition(b" ")
    return (int(count), int(reset)) if count.isdigit() and reset.isdigit() else (0, 0)


class TenantRateLimitMiddleware(ASGIMiddleware):
    """Counts the requests of limited routes per group and tenant; refuses those beyond the limit."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, requests_per_minute: int) -> None:
        self.limit = requests_per_minute
        self._local = FixedWindows(_PERIOD)
        self._shared: StoreWindows | None = None

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        group = None if handler is None else handler.opt.get(RATE_LIMIT_OPT)
        if group is None:
            await next_app(scope, receive, send)  # most routes have no limit: cost them nothing
            return
        key = f"{group}:{_tenant(scope)}"
        windows = self._windows(scope["litestar_app"].stores.get(RATE_LIMIT_STORE))
        if windows is None:
            allowed, count, reset = self._local.hit(key, self.limit)
        else:
            allowed, count, reset = await windows.hit(f"tenant-rate-limit::{key}", self.limit)
        headers = self._headers(count, reset)
        if not allowed:
            raise RateLimited(
                "Too many requests for this tenant; retry later.",
                headers={"Retry-After": str(max(1, reset - int(time.time()))), **headers},
            )
        await next_app(scope, receive, _with_headers(send, headers))

    def _windows(self, store: Store) -> StoreWindows | None:
        """The windows in ``store``; None for Litestar's default in-memory store (in-process counts)."""
        if isinstance(store, MemoryStore):
            return None
        if self._shared is None or self._shared.store is not store:
            self._shared = StoreWindows(store, _PERIOD)
        return self._shared

    def _headers(self, count: int, reset: int) -> dict[str, str]:
        return {
            "RateLimit-Policy": f"{self.limit}; w={_PERIOD}",
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.limit - count, 0)),
            "RateLimit-Reset": str(max(reset - int(time.time()), 0)),
        }


def _tenant(scope: Scope) -> str:
    # The path names the tenant of /hooks; a header there must not pick another tenant's bucket.
    tenant = scope.get("path_params", {}).get("tenant_id")
    if tenant:
        return str(tenant)
    header = next((value for name, value in scope.get("headers", ()) if name.lower() == b"x-tenant-id"), b"")
    if header:
        return header.decode("latin-1")
    # No tenant: the route will refuse the request anyway; count it per client address.
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def _with_headers(send: Send, headers: dict[str, str]) -> Send:
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

    async def send_wrapper(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *encoded]
        await send(message)

    return send_wrapper
