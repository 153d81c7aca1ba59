"""The outbox's worker-side statements: claim (fairly across tenants), complete, fail, reclaim,
release.

Plain asyncpg, one statement each, batched over arrays: a worker moves thousands of rows a
second through here. Every state change after a claim is conditional on the claim's lease
token, so a worker whose lease expired (and whose rows another worker took over) can no longer
complete them: each command gets exactly one outcome event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from app.domain.commands.handlers import ClaimedCommand
from app.lib.backoff import retry_delay
from app.lib.db import columns

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


# Fair claims: round-robin across tenants, oldest first within each tenant. A command's turn is
# its place in its tenant's queue of due commands (1: the tenant's oldest); a claim takes the
# first `limit` by (turn, tenant in rotation order), the rotation starting after the tenant where
# this worker's previous claim stopped ($7; '' at first) and wrapping around. So every tenant with
# due work has its oldest command claimed before any tenant has a second, and a tenant with due
# work waits at most one rotation (one claim when the tenants are fewer than the batch), however
# many commands other tenants have queued or how old they are.
#
# The cost follows the batch, not the backlog (100,000 due commands of one tenant cost what ten
# do; a thousand tenants what two hundred do), through ix_commands_due_by_tenant,
# (tenant_id, available_at, id) of the PENDING rows:
# - `after_cursor` then `from_start` skip from tenant to tenant through that index, one descent
#   per tenant with pending work, whose first entry is its oldest pending command (due once its
#   available_at has come); they stop once 2 x `limit` tenants with due work are found (plus those
#   at their TENANT_MAX_IN_FLIGHT, which take nothing).
# - Later turns are read only while those tenants are fewer than 2 x `limit`, and per tenant only
#   as many as can still be among the first 2 x `limit` of the order (a command at turn r comes
#   after every tenant's head and r - 2 of its own tenant's), from just after the tenant's head:
#   at most about limit^2 rows, however deep a queue is.
# - Locking comes last, in that order, SKIP LOCKED, until `limit` rows are locked: a worker
#   claiming at the same moment as another skips what the other holds and takes the next of
#   those 2 x `limit` rather than nothing. Each candidate is looked up by primary key (a lateral
#   lookup: no join plan can turn it into a scan of every due row when the statistics are stale,
#   as they are right after a bulk of commands arrives); the UPDATE then takes the locked ids.
# TENANT_MAX_IN_FLIGHT ($4; NULL: unlimited) caps each tenant's share at what the claiming worker
# may still take of it: $5/$6 are the tenants of the commands it has in hand and their counts.
# Claimed commands come back oldest first, so a worker starts a tenant's commands in due order,
# each with its place in the claim's order (the last one's tenant is where the rotation stopped).
_CLAIM = """
WITH RECURSIVE walk AS (
    SELECT 2 * $3 + count(*) AS tenants_wanted
    FROM unnest($6::int[]) AS held(count) WHERE held.count >= $4
), after_cursor AS (
    (
        SELECT tenant_id, available_at, id, (available_at <= now())::int AS due_found
        FROM commands
        WHERE status = 'PENDING' AND tenant_id > $7
        ORDER BY tenant_id, available_at, id
        LIMIT 1
    )
    UNION ALL
    SELECT next.tenant_id, next.available_at, next.id, h.due_found + (next.available_at <= now())::int
    FROM after_cursor h
    CROSS JOIN LATERAL (
        SELECT c.tenant_id, c.available_at, c.id FROM commands c
        WHERE c.status = 'PENDING' AND c.tenant_id > h.tenant_id
        ORDER BY c.tenant_id, c.available_at, c.id
        LIMIT 1
    ) next
    WHERE h.due_found < (SELECT tenants_wanted FROM walk)
), from_start AS (
    (
        SELECT tenant_id, available_at, id,
               coalesce((SELECT max(due_found) FROM after_cursor), 0)
               + (available_at <= now())::int AS due_found
        FROM commands
        WHERE status = 'PENDING' AND tenant_id <= $7
          AND coalesce((SELECT max(due_found) FROM after_cursor), 0) < (SELECT tenants_wanted FROM walk)
        ORDER BY tenant_id, available_at, id
        LIMIT 1
    )
    UNION ALL
    SELECT next.tenant_id, next.available_at, next.id, h.due_found + (next.available_at <= now())::int
    FROM from_start h
    CROSS JOIN LATERAL (
        SELECT c.tenant_id, c.available_at, c.id FROM commands c
        WHERE c.status = 'PENDING' AND c.tenant_id > h.tenant_id AND c.tenant_id <= $7
        ORDER BY c.tenant_id, c.available_at, c.id
        LIMIT 1
    ) next
    WHERE h.due_found < (SELECT tenants_wanted FROM walk)
), ready AS (
    SELECT h.tenant_id, h.available_at, h.id, h.tenant_id <= $7 AS wrapped,
           $4 - coalesce(held.count, 0) AS room
    FROM (SELECT * FROM after_cursor UNION ALL SELECT * FROM from_start) h
    LEFT JOIN unnest($5::text[], $6::int[]) AS held(tenant_id, count) ON held.tenant_id = h.tenant_id
    WHERE h.available_at <= now() AND ($4 IS NULL OR $4 - coalesce(held.count, 0) > 0)
), fair_share AS (
    SELECT greatest(2 * $3 - count(*) + 1, 1) AS per_tenant FROM ready
), candidates AS MATERIALIZED (
    SELECT id, tenant_id, wrapped, 1::bigint AS turn FROM ready
    UNION ALL
    SELECT later.id, r.tenant_id, r.wrapped, later.turn
    FROM ready r
    CROSS JOIN fair_share f
    CROSS JOIN LATERAL (
        SELECT c.id, 1 + row_number() OVER (ORDER BY c.available_at, c.id) AS turn
        FROM commands c
        WHERE c.tenant_id = r.tenant_id AND c.status = 'PENDING' AND c.available_at <= now()
          AND (c.available_at, c.id) > (r.available_at, r.id)
        ORDER BY c.available_at, c.id
        LIMIT least(r.room, f.per_tenant) - 1
    ) later
    WHERE f.per_tenant > 1
), claimed AS (
    UPDATE commands c
    SET status = 'PROCESSING', lease_token = $1, lease_expires_at = now() + make_interval(secs => $2),
        attempts = c.attempts + 1, updated_at = now()
    WHERE c.id = ANY(ARRAY(
        SELECT locked.id
        FROM (SELECT * FROM candidates ORDER BY turn, wrapped, tenant_id) k
        CROSS JOIN LATERAL (
            SELECT c.id FROM commands c
            WHERE c.id = k.id AND c.status = 'PENDING' AND c.available_at <= now()
            FOR UPDATE SKIP LOCKED
        ) locked
        ORDER BY k.turn, k.wrapped, k.tenant_id
        LIMIT $3
    ))
    RETURNING c.id, c.tenant_id, c.correlation_id, c.command, c.actor::text AS actor,
              c.context::text AS context, c.payload::text AS payload, c.attempts, c.available_at
)
SELECT c.id, c.tenant_id, c.correlation_id, c.command, c.actor, c.context, c.payload, c.attempts,
       row_number() OVER (ORDER BY k.turn, k.wrapped, k.tenant_id) AS place
