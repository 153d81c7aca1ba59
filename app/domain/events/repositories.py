"""All SQL of events: writing them (inside the caller's transaction), sequencing them, and
reading them back in a safe order.

Ids come from an identity column, so two concurrent transactions can commit ids out of order:
a reader that asked ``WHERE id > last_seen`` could pass 11 before 10 became visible, and never
see 10. So an event is written without a delivery position, and once it has committed the
*sequencer* gives it one: ``sequence_events`` stamps every committed, unsequenced event with the
sequencer's own transaction id (``xid``), under an advisory lock that lets one sequencer run at a
time (the schema's function of that name: one round trip). Sequencer transactions therefore
commit in the order of their ids, and a reader that can see position ``(x, i)`` can already see
every smaller one: readers walk ``(xid, id) > cursor`` and nothing ever appears behind them.

Readers used to wait instead for every transaction older than the event to finish
(``pg_snapshot_xmin``); one idle session in a transaction, in any database of the server, then
held back every stream and hook. The sequencer waits for nothing but its own short lock. Any
reader (each API process's hub, each worker's hook dispatcher) sequences before it reads, so
events are sequenced within a notification's round trip; the cost is one UPDATE of each event
row (docs/live-delivery.md has the measurements).
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.events import Event
from app.domain.events.schemas import EventOut
from app.lib.correlation import current_correlation_id
from app.lib.schema import timestamp

__all__ = [
    "PRUNE_EVENTS",
    "LiveEvent",
    "Position",
    "append_event",
    "event_rows",
    "newest_event_id",
    "position_of",
    "read_after",
    "sequence_events",
]

REPLAY_PAGE = 500


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where an event sits in delivery order."""

    xid: int
    id: int


START = Position(0, 0)


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
_VISIBLE = "xid IS NOT NULL"
SEQUENCE_BATCH = 10_000
# The sequencer is a function of the schema (migration 0016_sequencer_function), so sequencing
# is one round trip: if any event is unsequenced, take the advisory lock every sequencer shares
# ("SWSEQ"), then stamp up to ``$1`` of them with this transaction's id; returns how many.
_SEQUENCE = "SELECT sequence_events($1)"


async def sequence_events(pool: asyncpg.Pool | asyncpg.Connection) -> int:
    """Give every committed, unsequenced event its delivery position; returns how many.

    After it returns, every event that had committed before the call is sequenced and visible
    to the caller's next statement: either this call stamped it, or the sequencer this call
    waited for (the lock) did. Call it outside a transaction: the lock is held until the
    transaction of the call commits.
    """
    async with _connection(pool) as connection:
        total = 0
        while True:
            done = await connection.fetchval(_SEQUENCE, SEQUENCE_BATCH)
            total += done
            if done < SEQUENCE_BATCH:
                return total


@contextlib.asynccontextmanager
async def _connection(pool: asyncpg.Pool | asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(pool, asyncpg.Pool):
        async with pool.acquire() as connection:
            yield connection
    else:
        yield pool


async def position_of(connection: asyncpg.Connection | asyncpg.Pool, event_id: int) -> Position | None:
    xid = await connection.fetchval("SELECT xid FROM events WHERE id = $1 AND xid IS NOT NULL", event_id)
    return None if xid is None else Position(xid, event_id)


async def newest_event_id(connection: asyncpg.Connection | asyncpg.Pool) -> int:
    """The highest event id written so far (0 for none), sequenced or not."""
    return await connection.fetchval("SELECT coalesce(max(id), 0) FROM events")


async def current_start(connection: asyncpg.Connection | asyncpg.Pool) -> Position:
    """The position before every event a reader starting now has not yet been able to see: the
    newest sequenced one (whatever is sequenced later gets a larger position)."""
    row = await connection.fetchrow(
        "SELECT xid, id FROM events WHERE xid IS NOT NULL ORDER BY xid DESC, id DESC LIMIT 1"
    )
    return START if row is None else Position(row["xid"], row["id"])


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


# Retention (the worker's maintenance runs it in batches of $1 rows).
PRUNE_EVENTS = """
DELETE FROM events WHERE id IN (
    SELECT id FROM events WHERE occurred_at < $2
    ORDER BY occurred_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
