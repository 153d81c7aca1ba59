"""The outbox's worker-side statements: claim, complete, fail, reclaim, release.

Plain asyncpg, one statement each, batched over arrays: a worker moves thousands of rows a
second through here. Every state change after a claim is conditional on the claim's lease
token, so a worker whose lease expired (and whose rows another worker took over) can no longer
complete them: each command gets exactly one outcome event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from app.domain.commands.handlers import ClaimedCommand

__all__ = ["LEASE_EXPIRED", "Failure", "Outbox", "Success"]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


@dataclass(frozen=True, slots=True)
class Success:
    command: ClaimedCommand
    event: str
    payload: dict


@dataclass(frozen=True, slots=True)
class Failure:
    command: ClaimedCommand
    event: str
    error: str


_CLAIM = """
UPDATE commands c
SET status = 'PROCESSING', lease_token = $1, lease_expires_at = now() + make_interval(secs => $2),
    attempts = c.attempts + 1, updated_at = now()
FROM (
    SELECT id FROM commands
    WHERE status = 'PENDING' AND available_at <= now()
    ORDER BY available_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
) due
WHERE c.id = due.id
RETURNING c.id, c.tenant_id, c.correlation_id, c.command, c.actor::text AS actor,
          c.context::text AS context, c.payload::text AS payload, c.attempts
"""

_COMPLETE = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS t(id, token, event, payload)
), done AS (
    UPDATE commands c
    SET status = 'COMPLETED', completed_at = now(), updated_at = now(),
        lease_token = NULL, lease_expires_at = NULL, last_error = NULL
    FROM input i
    WHERE c.id = i.id AND c.lease_token = i.token AND c.status = 'PROCESSING'
    RETURNING c.id, c.tenant_id, c.correlation_id
)
INSERT INTO events (tenant_id, event, correlation_id, success, payload)
SELECT d.tenant_id, i.event, d.correlation_id, true, i.payload::jsonb
FROM done d JOIN input i ON i.id = d.id
RETURNING id
"""

# Retry with exponential backoff and jitter while attempts remain; then FAILED with an event.
_FAIL = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS t(id, token, event, error)
), changed AS (
    UPDATE commands c
    SET status = CASE WHEN c.attempts >= $5 THEN 'FAILED' ELSE 'PENDING' END,
        completed_at = CASE WHEN c.attempts >= $5 THEN now() END,
        available_at = CASE WHEN c.attempts >= $5 THEN c.available_at
            ELSE now() + make_interval(
                secs => least($6 * power(2, c.attempts - 1), $7) * (0.75 + random() / 2))
        END,
        lease_token = NULL, lease_expires_at = NULL, last_error = i.error, updated_at = now()
    FROM input i
    WHERE c.id = i.id AND c.lease_token = i.token AND c.status = 'PROCESSING'
    RETURNING c.id, c.tenant_id, c.correlation_id, c.command, c.status, c.attempts, i.event, i.error
)
INSERT INTO events (tenant_id, event, correlation_id, success, payload)
SELECT tenant_id, event, correlation_id, false,
       jsonb_build_object('command', command, 'error', error, 'attempts', attempts)
FROM changed WHERE status = 'FAILED'
RETURNING id
"""

# Commands whose lease expired (their worker died, or lost the database long enough): every
# claim was an attempt, so those that used their last one are FAILED with one success: false
# event, the others are due again at once. The event names come from the handler registry.
_EXPIRED = """
SELECT id, command, attempts FROM commands
WHERE status = 'PROCESSING' AND lease_expires_at < now()
LIMIT $1
FOR UPDATE SKIP LOCKED
"""
_RECLAIM = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::text[]) AS t(id, event)
), changed AS (
    UPDATE commands c
    SET status = CASE WHEN c.attempts >= $3 THEN 'FAILED' ELSE 'PENDING' END,
        completed_at = CASE WHEN c.attempts >= $3 THEN now() END,
        available_at = CASE WHEN c.attempts >= $3 THEN c.available_at ELSE now() END,
        last_error = CASE WHEN c.attempts >= $3 THEN $4 ELSE c.last_error END,
        lease_token = NULL, lease_expires_at = NULL, updated_at = now()
    FROM input i
    WHERE c.id = i.id AND c.status = 'PROCESSING'
    RETURNING c.tenant_id, c.correlation_id, c.command, c.status, c.attempts, i.event
), failed AS (
    INSERT INTO events (tenant_id, event, correlation_id, success, payload)
    SELECT tenant_id, event, correlation_id, false,
           jsonb_build_object('command', command, 'error', $4::text, 'attempts', attempts)
    FROM changed WHERE status = 'FAILED'
)
SELECT count(*) FROM changed
"""
LEASE_EXPIRED = "the lease expired: the worker stopped or was cut off before the command finished"

