"""The outbox's worker-side statements: claim, complete, fail, reclaim, release.

Plain asyncpg, one statement each, batched over arrays: a worker moves thousands of rows a
second through here. Every state change after a claim is conditional on the claim's lease
token, so a worker whose lease expired (and whose rows another worker took over) can no longer
complete them: each command gets exactly one outcome event.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from app.domain.commands.handlers import ClaimedCommand

__all__ = ["Failure", "Outbox", "Success"]

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

_RECLAIM = """
UPDATE commands c
SET status = 'PENDING', lease_token = NULL, lease_expires_at = NULL, available_at = now(), updated_at = now()
FROM (
    SELECT id FROM commands
    WHERE status = 'PROCESSING' AND lease_expires_at < now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
) expired
WHERE c.id = expired.id
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

    async def reclaim_expired(self, limit: int = 1000) -> int:
        status = await self.pool.execute(_RECLAIM, limit)
        return int(status.split()[-1])

    async def release(self, commands: Sequence[ClaimedCommand]) -> int:
        """Give unfinished commands back (on shutdown) without counting the attempt."""
        if not commands:
            return 0
        status = await self.pool.execute(
            _RELEASE, [c.id for c in commands], list({c.lease_token for c in commands})
        )
        return int(status.split()[-1])
