"""Stream tickets made the way the server makes them, for tests of refused tickets."""

from __future__ import annotations

import datetime

import asyncpg
import jwt

from app.lib.db import asyncpg_connect_kwargs
from app.lib.tokens import STREAM_TICKET_AUDIENCE, STREAM_TICKET_KID


async def ticket_key(database_url: str) -> bytes:
    """The key every process of this deployment signs tickets with (made on first use)."""
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:
        return await connection.fetchval("SELECT value FROM server_secrets WHERE name = 'stream_tickets'")
    finally:
        await connection.close()


def forged(key: bytes, *, tenant: str, expires_in: float, actor: str = "alice") -> str:
    """A ticket signed with ``key`` that expires ``expires_in`` seconds from now (negative: past)."""
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        "sub": actor,
        "tid": tenant,
        "aud": STREAM_TICKET_AUDIENCE,
        "iat": now,
        "exp": now + datetime.timedelta(seconds=expires_in),
    }
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": STREAM_TICKET_KID})
