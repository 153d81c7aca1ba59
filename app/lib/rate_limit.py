"""Rate limits per tenant and route family (SPEC 11): ``commands`` (``POST /commands``),
``events`` (``POST /events``), ``hooks`` (``/hooks/…``) and ``writes`` (every other POST, PUT,
PATCH and DELETE). Reads are not limited.

A key is the family and the tenant (the ``tenant_id`` path parameter of ``/hooks``, else the
``x-tenant-id`` header). Each family has a limit per minute (``RATE_LIMIT_<FAMILY>_PER_MINUTE``),
and ``TENANT_LIMITS`` overrides it per tenant. Beyond the limit the answer is 429
``RATE_LIMIT_EXCEEDED`` in the standard error shape with ``Retry-After``; every counted response
carries the ``RateLimit-*`` headers. Each family counts separately, so a flood of webhooks does
not starve a tenant's commands.

Where the counts live: in this process (``FixedWindows``: no await, no lock), so behind N API
processes a tenant gets up to N times the limit; or, with ``RATE_LIMIT_STORE_URL``, in Redis
(``RedisWindows``), one limit for every process sharing it.

Written here rather than with Litestar's ``RateLimitMiddleware``: that one is built on the
deprecated ``AbstractMiddleware``, keeps a list of every request's timestamp per key (up to the
limit), JSON-encodes it back into the store on every request, and does so under one process-wide
lock held across three event-loop yields. Every limited request of the process queued behind
that lock; at 500 requests/s it added some 35 ms of waiting to each ``POST /commands``. Redis's
own ``INCR`` makes a shared count atomic, which a get-then-set store cannot.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import redis
import redis.asyncio
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware

from app.lib.errors import RateLimited

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from app.config import Settings

__all__ = ["RATE_LIMIT_OPT", "FixedWindows", "RateLimits", "RedisWindows", "TenantRateLimitMiddleware"]

logger = logging.getLogger("app.rate_limit")

# Route opt: the route family a route counts against (commands, events, hooks).
RATE_LIMIT_OPT = "rate_limit_group"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_PERIOD = 60  # seconds: the limit is per minute
_SWEEP_AT = 10_000


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


class RedisWindows:
    """The same windows in Redis, shared by every API process that names it
    (``RATE_LIMIT_STORE_URL``): one ``INCR`` of the window's key and its expiry, in one atomic
    round trip, so two processes can never both take the last request of a window.

    When Redis cannot be reached the request passes (a limit is a guard, not a reason to stop
    serving), and the outage is logged once a minute.
    """

    def __init__(self, url: str, period: int) -> None:
        self.client = redis.asyncio.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._period = period
        self._warned_at = 0.0

    async def hit(self, key: str, limit: int) -> tuple[bool, int, int]:
        now = time.time()
        start = int(now // self._period) * self._period
        reset = start + self._period
        name = f"scriptworks:rate-limit:{key}:{start}"
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                count, _ = await pipe.incr(name).expire(name, 2 * self._period).execute()
        except (redis.RedisError, OSError) as error:
            if now - self._warned_at > self._period:
                self._warned_at = now
                logger.warning("rate limits not counted: the shared store is unreachable (%s)", error)
            return True, 0, reset
        return count <= limit, min(count, limit), reset

    async def close(self) -> None:
        await self.client.aclose()


class RateLimits:
    """What each tenant may send per minute and route family, and where it is counted."""

    def __init__(self, settings: Settings) -> None:
        self.defaults = settings.rate_limits_per_minute
        self.per_tenant = settings.tenant_limits
        self.local = FixedWindows(_PERIOD)
        self.shared = (
            RedisWindows(settings.rate_limit_store_url, _PERIOD)
            if settings.rate_limit_store_url is not None
            else None
        )

    def limit(self, tenant: str, family: str) -> int:
        override = self.per_tenant.get(tenant)
        if override is not None and family in override:
            return override[family]
        return self.defaults[family]

    async def close(self) -> None:
        if self.shared is not None:
            await self.shared.close()


class TenantRateLimitMiddleware(ASGIMiddleware):
    """Counts requests per route family and tenant; refuses those beyond the tenant's limit."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        # Reads have no limit: they pass by without entering ``handle`` (one coroutine frame
        # less per request, kept for a stream's whole life).
        self.should_bypass_for_scope = _unlimited

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        family = _family(scope)
        assert family is not None  # see _unlimited
        tenant = _tenant(scope)
        limit = self.limits.limit(tenant, family)
        key = f"{family}:{tenant}"
        if self.limits.shared is None:
            allowed, count, reset = self.limits.local.hit(key, limit)
        else:
            allowed, count, reset = await self.limits.shared.hit(key, limit)
        headers = _headers(limit, count, reset)
        if not allowed:
            raise RateLimited(
                f"Too many {family} requests for this tenant; retry later.",
                headers={"Retry-After": str(max(1, reset - int(time.time()))), **headers},
            )
        await next_app(scope, receive, _with_headers(send, headers))


def _unlimited(scope: Scope) -> bool:
    return _family(scope) is None


def _family(scope: Scope) -> str | None:
    """The route family a request counts against: the handler's own (commands, events, hooks),
    else ``writes`` for any other change, else none."""
    handler = scope.get("route_handler")
    family = None if handler is None else handler.opt.get(RATE_LIMIT_OPT)
    if family is None and scope.get("method") in _WRITES:
        family = "writes"
    return family


def _headers(limit: int, count: int, reset: int) -> dict[str, str]:
    return {
        "RateLimit-Policy": f"{limit}; w={_PERIOD}",
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(limit - count, 0)),
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
