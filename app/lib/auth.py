"""Bearer-token authentication and role checks.

Litestar's authentication middleware does the plumbing (it runs for every route except the
excluded ones and stores the actor on ``request.user``); this module only decides what a token
means. ``AUTH_TOKENS`` maps tokens to actors and roles; when it is unset, any non-empty token is
the development admin ``dev``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.config import Actor, Settings
from app.lib.errors import Forbidden, Unauthorized

if TYPE_CHECKING:
    from litestar import Request
    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler

__all__ = [
    "BROWSER_AUTH_OPT",
    "PUBLIC_OPT",
    "BearerAuthMiddleware",
    "admin_guard",
    "bearer_token",
    "provide_actor",
    "require_admin",
]

# Route opt flags: no authentication at all; or also accept ?access_token= / an access_token
# cookie (for EventSource, which cannot send headers).
PUBLIC_OPT = "public"
BROWSER_AUTH_OPT = "browser_auth"


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    handler = connection.scope.get("route_handler")
    if handler is not None and handler.opt.get(BROWSER_AUTH_OPT):
        token = connection.query_params.get("access_token") or connection.cookies.get("access_token")
        if token and token.strip():
            return token.strip()
    return None


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = bearer_token(connection)
        if token is None:
            raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'.")
        settings: Settings = connection.app.state.settings
        actor = settings.actor_for_token(token)
        if actor is None:
            raise Unauthorized("The bearer token is not valid.")
        return AuthenticationResult(user=actor, auth=token)


async def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    return request.user


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("This operation requires the admin role.")


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Route guard: only callers with the admin role (403 FORBIDDEN otherwise).

    OPTIONS (CORS preflight) carries no credentials and is answered by Litestar itself.
    """
    if connection.scope.get("method") == "OPTIONS":
        return
    actor = connection.scope.get("user")
    if actor is None:
        raise Unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'.")
    require_admin(actor)
