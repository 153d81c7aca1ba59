"""Idempotency-Key on every POST: one mechanism, in one middleware, for all routes.

For a POST with the header, the middleware opens the request's database session itself (the
route's services get the same session through advanced-alchemy's provider) and:

0. lets the route answer requests it will refuse anyway (a role or tenant the principal may not
   use: 403 before any key is taken, so a revoked grant cannot replay what it once stored);
1. takes a transaction-scoped advisory lock on (tenant, actor, key) — if another request holds it, the
   first is still in flight: 409 ``IDEMPOTENCY_IN_PROGRESS``;
2. looks the key up: a stored response with the same fingerprint (method, path, body) is
   replayed byte for byte with ``Idempotent-Replayed: true``; a different fingerprint is 422
   ``IDEMPOTENCY_KEY_REUSED``;
3. otherwise runs the route with commits deferred (``app.lib.uow``), its effect in a savepoint,
   and the response held back; a 2xx response is stored in the same transaction as the effect,
   which then commits, and only then does the client get the response. A crash anywhere before
   that commit leaves neither the effect nor the key. A 4xx the route produced (409 SLUG_TAKEN,
   422 VERSION_NOT_FOUND, ...) is stored too, with the savepoint rolled back: rejected means
   unchanged, and a retry gets exactly the first answer. 401, 403, 413 and 429 are not stored,
   and neither are 5xx: a retry recomputes them.

Keys are scoped per tenant and actor: the same key sent by another actor is another key, never a
replay of someone else's answer. Unauthenticated routes (``/hooks``) share the anonymous actor ''.

Litestar has no idempotency support and the pieces must share the route's transaction, so this
is written here.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import Message, Receive, Scope, Send
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from app.db.idempotency import IdempotencyKey
from app.lib.access import allowed
from app.lib.error_handler import send_error
from app.lib.errors import Conflict, PayloadTooLarge, Unprocessable, ValidationFailed

if TYPE_CHECKING:
    from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig
    from litestar.types import ASGIApp
    from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

    from app.config import Settings
    from app.lib.principals import Principal

__all__ = ["IDEMPOTENCY_HEADER", "REPLAYED_HEADER", "IdempotencyMiddleware", "owned_session"]

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# Response headers a client relies on when it gets the replay instead of the original.
_KEPT_HEADERS = ("content-type", "location", "etag", "last-modified")
# Refusals that come before the key is taken (SPEC 3): never stored, a retry is judged anew.
_NOT_STORED = frozenset({401, 403, 413, 429})
# Where in the request's state (``Request.state``) the session of an owned transaction is kept.
_OWNED_SESSION = "scriptworks.idempotency_session"


def owned_session(scope: Scope) -> AsyncSession | None:
    """The session of the request's transaction when this layer owns one (a POST with a key),
    else None. The session is also the request's advanced-alchemy session, so services that ask
    the database config for a session get this one."""
    return scope["state"].get(_OWNED_SESSION)


class _Held:
    """The route's response, held back until the transaction has committed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self.body.extend(message.get("body", b""))
        self.messages.append(message)


def _not_a_post(scope: Scope) -> bool:
    return scope["method"] != "POST"


class IdempotencyMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, database: SQLAlchemyAsyncConfig, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        # Only a POST can carry a key: every other request passes by without entering
        # ``handle`` (one coroutine frame less per request, kept for a stream's whole life).
        self.should_bypass_for_scope = _not_a_post

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        headers = _headers(scope)
        key = headers.get(b"idempotency-key")
        if scope["method"] != "POST" or key is None:
            await next_app(scope, receive, send)
            return
        tenant = headers.get(b"x-tenant-id") or str(scope.get("path_params", {}).get("tenant_id") or "")
        if not _KEY.match(key):
            raise ValidationFailed(
                "Idempotency-Key must be 1-255 printable ASCII characters.",
                details=[
                    {"field": IDEMPOTENCY_HEADER, "message": "1-255 printable characters", "source": "header"}
                ],
            )
        principal: Principal | None = scope.get("user")
        if (
            not _TENANT.match(tenant)
            or not allowed(scope)
            or (principal is not None and not principal.may_act_in(tenant))
        ):
            # The route answers the missing or invalid tenant, or refuses the role or tenant.
            await next_app(scope, receive, send)
            return
        actor_id = principal.id if principal is not None else ""
        body = await _read_body(receive, self.settings.max_body_bytes, headers)
        fingerprint = _fingerprint(scope, body)

        session = self.database.provide_session(scope["app"].state, scope)
        scope["state"][_OWNED_SESSION] = session
        try:
            locked = await session.scalar(
                select(
                    func.pg_try_advisory_xact_lock(
                        func.hashtextextended(f"{tenant}\x1f{actor_id}\x1f{key}", 0)
                    )
                )
            )
            if not locked:
                raise Conflict(
                    "A request with this Idempotency-Key is still being processed; retry shortly.",
                    code="IDEMPOTENCY_IN_PROGRESS",
                    headers={"Retry-After": "1"},
                )
            stored = await session.get(IdempotencyKey, (tenant, actor_id, key))
            now = datetime.datetime.now(datetime.UTC)
            if stored is not None and stored.expires_at > now:
                if stored.fingerprint != fingerprint:
                    raise Unprocessable(
                        "This Idempotency-Key was used for a different request.",
                        code="IDEMPOTENCY_KEY_REUSED",
                    )
                replay = (stored.response_status, dict(stored.response_headers), stored.response_body)
                await session.rollback()
                await _replay(*replay, send)
                return
            if stored is not None:
                await session.execute(
                    delete(IdempotencyKey).where(
                        IdempotencyKey.tenant_id == tenant,
                        IdempotencyKey.actor_id == actor_id,
                        IdempotencyKey.key == key,
                    )
                )

            # The route's effect sits in a savepoint: a 4xx answer is stored without it.
            effect = await session.begin_nested()
            held = _Held()
            await next_app(scope, _replay_receive(body), held.send)
            try:
                await self._finish(session, effect, held, (tenant, actor_id, key), fingerprint, scope, now)
            except Exception as error:
                # The route's response exists but must not reach the client: nothing committed.
                await session.rollback()
                await send_error(scope, send, error)
                return
        finally:
            del scope["state"][_OWNED_SESSION]
            # Closing twice is harmless: a replay or an error sent above has closed it already.
            await session.close()
        for message in held.messages:
            await send(message)

    async def _finish(
        self,
        session: AsyncSession,
        effect: AsyncSessionTransaction,
        held: _Held,
        scoped_key: tuple[str, str, str],
        fingerprint: str,
        scope: Scope,
        now: datetime.datetime,
    ) -> None:
        """Store a 2xx answer beside its effect and commit both; store a 4xx the route produced
        without any effect (a retry gets exactly the first answer, even when the state has
        changed since); anything else rolls back and stores nothing."""
        if 400 <= held.status < 500 and held.status not in _NOT_STORED:
            if effect.is_active:
                await effect.rollback()
        elif not 200 <= held.status < 300:
            await session.rollback()
            return
        await session.execute(
            pg_insert(IdempotencyKey).values(
                tenant_id=scoped_key[0],
                actor_id=scoped_key[1],
                key=scoped_key[2],
                fingerprint=fingerprint,
                method=scope["method"],
                path=scope["path"][:2048],
                response_status=held.status,
                response_headers=_kept_headers(held.headers),
                response_body=bytes(held.body),
                expires_at=now + datetime.timedelta(hours=self.settings.idempotency_ttl_hours),
            )
        )
        await session.commit()


def _headers(scope: Scope) -> dict[bytes, str]:
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        lowered = name.lower()
        if lowered in (b"idempotency-key", b"x-tenant-id", b"content-length") and lowered not in found:
            found[lowered] = value.decode("latin-1")
    return found  # type: ignore[return-value]


async def _read_body(receive: Receive, limit: int, headers: dict[Any, str]) -> bytes:
    declared = headers.get(b"content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("The request body is too large.")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body.extend(message.get("body", b""))
        if len(body) > limit:
            raise PayloadTooLarge("The request body is too large.")
        if not message.get("more_body", False):
            break
    return bytes(body)


def _replay_receive(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(scope["method"].encode())
    digest.update(b"\n")
    digest.update(scope["path"].encode())
    digest.update(b"?")
    digest.update(scope.get("query_string", b""))
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def _kept_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name.decode("latin-1").lower() in _KEPT_HEADERS
    }


async def _replay(status: int, stored_headers: dict[str, str], body: bytes, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored_headers.items()]
    headers.append((b"content-length", str(len(body)).encode()))
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
