"""Housekeeping the worker does between commands: heartbeats, and purging what has outlived its
retention (runs with their variables and steps, events, incoming events no retained run refers
to, finished commands, idempotency keys).

Every purge deletes in small batches, each its own short statement with the rows locked
``SKIP LOCKED``, so it never holds long locks or blocks writers.
"""

from __future__ import annotations

import datetime
import os
import socket
import uuid
from dataclasses import dataclass

import asyncpg

__all__ = [
    "Retention",
    "beat",
    "forget_worker",
    "prune",
    "purge_expired_idempotency_keys",
    "uuid7_floor",
]

BATCH = 1000

_PURGE_KEYS = """
DELETE FROM idempotency_keys WHERE (tenant_id, actor_id, key) IN (
    SELECT tenant_id, actor_id, key FROM idempotency_keys WHERE expires_at < $2
    ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
# Run ids are UUIDv7, minted just before startedAt: every run started before the cutoff has an id
# below the cutoff's UUIDv7 floor, so the primary key range finds them without another index.
_PRUNE_RUNS = """
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs WHERE id < $2 AND started_at < $3
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
_PRUNE_EVENTS = """
DELETE FROM events WHERE id IN (
    SELECT id FROM events WHERE occurred_at < $2
    ORDER BY occurred_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
# Incoming events (UUIDv7 ids, like runs) past the event retention that no retained run names
# as its triggering event: traceability (run → triggeringEventId) holds as long as the run does.
# Nor an event folded into a debounce window still pending: its run has yet to start from it.
_PRUNE_INCOMING = """
DELETE FROM incoming_events WHERE id IN (
    SELECT ie.id FROM incoming_events AS ie
    WHERE ie.id < $2 AND ie.created_at < $3
      AND NOT EXISTS (SELECT FROM runs AS r WHERE r.triggering_event_id = ie.id)
      AND NOT EXISTS (
          SELECT FROM incoming_event_outcomes AS o JOIN deferred_runs AS d ON d.id = o.deferred_run_id
          WHERE o.event_id = ie.id AND d.status = 'PENDING')
    ORDER BY ie.id LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
# Closed debounce windows past the event retention with none of their events left (the outcomes
# of an incoming event a retained run names keep its window), and flow rows untouched for the
# event retention and at least a day (the longest throttle window) whose window is not pending:
# a new event makes the row again.
_PRUNE_WINDOWS = """
DELETE FROM deferred_runs WHERE id IN (
    SELECT d.id FROM deferred_runs AS d
    WHERE d.status <> 'PENDING' AND d.closed_at < $2
      AND NOT EXISTS (SELECT FROM incoming_event_outcomes AS o WHERE o.deferred_run_id = d.id)
    ORDER BY d.closed_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
_PRUNE_FLOWS = """
DELETE FROM trigger_flows WHERE (subscription_id, subject) IN (
    SELECT f.subscription_id, f.subject FROM trigger_flows AS f
    WHERE f.updated_at < $2
      AND NOT EXISTS (SELECT FROM deferred_runs AS d WHERE d.id = f.open_window_id AND d.status = 'PENDING')
    ORDER BY f.updated_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
_PRUNE_COMMANDS = """
DELETE FROM commands WHERE id IN (
    SELECT id FROM commands WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND completed_at < $2
    ORDER BY completed_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
_BEAT = """
INSERT INTO worker_heartbeats (worker_id, host, pid) VALUES ($1, $2, $3)
ON CONFLICT (worker_id) DO UPDATE SET last_seen_at = now()
"""
_FORGET_STALE_WORKERS = "DELETE FROM worker_heartbeats WHERE last_seen_at < now() - interval '1 day'"


@dataclass(frozen=True, slots=True)
class Retention:
    runs_days: float
    events_days: float
    commands_days: float


def uuid7_floor(moment: datetime.datetime) -> uuid.UUID:
    """The smallest UUIDv7 minted at ``moment``'s millisecond."""
    millis = int(moment.timestamp() * 1000)
    return uuid.UUID(int=(millis << 80) | (0x7 << 76) | (0b10 << 62))


async def _in_batches(pool: asyncpg.Pool, sql: str, *args: object, batch: int = BATCH) -> int:
    total = 0
    while True:
        deleted = int((await pool.execute(sql, batch, *args)).split()[-1])
        total += deleted
        if deleted < batch:
            return total


async def purge_expired_idempotency_keys(
    pool: asyncpg.Pool, *, now: datetime.datetime | None = None, batch: int = BATCH
) -> int:
    return await _in_batches(pool, _PURGE_KEYS, now or datetime.datetime.now(datetime.UTC), batch=batch)


async def prune(
    pool: asyncpg.Pool, retention: Retention, *, now: datetime.datetime | None = None, batch: int = BATCH
) -> dict[str, int]:
    """Delete what is past its retention; returns how many rows of each kind went."""
    now = now or datetime.datetime.now(datetime.UTC)
    runs_cutoff = now - datetime.timedelta(days=retention.runs_days)
    events_cutoff = now - datetime.timedelta(days=retention.events_days)
    commands_cutoff = now - datetime.timedelta(days=retention.commands_days)
    return {
        "runs": await _in_batches(pool, _PRUNE_RUNS, uuid7_floor(runs_cutoff), runs_cutoff, batch=batch),
        "events": await _in_batches(pool, _PRUNE_EVENTS, events_cutoff, batch=batch),
        # After the runs: an incoming event goes once no retained run refers to it.
        "incoming_events": await _in_batches(
            pool, _PRUNE_INCOMING, uuid7_floor(events_cutoff), events_cutoff, batch=batch
        ),
        # After the incoming events, whose outcomes hold their windows.
        "deferred_runs": await _in_batches(pool, _PRUNE_WINDOWS, events_cutoff, batch=batch),
        "trigger_flows": await _in_batches(
            pool, _PRUNE_FLOWS, min(events_cutoff, now - datetime.timedelta(days=1)), batch=batch
        ),
        "commands": await _in_batches(pool, _PRUNE_COMMANDS, commands_cutoff, batch=batch),
        "idempotency_keys": await purge_expired_idempotency_keys(pool, now=now, batch=batch),
    }


async def beat(pool: asyncpg.Pool, worker_id: str) -> None:
    await pool.execute(_BEAT, worker_id, socket.gethostname(), os.getpid())


async def forget_worker(pool: asyncpg.Pool, worker_id: str) -> None:
    await pool.execute("DELETE FROM worker_heartbeats WHERE worker_id = $1", worker_id)
    await pool.execute(_FORGET_STALE_WORKERS)
