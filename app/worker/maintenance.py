"""Housekeeping the worker does between commands: heartbeats, and purging what has outlived its
retention (runs with their variables and steps, events, incoming events no retained run refers
to, finished commands, idempotency keys).

Each area's repository owns its purge statement; this module runs them in order (runs before
the incoming events they name, incoming events before the windows their outcomes hold). Every
purge deletes in small batches, each its own short statement with the rows locked
``SKIP LOCKED``, so it never holds long locks or blocks writers.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import uuid
from dataclasses import dataclass

import asyncpg
import structlog

from app.config import Settings
from app.domain.commands.repositories import PRUNE_COMMANDS
from app.domain.events.repositories import PRUNE_EVENTS
from app.domain.incoming_events.repositories import PRUNE_FLOWS, PRUNE_INCOMING, PRUNE_WINDOWS
from app.domain.runs.repositories import PRUNE_RUNS

__all__ = [
    "Retention",
    "beat",
    "beat_forever",
    "forget_worker",
    "maintain",
    "prune",
    "purge_expired_idempotency_keys",
    "uuid7_floor",
]

BATCH = 1000
logger = structlog.get_logger("app.worker")
_stdlib_logger = logging.getLogger("app.worker")

_PURGE_KEYS = """
DELETE FROM idempotency_keys WHERE (tenant_id, actor_id, key) IN (
    SELECT tenant_id, actor_id, key FROM idempotency_keys WHERE expires_at < $2
    ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)
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
        "runs": await _in_batches(pool, PRUNE_RUNS, uuid7_floor(runs_cutoff), runs_cutoff, batch=batch),
        "events": await _in_batches(pool, PRUNE_EVENTS, events_cutoff, batch=batch),
        # After the runs: an incoming event goes once no retained run refers to it.
        "incoming_events": await _in_batches(
            pool, PRUNE_INCOMING, uuid7_floor(events_cutoff), events_cutoff, batch=batch
        ),
        # After the incoming events, whose outcomes hold their windows.
        "deferred_runs": await _in_batches(pool, PRUNE_WINDOWS, events_cutoff, batch=batch),
        "trigger_flows": await _in_batches(
            pool, PRUNE_FLOWS, min(events_cutoff, now - datetime.timedelta(days=1)), batch=batch
        ),
        "commands": await _in_batches(pool, PRUNE_COMMANDS, commands_cutoff, batch=batch),
        "idempotency_keys": await purge_expired_idempotency_keys(pool, now=now, batch=batch),
    }


async def beat(pool: asyncpg.Pool, worker_id: str) -> None:
    await pool.execute(_BEAT, worker_id, socket.gethostname(), os.getpid())


async def forget_worker(pool: asyncpg.Pool, worker_id: str) -> None:
    await pool.execute("DELETE FROM worker_heartbeats WHERE worker_id = $1", worker_id)
    await pool.execute(_FORGET_STALE_WORKERS)


async def maintain(pool: asyncpg.Pool, settings: Settings) -> None:
    """Prune what is past its retention every WORKER_MAINTENANCE_SECONDS, until cancelled."""
    retention = Retention(
        runs_days=settings.run_retention_days,
        events_days=settings.event_retention_days,
        commands_days=settings.command_retention_days,
    )
    while True:
        try:
            pruned = await prune(pool, retention)
            if any(pruned.values()):
                logger.info("pruned rows past their retention", **pruned)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _stdlib_logger.warning("maintenance failed (%s); will retry", type(error).__name__)
        await asyncio.sleep(settings.worker_maintenance_seconds)


async def beat_forever(pool: asyncpg.Pool, worker_id: str, settings: Settings) -> None:
    """The worker's heartbeat, often enough that two can be missed before it counts as stale,
    until cancelled."""
    interval = max(min(settings.worker_poll_seconds, settings.worker_heartbeat_stale_seconds / 3), 0.1)
    while True:
        try:
            await beat(pool, worker_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            _stdlib_logger.warning("heartbeat failed (%s); will retry", type(error).__name__)
        await asyncio.sleep(interval)
