"""The outbox's claim statements: the fair claim every worker's main loop makes, and the express
claim for tenants a wake-up named (``app.domain.commands.outbox.Outbox`` runs them).
"""

__all__ = ["CLAIM", "CLAIM_HEADS"]

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
CLAIM = """
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
CLAIM_HEADS = """
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
