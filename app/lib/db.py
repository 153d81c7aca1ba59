"""Small helpers over what the database driver reports."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.uow import DEFER_COMMIT

__all__ = ["Row", "asyncpg_connect_kwargs", "constraint_name", "driver_connection", "statements"]


def constraint_name(error: BaseException) -> str | None:
    """The name of the constraint an IntegrityError violated, as asyncpg reports it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = getattr(current, "constraint_name", None)
        if isinstance(name, str):
            return name
        current = getattr(current, "orig", None) or current.__cause__
    return None


def asyncpg_connect_kwargs(url: str) -> dict[str, Any]:
    """Keyword arguments for ``asyncpg.connect`` from a SQLAlchemy URL (unix sockets included).

    The hub and the worker talk to PostgreSQL through asyncpg directly: LISTEN needs a
    dedicated connection, and their hot loops skip the ORM.
    """
    parsed = make_url(url)
    params: dict[str, Any] = {
        "user": parsed.username or "postgres",
        "database": parsed.database or "postgres",
        "server_settings": {"application_name": "scriptworks", "timezone": "UTC"},
        "timeout": 5,
    }
    if parsed.password:
        params["password"] = parsed.password
    host = parsed.query.get("host") or parsed.host
    if host:
        params["host"] = host
    port = parsed.query.get("port") or parsed.port
    if port:
        params["port"] = int(port)
    return params


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction (begun if it was not), for the
    plain-SQL statements that share the session's unit of work."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


@asynccontextmanager
async def statements(session: AsyncSession | None, pool: Any) -> AsyncIterator[Any]:
    """An asyncpg connection for plain-SQL statements that each commit on their own (one round
    trip, no BEGIN/COMMIT): one borrowed from ``pool`` (``app.state.statement_pool``), outside any
    transaction. When the request owns a transaction (an Idempotency-Key request, see
    ``app.lib.uow``) it is that transaction's connection instead, and the statements commit with
    the stored response."""
    if session is not None and session.info.get(DEFER_COMMIT):
        yield await driver_connection(session)
        return
    async with pool.acquire() as connection:
        try:
            yield connection
        except (asyncpg.InterfaceError, asyncpg.InternalClientError):
            # The driver, not the server, failed (e.g. a statement cut off by a restarting
            # server): the connection may be mid-operation. Close it rather than pool it.
            connection.terminate()
            raise


class Row:
    """Attribute access to an asyncpg record, so the wire schemas build from it as from a model."""

    __slots__ = ("_record",)

    def __init__(self, record: Any) -> None:
        self._record = record

    def __getattr__(self, name: str) -> Any:
        try:
            return self._record[name]
        except KeyError:
            raise AttributeError(name) from None
