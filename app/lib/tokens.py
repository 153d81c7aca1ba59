"""Signed tokens: JWT bearer tokens from an identity provider, and the stream tickets this
service mints itself. PyJWT does the cryptography and keeps the JWK set (fetched, cached, and
refreshed when a token names a key id it has not seen); this module only says which algorithms
and claims a principal needs.
"""

from __future__ import annotations

import datetime
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import jwt
from jwt import PyJWK, PyJWKClient

from app.lib.errors import Unauthorized
from app.lib.principals import ALL_TENANTS, ROLES, Principal

logger = logging.getLogger("app.auth")

__all__ = [
    "STREAM_TICKET_KID",
    "InvalidToken",
    "JwtVerifier",
    "StreamTickets",
    "looks_like_jwt",
]

# Algorithms a JWK set may sign with (asymmetric only: an "oct" key in a published set would be
# a shared secret anyone can read). HS256 is accepted only with AUTH_JWT_SECRET.
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
LEEWAY_SECONDS = 30
STREAM_TICKET_KID = "scriptworks-stream-ticket"
STREAM_TICKET_AUDIENCE = "scriptworks:events-stream"


class InvalidToken(Unauthorized):
    """A token was sent but does not verify (RFC 6750's ``invalid_token``). The message never
    quotes the token."""

    def __init__(self, message: str = "The bearer token is not valid.") -> None:
        super().__init__(
            message,
            headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{message}"'},
        )


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken() from None


class _FileJwksClient(PyJWKClient):
    """A JWK set read from a file, with PyJWKClient's caching and refresh-on-unknown-kid.

    PyJWKClient fetches over http(s) only; its ``fetch_data`` is the documented point to
    override for another source. The URI passed up is a placeholder that is never opened.
    """

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__("https://jwks.file.invalid/", **kwargs)
        self.path = Path(path)

    def fetch_data(self) -> Any:
        return json.loads(self.path.read_text())


class JwtVerifier:
    """Verifies bearer JWTs: HS256 with ``AUTH_JWT_SECRET``, RS256/ES256/EdDSA against the JWK
    set of ``AUTH_JWT_JWKS``; ``exp`` required, ``nbf`` honoured, issuer and audience checked
    when configured."""

    def __init__(
        self,
        *,
        secret: str | None,
        jwks: str | None,
        issuer: str | None,
        audience: str | None,
        roles_claim: str,
        tenants_claim: str,
        jwks_cooldown_seconds: float = 30.0,
    ) -> None:
        self.secret = secret
        self.issuer = issuer
        self.audience = audience
        self.roles_claim = roles_claim
        self.tenants_claim = tenants_claim
        self.jwks: PyJWKClient | None = None
        if jwks is not None:
            options = {"cooldown_duration": jwks_cooldown_seconds, "timeout": 5}
            self.jwks = (
                PyJWKClient(jwks, **options)
                if jwks.startswith(("http://", "https://"))
                else _FileJwksClient(jwks, **options)
            )

    async def principal(self, token: str) -> Principal:
        header = _header(token)
        algorithm = header.get("alg")
        key: str | PyJWK
        if algorithm == "HS256" and self.secret is not None:
            key = self.secret
        elif algorithm in ASYMMETRIC_ALGORITHMS and self.jwks is not None:
            key = await self._signing_key(header.get("kid"))
        else:
            raise InvalidToken("The token's algorithm is not accepted.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The token has expired.") from None
        except jwt.PyJWTError:
            raise InvalidToken() from None
        return self._principal(claims)

    async def _signing_key(self, kid: Any) -> PyJWK:
        assert self.jwks is not None
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("The token names no key id (kid).")
        cache = self.jwks.jwk_set_cache
        cached = cache.get() if cache is not None else None
        if cached is not None:
            # PyJWKClient's own rule for signing keys: ``use`` is "sig" or absent.
            found = next(
                (k for k in cached.keys if k.key_id == kid and k.public_key_use in ("sig", None)), None
            )
            if found is not None:
                return found
        # Not in the cached set (or none cached yet): PyJWKClient fetches, blocking, so off the loop.
        try:
            return await anyio.to_thread.run_sync(self.jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError as error:
            logger.warning("the JWK set could not be fetched: %s", error)
            raise InvalidToken("The signing keys could not be fetched.") from None
        except jwt.PyJWKClientError:
            raise InvalidToken("The token's key id is not in the signing keys.") from None
        except (jwt.PyJWTError, OSError, ValueError) as error:
            # An unreadable file, or a document that is not a JWK set: the operator's problem, and
            # no token verifies until it is fixed.
            logger.error("the JWK set is unusable: %s: %s", type(error).__name__, error)
            raise InvalidToken("The signing keys could not be read.") from None

    def _principal(self, claims: dict[str, Any]) -> Principal:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not 1 <= len(subject) <= 128:
            raise InvalidToken("The token's subject (sub) must be a string of 1-128 characters.")
        roles = claims.get(self.roles_claim) or []
        tenants = claims.get(self.tenants_claim) or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken(f"The token's {self.roles_claim} claim must be a list of role names.")
        granted: frozenset[str] | None
        if tenants == ALL_TENANTS:
            granted = None
        elif isinstance(tenants, list) and all(isinstance(t, str) for t in tenants):
            granted = frozenset(tenants)
        else:
            raise InvalidToken(f"The token's {self.tenants_claim} claim must be a list of tenants or '*'.")
        # Role names this service does not know grant nothing.
        return Principal(id=subject, roles=frozenset(roles) & ROLES, tenants=granted)


class StreamTickets:
    """Short-lived tokens that open ``/events/stream`` for one actor in one tenant, and nothing
    else. Signed with a key every API process shares (``STREAM_TICKET_SECRET``, or a random key
    kept in the database), so a ticket minted by one process opens a stream on any other."""

    def __init__(self, seconds: float, key: Callable[[], Awaitable[bytes]]) -> None:
        self.seconds = seconds
        self._load_key = key
        self._key: bytes | None = None

    async def key(self) -> bytes:
        """Loaded on first use, not at start-up: a process starts while its database is down."""
        if self._key is None:
            self._key = await self._load_key()
        return self._key

    async def mint(self, principal: Principal, tenant_id: str) -> tuple[str, datetime.datetime]:
        key = await self.key()
        now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        expires_at = now + datetime.timedelta(seconds=self.seconds)
        claims = {
            "sub": principal.id,
            "tid": tenant_id,
            "aud": STREAM_TICKET_AUDIENCE,
            "iat": now,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(12),
        }
        ticket = jwt.encode(claims, key, algorithm="HS256", headers={"kid": STREAM_TICKET_KID})
        return ticket, expires_at

    async def principal(self, ticket: str) -> Principal:
        key = await self.key()
        try:
            claims = jwt.decode(
                ticket,
                key,
                algorithms=["HS256"],
                audience=STREAM_TICKET_AUDIENCE,
                options={"require": ["exp", "sub", "tid"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("The stream ticket has expired.") from None
        except jwt.PyJWTError:
            raise InvalidToken("The stream ticket is not valid.") from None
        # A viewer of exactly one tenant: enough to read the stream, and the stream is all a
        # ticket is accepted for (see ``Authenticator``).
        return Principal(
            id=str(claims["sub"]), roles=frozenset({"viewer"}), tenants=frozenset({str(claims["tid"])})
        )

    @staticmethod
    def is_ticket(token: str) -> bool:
        return looks_like_jwt(token) and _header(token).get("kid") == STREAM_TICKET_KID
