"""Bearer authentication: what a token means (SPEC 3.1).

Litestar's authentication middleware does the plumbing (it runs for every route except the
public ones and stores the principal on ``request.user``); ``Authenticator`` decides what a token
stands for, in this order:

1. a stream ticket (a token this service minted; accepted on ``/events/stream`` only);
2. a static token of ``AUTH_TOKENS``;
3. a JWT, when ``AUTH_JWT_SECRET`` or ``AUTH_JWT_JWKS`` is set;
4. in development mode (none of those configured), any non-empty token: the admin ``dev`` of
   every tenant.

Anything else is 401 with ``WWW-Authenticate``. Tokens are never logged or echoed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from app.config import ConfigError
from app.lib.access import enforce
from app.lib.errors import Unauthorized
from app.lib.principals import DEV_PRINCIPAL, Principal
from app.lib.tokens import InvalidToken, JwtVerifier, StreamTickets, looks_like_jwt

if TYPE_CHECKING:
    from litestar import Request
    from litestar.connection import ASGIConnection

    from app.config import Settings

__all__ = [
    "PUBLIC_OPT",
    "STREAM_AUTH_OPT",
    "Authenticator",
    "BearerAuthMiddleware",
    "MissingToken",
    "bearer_token",
    "check_bind_address",
    "provide_actor",
    "warn_development_mode",
]

logger = logging.getLogger("app.auth")

# Route opt flags: no authentication at all; or the event stream's rules (also ?access_token= and
# an access_token cookie, for EventSource, which cannot send headers; and stream tickets).
PUBLIC_OPT = "public"
STREAM_AUTH_OPT = "stream_auth"


class MissingToken(Unauthorized):
    def __init__(self) -> None:
        super().__init__(
            "Missing bearer token: send 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": 'Bearer realm="scriptworks"'},
        )


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any], *, stream: bool = False) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if stream:
        token = connection.query_params.get("access_token") or connection.cookies.get("access_token")
        if token and token.strip():
            return token.strip()
    return None


class Authenticator:
    """Turns a token into a principal; one per app, on ``app.state.authenticator``."""

    def __init__(self, settings: Settings, ticket_key: Callable[[], Awaitable[bytes]]) -> None:
        self.static_tokens = settings.auth_tokens
        self.development = settings.development_auth
        self.tickets = StreamTickets(settings.stream_ticket_seconds, ticket_key)
        self.jwt = (
            JwtVerifier(
                secret=settings.auth_jwt_secret,
                jwks=settings.auth_jwt_jwks,
                issuer=settings.auth_jwt_issuer,
                audience=settings.auth_jwt_audience,
                roles_claim=settings.auth_jwt_roles_claim,
                tenants_claim=settings.auth_jwt_tenants_claim,
                jwks_cooldown_seconds=settings.auth_jwt_jwks_cooldown_seconds,
            )
            if settings.uses_jwt
            else None
        )

    async def principal(self, token: str, *, stream: bool = False) -> Principal:
        if looks_like_jwt(token) and StreamTickets.is_ticket(token):
            if not stream:
                raise InvalidToken("A stream ticket opens /events/stream and nothing else.")
            return await self.tickets.principal(token)
        static = self.static_tokens.get(token)
        if static is not None:
            return static
        if self.jwt is not None and looks_like_jwt(token):
            return await self.jwt.principal(token)
        if self.development:
            return DEV_PRINCIPAL
        raise InvalidToken()


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        handler = connection.scope.get("route_handler")
        stream = handler is not None and bool(handler.opt.get(STREAM_AUTH_OPT))
        token = bearer_token(connection, stream=stream)
        if token is None:
            raise MissingToken()
        authenticator: Authenticator = connection.app.state.authenticator
        principal = await authenticator.principal(token, stream=stream)
        enforce(connection.scope, principal)  # the role table (app.lib.access), before anything else
        return AuthenticationResult(user=principal, auth=None)


async def provide_actor(request: Request[Any, Any, Any]) -> Principal:
    return request.user


_LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


def check_bind_address(settings: Settings, host: str | None) -> None:
    """Development mode serves every tenant to any token: refuse to listen beyond this machine
    unless AUTH_DEV_MODE=true says so explicitly. Raises ``ConfigError``."""
    if not settings.development_auth or settings.auth_dev_mode or host is None:
        return
    if host in _LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host.strip("[]")).is_loopback:
            return
    except ValueError:
        pass
    raise ConfigError(
        f"Refusing to listen on {host}: no AUTH_TOKENS, AUTH_JWT_SECRET or AUTH_JWT_JWKS is set, so any "
        "token would be an admin of every tenant. Configure authentication, or set AUTH_DEV_MODE=true "
        "to serve development mode beyond this machine on purpose."
    )


def warn_development_mode(settings: Settings) -> None:
    if settings.development_auth:
        logger.warning(
            "DEVELOPMENT MODE: no AUTH_TOKENS, AUTH_JWT_SECRET or AUTH_JWT_JWKS is set; ANY bearer token is "
            "the admin 'dev' of EVERY tenant. Never run this way where others can reach the server."
        )
