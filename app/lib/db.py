"""Small helpers over what the database driver reports."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["asyncpg_connect_kwargs", "constraint_name", "driver_connection"]


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