# Leases of commands still being handled, kept alive by their worker.
_RENEW = """
UPDATE commands c
SET lease_expires_at = now() + make_interval(secs => $3)
FROM unnest($1::uuid[], $2::uuid[]) AS t(id, token)
WHERE c.id = t.id AND c.lease_token = t.token AND c.status = 'PROCESSING'
"""

_RELEASE = """
UPDATE commands
SET status = 'PENDING', lease_token = NULL, lease_expires_at = NULL, available_at = now(),
    attempts = greatest(attempts - 1, 0), updated_at = now()
WHERE id = ANY($1::uuid[]) AND lease_token = ANY($2::uuid[]) AND status = 'PROCESSING'
"""


class Outbox:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedCommand]:
        token = uuid.uuid4()
        rows = await self.pool.fetch(_CLAIM, token, lease_seconds, limit)
        return [
            ClaimedCommand(
                id=row["id"],
                tenant_id=row["tenant_id"],
                correlation_id=row["correlation_id"],
                command=row["command"],
                actor=_decode(row["actor"]),
                context=_decode(row["context"]),
                payload=_decode(row["payload"]),
                attempts=row["attempts"],
                lease_token=token,
            )
            for row in rows
        ]

    async def record(
        self,
        successes: Sequence[Success],
        failures: Sequence[Failure],
        *,
        max_attempts: int,
        retry_base_seconds: float,
        retry_max_seconds: float,
    ) -> int:
        """Write outcomes and their events in ONE transaction; returns the events written.

        Each kind is one statement (events inserted and rows updated by one data-modifying CTE),
        so a batch of one kind commits on its own, without BEGIN/COMMIT round trips.
        """
        batches: list[tuple[str, tuple[Any, ...]]] = []
        if successes:
            batches.append(
                (
                    _COMPLETE,
                    (
                        [s.command.id for s in successes],
                        [s.command.lease_token for s in successes],
                        [s.event for s in successes],
                        [_encode(s.payload).decode() for s in successes],
                    ),
                )
            )
        if failures:
            batches.append(
                (
                    _FAIL,
                    (
                        [f.command.id for f in failures],
                        [f.command.lease_token for f in failures],
                        [f.event for f in failures],
                        [f.error[:2000] for f in failures],
                        max_attempts,
                        retry_base_seconds,
                        retry_max_seconds,
                    ),
                )
            )
        async with self.pool.acquire() as connection:
            if len(batches) == 1:
                return len(await connection.fetch(batches[0][0], *batches[0][1]))
            async with connection.transaction():
                return sum([len(await connection.fetch(sql, *args)) for sql, args in batches])

    async def reclaim_expired(
        self, *, max_attempts: int, event_for: Callable[[str], str], limit: int = 1000
    ) -> int:
        """Take back commands whose lease expired: due again, or FAILED once their attempts are
        used up. Returns how many were taken back."""
        async with self.pool.acquire() as connection, connection.transaction():
            expired = await connection.fetch(_EXPIRED, limit)
            if not expired:
                return 0
            return await connection.fetchval(
                _RECLAIM,
                [row["id"] for row in expired],
                [event_for(row["command"]) for row in expired],
                max_attempts,
                LEASE_EXPIRED,
            )

    async def renew(self, commands: Sequence[ClaimedCommand], lease_seconds: float) -> int:
        """Keep the leases of commands still in hand; returns how many are still ours."""
        if not commands:
            return 0
        status = await self.pool.execute(
            _RENEW, [c.id for c in commands], [c.lease_token for c in commands], lease_seconds
        )
        return int(status.split()[-1])

    async def release(self, commands: Sequence[ClaimedCommand]) -> int:
        """Give unfinished commands back (on shutdown) without counting the attempt."""
        if not commands:
            return 0
        status = await self.pool.execute(
            _RELEASE, [c.id for c in commands], list({c.lease_token for c in commands})
        )
        return int(status.split()[-1])
