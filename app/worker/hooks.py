"""Lifecycle hooks: lifecycle events of the event store start LIFECYCLE_HOOK runs.

A subscription to a built-in lifecycle name (``Script.Created``, ``Script.Published``,
``Script.Archived``, ``Version.Created``, ``Run.Started``, ``Run.Finished``) on subject S (a
script id, or ``*``) starts a run of its script when such an event concerns script S (for run
events: the run's script). This happens here, in the worker, so request paths never wait for it.

The dispatcher sequences, then reads the event store in its safe order (position ``(xid, id)``:
see ``app.domain.events.repositories``) from a cursor kept in
``worker_cursors``. One batch is one transaction: lock the cursor row (``SKIP LOCKED``: one
dispatcher at a time, others wait for the next round), read the next lifecycle events, record
each event that matches subscriptions as an incoming event (unique per lifecycle event id), start
the runs (with their Run.Started events), store the answers, move the cursor. A crash before the
commit leaves nothing; after it, nothing is redone: each lifecycle event is dispatched exactly
once, whatever the number of workers.

Loops: a script's own lifecycle events never start it, and every hook run carries its depth in
``eventData.hookDepth`` (1 for a hook started by a person's change or a run that is not a hook;
one more than the run whose event started it otherwise). Events of runs ``MAX_HOOK_DEPTH`` deep
start nothing, so A → B → A chains stop. Chains do not multiply either: every hook run carries
the lifecycle event that started its chain (``eventData.originEventId``), and one origin starts
at most one run of each script (k subscribers: at most k runs, not one per link of the chain).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg
import msgspec
import structlog
from uuid_utils.compat import uuid7

from app.config import Settings
from app.db.runtime import SharedConnections
from app.domain.events.repositories import sequence_events
from app.domain.events.schemas import LIFECYCLE_EVENTS
from app.domain.incoming_events.repositories import (
    HOOK_ANSWER,
    HOOK_CURSOR_NAME,
    HOOK_LOCK_CURSOR,
    HOOK_MATCHES,
    HOOK_MOVE_CURSOR,
    HOOK_READ,
    HOOK_RECORD,
    HOOK_RUN_CHAINS,
)
from app.domain.runs.services import RunSource, TriggeredStart, start_active_runs
from app.worker.loop import PollingLoop

__all__ = ["CURSOR_NAME", "MAX_HOOK_DEPTH", "LifecycleHookDispatcher", "dispatch_batch"]

CURSOR_NAME = HOOK_CURSOR_NAME
MAX_HOOK_DEPTH = 3
RUN_EVENTS = ("Run.Started", "Run.Finished")

logger = structlog.get_logger("app.worker.hooks")
_stdlib_logger = logging.getLogger("app.worker.hooks")
_decode = msgspec.json.decode
_encode = msgspec.json.encode


async def dispatch_batch(connection: asyncpg.Connection, limit: int = 500) -> int | None:
    """Dispatch the next lifecycle events, in one transaction: how many were read, or None when
    another dispatcher holds the cursor."""
    await sequence_events(connection)
    async with connection.transaction():
        cursor = await connection.fetchrow(HOOK_LOCK_CURSOR)
        if cursor is None:
            return None
        rows = await connection.fetch(
            HOOK_READ, cursor["xid"], cursor["event_id"], list(LIFECYCLE_EVENTS), limit
        )
        events = [row for row in rows if row["id"] is not None]
        position = (cursor["xid"], cursor["event_id"])
        if events:
            await _dispatch(connection, events)
            position = (events[-1]["xid"], events[-1]["id"])
        if len(events) < limit and rows[0]["newest_xid"] is not None:
            # Every lifecycle event up to the newest sequenced one has been read: skip ahead.
            position = max(position, (rows[0]["newest_xid"], rows[0]["newest_id"]))
        if position != (cursor["xid"], cursor["event_id"]):
            await connection.execute(HOOK_MOVE_CURSOR, *position)
        return len(events)


async def _dispatch(connection: asyncpg.Connection, events: list[asyncpg.Record]) -> None:
    payloads = [_decode(event["payload"]) for event in events]
    run_ids = [
        _uuid(payload.get("runId"))
        for event, payload in zip(events, payloads, strict=True)
        if event["event"] in RUN_EVENTS
    ]
    chains = {
        row["id"]: (row["depth"], row["origin"])
        for row in await connection.fetch(HOOK_RUN_CHAINS, [r for r in run_ids if r])
    }
    # (index, event, payload, (depth, origin)): the chain an event belongs to. A person's change
    # (or a run that is no hook) starts a chain of its own, named by its event's id.
    candidates: list[tuple[int, asyncpg.Record, dict[str, Any], tuple[int, int]]] = []
    for index, (event, payload) in enumerate(zip(events, payloads, strict=True)):
        subject = payload.get("scriptId")
        if not isinstance(subject, str):
            continue
        depth, origin = (
            chains.get(_uuid(payload.get("runId")), (0, None)) if event["event"] in RUN_EVENTS else (0, None)
        )
        if depth >= MAX_HOOK_DEPTH:
            continue
        candidates.append((index, event, payload, (depth, origin if origin is not None else event["id"])))
    if not candidates:
        return
    matches = await connection.fetch(
        HOOK_MATCHES,
        [index for index, *_ in candidates],
        [event["tenant_id"] for _, event, _, _ in candidates],
        [event["event"] for _, event, _, _ in candidates],
        [payload["scriptId"] for _, _, payload, _ in candidates],
        [event["occurred_at"] for _, event, _, _ in candidates],
    )
    by_event: dict[int, list[asyncpg.Record]] = {}
    for match in matches:
        by_event.setdefault(match["idx"], []).append(match)
    matched = [c for c in candidates if c[0] in by_event]
    if not matched:
        return
    recorded = await connection.fetch(
        HOOK_RECORD,
        [uuid7() for _ in matched],
        [event["tenant_id"] for _, event, _, _ in matched],
        [event["event"] for _, event, _, _ in matched],
        [payload["scriptId"] for _, _, payload, _ in matched],
        [event["payload"] for _, event, _, _ in matched],
        [event["id"] for _, event, _, _ in matched],
    )
    incoming = {row["lifecycle_event_id"]: row["id"] for row in recorded}
    starts: list[TriggeredStart] = []
    chain_starts: set[tuple[uuid.UUID, int]] = set()
    for index, event, payload, (depth, origin) in matched:
        incoming_id = incoming.get(event["id"])
        if incoming_id is None:
            continue  # recorded already: dispatched before, never twice
        source = RunSource(
            trigger_type="LIFECYCLE_HOOK",
            triggering_event_id=incoming_id,
            event_data={
                "eventName": event["event"],
                "subject": payload["scriptId"],
                "payload": payload,
                "lifecycleEventId": event["id"],
                "hookDepth": depth + 1,
                "originEventId": origin,
            },
        )
        for m in by_event[index]:
            # One originating change starts at most one run of each script, however long the
            # chain: within this batch here, across batches by the unique index on
            # (script_id, originEventId) of hook runs (the insert skips what exists).
            if m["has_active_version"] and not m["archived"] and (m["script_id"], origin) not in chain_starts:
                chain_starts.add((m["script_id"], origin))
                starts.append(
                    TriggeredStart(tenant_id=event["tenant_id"], script_id=m["script_id"], source=source)
                )
    started = await start_active_runs(connection, starts)
    runs_of: dict[uuid.UUID, list[dict[str, str]]] = {}
    for run in started:
        runs_of.setdefault(run["triggering_event_id"], []).append(
            {"runId": str(run["id"]), "scriptId": str(run["script_id"])}
        )
    answers: list[tuple[uuid.UUID, str]] = []
    for index, event, _, _ in matched:
        incoming_id = incoming.get(event["id"])
        if incoming_id is None:
            continue
        runs = runs_of.get(incoming_id, [])
        skipped = [
            {
                "scriptId": str(m["script_id"]),
                "reason": "SCRIPT_ARCHIVED" if m["archived"] else "NO_ACTIVE_VERSION",
            }
            for m in by_event[index]
            if m["archived"] or not m["has_active_version"]
        ]
        answer = {"eventId": str(incoming_id), "runs": runs, "skipped": skipped}
        answers.append((incoming_id, _encode(answer).decode()))
    await connection.execute(HOOK_ANSWER, [a[0] for a in answers], [a[1] for a in answers])
    if started:
        logger.info("lifecycle hooks started runs", count=len(started))


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if isinstance(value, str) else None
    except ValueError:
        return None


class LifecycleHookDispatcher(PollingLoop):
    """The dispatch loop: a batch whenever there may be new lifecycle events, else wait a poll."""

    name = "lifecycle hooks"

    def __init__(self, settings: Settings, shared: SharedConnections, batch_size: int = 500) -> None:
        super().__init__(shared, settings.worker_poll_seconds)
        self.settings = settings
        self.batch_size = batch_size

    async def run_once(self) -> int | None:
        """One batch: the number of lifecycle events read, None if another dispatcher is at it."""
        async with self.pool.acquire() as connection:
            return await dispatch_batch(connection, self.batch_size)

    async def step(self) -> bool:
        read = await self.run_once()
        return read is not None and read >= self.batch_size  # a full batch: more may wait
