"""Rate limits per tenant on the routes that let outsiders create work: ``POST /commands``,
``POST /events`` and ``/hooks/…``.

Litestar's ``RateLimitMiddleware`` and ``RateLimitConfig`` frame it (a fixed window per key,
the ``RateLimit-*`` headers, the ``rate_limit`` store); this module says which routes count
(those whose handler opt names a limit group), what a key is (the group and the tenant: the
``tenant_id`` path parameter of ``/hooks``, else the ``x-tenant-id`` header), and answers a
refusal in the standard error shape with ``Retry-After``. Each group counts separately, so a
flood of webhooks does not starve a tenant's commands.

With the default in-memory store the counts live in the process (``FixedWindows``; see there
why) and the limit holds per process: behind N API processes a tenant gets up to N times the
limit unless the app's ``rate_limit`` store is replaced by a shared one (e.g. Litestar's
``RedisStore``), which is then used as Litestar uses it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from litestar.middleware.rate_limit import DURATION_VALUES, RateLimitConfig, RateLimitMiddleware
from litestar.stores.memory import MemoryStore

from app.lib.errors import RateLimited

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import Message, Receive, Scope, Send

__all__ = ["RATE_LIMIT_OPT", "rate_limit_config"]

# Route opt: the name of the limit group the route counts against.
RATE_LIMIT_OPT = "rate_limit_group"


def _group(request: Request[Any, Any, Any]) -> str | None:
    handler = request.scope.get("route_handler")
    return None if handler is None else handler.opt.get(RATE_LIMIT_OPT)


def _identifier(request: Request[Any, Any, Any]) -> str:
    # The path names the tenant of /hooks; a header there must not pick another tenant's bucket.
    tenant = request.path_params.get("tenant_id") or request.headers.get("x-tenant-id")
    if not tenant:
        # No tenant: the route will refuse the request anyway; count it per client address.
        tenant = f"address:{request.client.host if request.client else 'unknown'}"
    return f"{_group(request)}:{tenant}"


class FixedWindows:
    """Per-key request counts in fixed windows, in this process's memory, with no awaits.

    Written here rather than taken from Litestar's middleware as is: its in-memory path keeps a
    list of every request's timestamp per key (up to the limit), JSON-encodes it back into the
    store on every request, and does so under one process-wide lock held across three
    event-loop yields (the lock and the store's own locks). Every limited request of the process
    queues behind that lock; at 500 requests/s it added some 35 ms of waiting to each
    ``POST /commands``. The window rule is Litestar's (a window opens with a key's first request
    and resets a period later); a count replaces the list.
    """

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


_SWEEP_AT = 10_000


@dataclass
class TenantRateLimitConfig(RateLimitConfig):
    windows: FixedWindows = field(default_factory=lambda: FixedWindows(DURATION_VALUES["minute"]))


class TenantRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's middleware, refusing with 429 ``RATE_LIMIT_EXCEEDED`` and ``Retry-After``.

    Counts in ``FixedWindows`` while the ``rate_limit`` store is the default in-memory one; a
    shared store configured for that name (e.g. Litestar's ``RedisStore``) is used as Litestar
    uses it, for one limit across processes.
    """

    config: TenantRateLimitConfig

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if handler is None or handler.opt.get(RATE_LIMIT_OPT) is None:
            await self.app(scope, receive, send)  # most routes have no limit: cost them nothing
            return
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        store = self.config.get_store_from_app(app)
        key = self.cache_key_from_request(request)
        if isinstance(store, MemoryStore):
            allowed, count, reset = self.config.windows.hit(key, self.max_requests)
            headers = self._headers(count, reset)
            if not allowed:
                self._refuse(reset, headers)
        else:
            async with self._lock:
                history = await self.retrieve_cached_history(key, store)
                headers = self.create_response_headers(history)
                if len(history.history) >= self.max_requests:
                    self._refuse(history.reset, headers)
                await self.set_cached_history(key=key, cache_object=history, store=store)
                headers = self.create_response_headers(history)
        await self.app(scope, receive, self._with_headers(send, headers))

    @staticmethod
    def _refuse(reset: int, headers: dict[str, str]) -> NoReturn:
        raise RateLimited(
            "Too many requests for this tenant; retry later.",
            headers={"Retry-After": str(max(1, reset - int(time.time()))), **headers},
        )

    def _headers(self, count: int, reset: int) -> dict[str, str]:
        # The headers of Litestar's ``create_response_headers``, from a count.
        config = self.config
        return {
            config.rate_limit_policy_header_key: f"{self.max_requests}; w={DURATION_VALUES[self.unit]}",
            config.rate_limit_limit_header_key: str(self.max_requests),
            config.rate_limit_remaining_header_key: str(max(self.max_requests - count, 0)),
            config.rate_limit_reset_header_key: str(max(reset - int(time.time()), 0)),
        }

    @staticmethod
    def _with_headers(send: Send, headers: dict[str, str]) -> Send:
        encoded = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
        ]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *encoded]
            await send(message)

        return send_wrapper


def rate_limit_config(requests_per_minute: int) -> TenantRateLimitConfig:
    return TenantRateLimitConfig(
        rate_limit=("minute", requests_per_minute),
        windows=FixedWindows(DURATION_VALUES["minute"]),
        identifier_for_request=_identifier,
        middleware_class=TenantRateLimitMiddleware,
    )