FROM claimed c
JOIN candidates k ON k.id = c.id
ORDER BY c.available_at, c.id
"""

# The express claim for tenants named by their wake-ups: each one's oldest due command (the head
# of its queue in ix_commands_due_by_tenant: one index descent per tenant), SKIP LOCKED like the
# fair claim. One statement, no planning setting: nothing in it depends on the backlog's size.
_CLAIM_HEADS = """
UPDATE commands c
SET status = 'PROCESSING', lease_token = $1, lease_expires_at = now() + make_interval(secs => $2),
    attempts = c.attempts + 1, updated_at = now()
WHERE c.id = ANY(ARRAY(
    SELECT head.id
    FROM unnest($3::text[]) AS t(tenant_id)
    CROSS JOIN LATERAL (
        SELECT q.id FROM commands q
        WHERE q.tenant_id = t.tenant_id AND q.status = 'PENDING' AND q.available_at <= now()
        ORDER BY q.available_at, q.id
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    ) head
))
RETURNING c.id, c.tenant_id, c.correlation_id, c.command, c.actor::text AS actor,
          c.context::text AS context, c.payload::text AS payload, c.attempts
"""

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
        """Claim up to ``limit`` due commands, round-robin across tenants (see ``_CLAIM``); they
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
                _CLAIM,
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
        rows = await self.pool.fetch(_CLAIM_HEADS, token, lease_seconds, list(tenants))
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

    async def release(self, commands: Sequence[ClaimedCommand]) -> int:
        """Give unfinished commands back (on shutdown) without counting the attempt."""
        if not commands:
            return 0
        status = await self.pool.execute(
            _RELEASE, [c.id for c in commands], list({c.lease_token for c in commands})
        )
        return int(status.split()[-1])
