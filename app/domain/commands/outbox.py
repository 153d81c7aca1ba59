"""The outbox's worker-side statements: claim (fairly across tenants), complete, fail, reclaim,
release.

Plain asyncpg, one statement each, batched over arrays: a worker moves thousands of rows a
second through here. Every state change after a claim is conditional on the claim's lease
token, so a worker whose lease expired (and whose rows another worker took over) can no longer
complete them: each command gets exactly one outcome event.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import asyncpg
import msgspec

from app.domain.commands.claims import CLAIM, CLAIM_HEADS
from app.domain.commands.handlers import ClaimedCommand, Failure, Success
from app.lib.backoff import retry_delay
from app.lib.db import columns

__all__ = ["LEASE_EXPIRED", "Outbox"]

_logger = logging.getLogger("app.worker")
_decode = msgspec.json.decode
_encode = msgspec.json.encode


# Outcomes and renewals find their rows by id and lease token. A row holds a lease token exactly
# while it is PROCESSING (ck_commands_lease), so the token is the status check; naming the status
# as well would let the planner walk ix_commands_leases instead of the primary key, and that
# partial index keeps an entry for every command completed since the last vacuum (measured after
# 30,000 completions: a flush of 100 read 30,100 index entries, 9.8 ms against 5.5 ms).
_COMPLETE = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS t(id, token, event, payload)
), done AS (
    UPDATE commands c
    SET status = 'COMPLETED', completed_at = now(), updated_at = now(),
        lease_token = NULL, lease_expires_at = NULL, last_error = NULL
    FROM input i
    WHERE c.id = i.id AND c.lease_token = i.token
    RETURNING c.id, c.tenant_id, c.correlation_id
)
INSERT INTO events (tenant_id, event, correlation_id, success, payload)
SELECT d.tenant_id, i.event, d.correlation_id, true, i.payload::jsonb
FROM done d JOIN input i ON i.id = d.id
RETURNING id
"""

# Retry after each command's delay (``app.lib.backoff.retry_delay``) while attempts remain; then
# FAILED with an event.
_FAIL = """
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $6::float8[])
        AS t(id, token, event, error, delay)
), changed AS (
    UPDATE commands c
    SET status = CASE WHEN c.attempts >= $5 THEN 'FAILED' ELSE 'PENDING' END,
        completed_at = CASE WHEN c.attempts >= $5 THEN now() END,
        available_at = CASE WHEN c.attempts >= $5 THEN c.available_at
            ELSE now() + make_interval(secs => i.delay)
        END,
        lease_token = NULL, lease_expires_at = NULL, last_error = i.error, updated_at = now()
    FROM input i
    WHERE c.id = i.id AND c.lease_token = i.token
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
WHERE c.id = t.id AND c.lease_token = t.token
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
        # Where the round-robin over tenants goes on from: the tenant served last in the last claim.
        self.rotation = ""

    async def claim(
        self,
        limit: int,
        lease_seconds: float,
        *,
        tenant_max_in_flight: int | None = None,
        in_hand: Mapping[str, int] | None = None,
    ) -> list[ClaimedCommand]:
        """Claim up to ``limit`` due commands, round-robin across tenants (see ``claims.CLAIM``); they
        come back oldest first.

        ``in_hand``: how many commands of each tenant the claiming worker is handling now, counted
        against ``tenant_max_in_flight`` (None: no cap).
        """
        token = uuid.uuid4()
        held = in_hand or {}
        async with self.pool.acquire() as connection, connection.transaction():
            # Planned for the rows at hand on every run: a generic plan cached while the table was
            # nearly empty (a fresh worker's first claims) would otherwise stay in use when a
            # backlog of thousands arrives, until the next ANALYZE, and scan the whole table on
            # every claim (measured: 70 ms claims instead of 10 while draining 100,000).
            # Planning costs a millisecond or two per batch; the setting ends with the claim.
            await connection.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            rows = await connection.fetch(
                CLAIM,
                token,
                lease_seconds,
                limit,
                tenant_max_in_flight,
                list(held),
                list(held.values()),
                self.rotation,
            )
        if rows:
            self.rotation = max(rows, key=lambda row: row["place"])["tenant_id"]
        return self._claimed(rows, token)

    async def claim_heads(self, tenants: Sequence[str], lease_seconds: float) -> list[ClaimedCommand]:
        """Claim the oldest due command of each of ``tenants`` (the express claim for tenants a
        wake-up named); the rotation of fair claims is left as it is."""
        token = uuid.uuid4()
        rows = await self.pool.fetch(CLAIM_HEADS, token, lease_seconds, list(tenants))
        return self._claimed(rows, token)

    @staticmethod
    def _claimed(rows: Sequence[asyncpg.Record], token: uuid.UUID) -> list[ClaimedCommand]:
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
                        *columns(successes, "command.id", "command.lease_token", "event"),
                        [_encode(s.payload).decode() for s in successes],
                    ),
                )
            )
        if failures:
            batches.append(
                (
                    _FAIL,
                    (
                        *columns(failures, "command.id", "command.lease_token", "event"),
                        [f.error[:2000] for f in failures],
                        max_attempts,
                        [
                            retry_delay(f.command.attempts, retry_base_seconds, retry_max_seconds)
                            for f in failures
                        ],
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

    async def keep_leases(
        self, in_hand: Callable[[], Sequence[ClaimedCommand]], lease_seconds: float
    ) -> None:
        """Renew the leases of the commands ``in_hand()`` names until cancelled, so a handler slower
        than the lease is not taken over by another worker while it still runs (a third of the
        lease between renewals: two can be missed before it lapses)."""
        while True:
            await asyncio.sleep(lease_seconds / 3)
            try:
                await self.renew(in_hand(), lease_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: renew on the next round
                _logger.warning("worker could not renew its leases (%s)", type(error).__name__)

    async def release(self, commands: Sequence[ClaimedCommand]) -> int:
        """Give unfinished commands back (on shutdown) without counting the attempt."""
        if not commands:
            return 0
        status = await self.pool.execute(
            _RELEASE, [c.id for c in commands], list({c.lease_token for c in commands})
        )
        return int(status.split()[-1])
