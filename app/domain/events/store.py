"""Writing events (inside the caller's transaction) and reading them back in a safe order.

Ids come from an identity column, so two concurrent transactions can commit ids out of order:
a reader that asked ``WHERE id > last_seen`` could pass 11 before 10 became visible, and never
see 10. Every row therefore records its transaction id (``xid``), and readers walk the table in
*position* order, ``(xid, id)``, only up to ``pg_snapshot_xmin(pg_current_snapshot())``: every
transaction with a smaller xid has finished, so nothing can ever appear behind the reader. The
price is that an event waits for transactions that started before it to finish (milliseconds
for this API's transactions).
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.events import Event
from app.lib.correlation import current_correlation_id
from app.lib.schema import timestamp

__all__ = ["LiveEvent", "Position", "append_event", "event_rows", "position_of", "read_after"]

REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where an event sits in delivery order."""

    xid: int
    id: int


START = Position(0, 0)


class EventOut(msgspec.Struct, rename="camel"):
    """The JSON of one event, as SSE ``data:`` carries it."""

    id: int
    event: str
    correlation_id: str | None
    tenant_id: str
    success: bool
    payload: Any
    occurred_at: str


_encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """An event read from the store, encoded once and shared by every subscriber."""

    position: Position
    tenant_id: str
    event: str
    correlation_id: str | None
    data: str
    frame: bytes  # the whole SSE frame, encoded once for every stream that carries it

    @property
    def id(self) -> int:
        return self.position.id

    @classmethod
    def from_record(cls, row: asyncpg.Record) -> LiveEvent:
        occurred: datetime.datetime = row["occurred_at"]
        body = EventOut(
            id=row["id"],
            event=row["event"],
            correlation_id=row["correlation_id"],
            tenant_id=row["tenant_id"],
            success=row["success"],
            payload=msgspec.Raw(row["payload"]),
            occurred_at=timestamp(occurred),
        )
        data = _encode(body).decode()
        frame = f"id: {row['id']}\r\nevent: {row['event']}\r\ndata: {data}\r\n\r\n".encode()
        return cls(
            position=Position(row["xid"], row["id"]),
            tenant_id=row["tenant_id"],
            event=row["event"],
            correlation_id=row["correlation_id"],
            data=data,
            frame=frame,
        )


async def append_event(
    session: AsyncSession,
    *,
    tenant_id: str,
    event: str,
    payload: dict[str, Any],
    correlation_id: str | None = None,
    success: bool = True,
) -> None:
    """Add an event to the caller's transaction (it commits, or not, with the change it describes)."""
    await session.execute(
        insert(Event).values(
            tenant_id=tenant_id,
            event=event,
            correlation_id=correlation_id if correlation_id is not None else current_correlation_id(),
            success=success,
            payload=payload,
        )
    )


def event_rows(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a multi-row insert of several events."""
    return [
        {
            "tenant_id": e["tenant_id"],
            "event": e["event"],
            "correlation_id": e.get("correlation_id"),
            "success": e.get("success", True),
            "payload": e["payload"],
        }
        for e in events
    ]


_COLUMNS = "id, xid, tenant_id, event, correlation_id, success, payload::text AS payload, occurred_at"
_VISIBLE = "xid < pg_snapshot_xmin(pg_current_snapshot())"


async def position_of(connection: asyncpg.Connection | asyncpg.Pool, event_id: int) -> Position | None:
    xid = await connection.fetchval("SELECT xid FROM events WHERE id = $1", event_id)
    return None if xid is None else Position(xid, event_id)


async def current_start(connection: asyncpg.Connection | asyncpg.Pool) -> Position:
    """The position before every event a reader starting now has not yet been able to see."""
    xmin = await connection.fetchval("SELECT pg_snapshot_xmin(pg_current_snapshot())")
    return Position(xmin, 0)


async def read_all_after(
    connection: asyncpg.Connection | asyncpg.Pool, after: Position, limit: int
) -> list[LiveEvent]:
    """Every tenant's events after ``after`` (the hub's tail)."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM events WHERE (xid, id) > ($1::xid8, $2) AND {_VISIBLE} "
        "ORDER BY xid, id LIMIT $3",
        after.xid,
        after.id,
        limit,
    )
    return [LiveEvent.from_record(r) for r in rows]


async def read_after(
    pool: asyncpg.Pool,
    tenant_id: str,
    after: Position,
    *,
    correlation_id: str | None = None,
    events: frozenset[str] | None = None,
) -> AsyncIterator[LiveEvent]:
    """One tenant's events after ``after``, matching the filters, page by page (a stream's replay)."""
    conditions = ["tenant_id = $1", "(xid, id) > ($2::xid8, $3)", _VISIBLE]
    args: list[Any] = [tenant_id, after.xid, after.id]
    if correlation_id is not None:
        args.append(correlation_id)
        conditions.append(f"correlation_id = ${len(args)}")
    if events:
        args.append(list(events))
        conditions.append(f"event = ANY(${len(args)}::text[])")
    args.append(REPLAY_PAGE)
    sql = (
        f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(conditions)} ORDER BY xid, id LIMIT ${len(args)}"
    )
    while True:
        rows = await pool.fetch(sql, *args)
        for row in rows:
            yield LiveEvent.from_record(row)
        if len(rows) < REPLAY_PAGE:
            return
        last = rows[-1]
        args[1], args[2] = last["xid"], last["id"]
