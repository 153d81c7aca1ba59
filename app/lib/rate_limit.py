"""Rate limits per tenant on the routes that let outsiders create work: ``POST /commands``,
``POST /events`` and ``/hooks/…``.

Litestar's ``RateLimitMiddleware`` does the counting (a sliding window per key in an app store);
this module says which routes count (those whose handler opt names a limit group), what a key
is (the group and the tenant: the ``tenant_id`` path parameter of ``/hooks``, else the
``x-tenant-id`` header), and answers a refusal in the standard error shape with ``Retry-After``. Each group
counts separately, so a flood of webhooks does not starve a tenant's commands.

The default store lives in memory: the limit holds per process. Behind N API processes a tenant
gets up to N times the limit unless the app's ``rate_limit`` store is replaced by a shared one
(e.g. Litestar's ``RedisStore``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from litestar.middleware.rate_limit import RateLimitConfig, RateLimitMiddleware

from app.lib.errors import RateLimited

if TYPE_CHECKING:
    from litestar import Request
    from litestar.types import Receive, Scope, Send

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


async def _is_limited(request: Request[Any, Any, Any]) -> bool:
    return _group(request) is not None


class TenantRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's middleware, refusing with 429 ``RATE_LIMIT_EXCEEDED`` and ``Retry-After``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if handler is None or handler.opt.get(RATE_LIMIT_OPT) is None:
            await self.app(scope, receive, send)  # most routes have no limit: cost them nothing
            return
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        if not await self.should_check_request(request=request):
            await self.app(scope, receive, send)
            return
        store = self.config.get_store_from_app(app)
        key = self.cache_key_from_request(request)
        async with self._lock:
            history = await self.retrieve_cached_history(key, store)
            if len(history.history) >= self.max_requests:
                retry_after = max(1, history.reset - int(time.time()))
                raise RateLimited(
                    "Too many requests for this tenant; retry later.",
                    headers={"Retry-After": str(retry_after), **self.create_response_headers(history)},
                )
            await self.set_cached_history(key=key, cache_object=history, store=store)
        await self.app(scope, receive, self.create_send_wrapper(send=send, cache_object=history))


def rate_limit_config(requests_per_minute: int) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("minute", requests_per_minute),
        identifier_for_request=_identifier,
        check_throttle_handler=_is_limited,
        middleware_class=TenantRateLimitMiddleware,
    )
