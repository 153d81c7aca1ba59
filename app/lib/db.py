"""Small helpers over what the database driver reports."""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Any

from sqlalchemy.engine import make_url

__all__ = ["Row", "asyncpg_connect_kwargs", "columns", "constraint_name"]


def columns(items: Iterable[Any], *attributes: str) -> list[list[Any]]:
    """One list per attribute (a dotted path reads through) across ``items``: the arrays that a
    statement over ``unnest($1::uuid[], $2::text[], …)`` takes to write many rows in one round trip."""
    items = list(items)
    return [list(map(attrgetter(attribute), items)) for attribute in attributes]


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

    # By name, as a mapping: what ``Out.of`` reads (no failed attribute lookup per column).
    def keys(self) -> Any:
        return self._record.keys()

    def __getitem__(self, name: str) -> Any:
        return self._record[name]
