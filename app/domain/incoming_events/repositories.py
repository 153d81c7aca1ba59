"""All SQL of incoming events and their flow control: storing an event (once per
``sourceEventId``) and its answer, reading events, matching subscriptions, the per-(subscription,
subject) flow rows (throttle ledgers, open debounce windows), windows, each event's outcomes, and
the deferred-run starter's statements (claiming due windows fairly across tenants, their events,
closing them).

The event itself goes through ``IncomingEventRepository`` on the request's session; the rest are
named statements for the asyncpg driver (the flow rules run on the request's transaction
connection, the deferred-run starter, ``app.worker.deferred_runs``, on its own).
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import Row, select, text, update

from app.db.triggers import IncomingEvent
from app.lib.repository import NewestFirstFilters, Repository

__all__ = [
    "CANCEL_FOR_SCRIPT",
    "CANCEL_FOR_SUBSCRIPTION",
    "CLAIM_DUE_WINDOWS",
    "CLOSE_WINDOWS",
    "EXISTING_RUNS",
    "FOLD",
    "HOOK_ANSWER",
    "HOOK_CURSOR_NAME",
    "HOOK_LOCK_CURSOR",
    "HOOK_MATCHES",
    "HOOK_MOVE_CURSOR",
    "HOOK_READ",
    "HOOK_RECORD",
    "HOOK_RUN_CHAINS",
    "LOCK_FLOWS",
    "MATCHING_SUBSCRIPTIONS",
    "OPEN",
    "OUTCOMES_OF",
    "RECORD_OUTCOMES",
    "SET_LEDGERS",
    "WINDOW_EVENTS",
    "IncomingEventFilters",
    "IncomingEventRepository",
]

# The active subscriptions an event on (subject, event name) matches, on the subject or on '*',
# with their flow control and the state of their scripts; served by uq_trigger_subscriptions_active.
MATCHING_SUBSCRIPTIONS = text(
    """
    SELECT sub.id AS subscription_id, sub.script_id, sub.debounce_seconds, sub.max_delay_seconds,
           sub.throttle_runs, sub.throttle_per_seconds,
           s.active_version_id IS NOT NULL AS has_active_version, s.status = 'ARCHIVED' AS archived
    FROM trigger_subscriptions AS sub
    JOIN scripts AS s ON s.id = sub.script_id
    WHERE sub.tenant_id = :tenant_id AND sub.event_name = :event_name
      AND sub.subject IN (:subject, '*') AND sub.active
    ORDER BY sub.id
    """
)

# Locks (creating when new) the flow row of each (subscription, subject), in the order given.
LOCK_FLOWS = """
INSERT INTO trigger_flows AS f (subscription_id, subject, tenant_id, created_at, updated_at)
SELECT s.id, $2::varchar, $3::varchar, $4::timestamptz, $4::timestamptz
FROM unnest($1::uuid[]) WITH ORDINALITY AS s(id, n) ORDER BY s.n
ON CONFLICT (subscription_id, subject) DO UPDATE SET updated_at = excluded.updated_at
RETURNING f.subscription_id, f.recent_starts, f.open_window_id
"""

SET_LEDGERS = """
UPDATE trigger_flows AS f SET recent_starts = u.starts::timestamptz[], updated_at = $4::timestamptz
FROM unnest($1::uuid[], $2::varchar[], $3::text[]) AS u(subscription_id, subject, starts)
WHERE f.subscription_id = u.subscription_id AND f.subject = u.subject
"""

# The event joins the open window of its pair while that window is not yet due.
FOLD = """
UPDATE deferred_runs AS d
SET event_count = d.event_count + 1, last_event_id = $2::uuid, last_event_at = $3::timestamptz,
    due_at = least($3::timestamptz + make_interval(secs => u.debounce), coalesce(d.deadline_at, 'infinity')),
    updated_at = $3::timestamptz
FROM unnest($1::uuid[], $4::int[]) AS u(id, debounce)
WHERE d.id = u.id AND d.status = 'PENDING' AND d.due_at > $3::timestamptz
RETURNING d.id, d.subscription_id, d.due_at, d.event_count
"""

# Otherwise it opens the pair's next window.
OPEN = """
WITH opened AS (
    INSERT INTO deferred_runs (id, tenant_id, subscription_id, subject, script_id, status, event_count,
                               first_event_at, last_event_at, last_event_id, due_at, deadline_at,
                               created_at, updated_at)
    SELECT u.id, $2::varchar, u.subscription_id, $3::varchar, u.script_id, 'PENDING', 1, $4::timestamptz,
           $4::timestamptz, $5::uuid, $4::timestamptz + make_interval(secs => u.debounce),
           $4::timestamptz + make_interval(secs => u.max_delay), $4::timestamptz, $4::timestamptz
    FROM unnest($1::uuid[], $6::uuid[], $7::uuid[], $8::int[], $9::int[])
         AS u(id, subscription_id, script_id, debounce, max_delay)
    RETURNING id, subscription_id, due_at
), pointed AS (
    UPDATE trigger_flows AS f SET open_window_id = o.id
    FROM opened AS o WHERE f.subscription_id = o.subscription_id AND f.subject = $3::varchar
)
SELECT id, subscription_id, due_at FROM opened
"""

CANCEL_FOR_SCRIPT = """
UPDATE deferred_runs SET status = 'CANCELLED', reason = 'SCRIPT_ARCHIVED', closed_at = $3, updated_at = $3
WHERE script_id = $1 AND tenant_id = $2 AND status = 'PENDING'
"""

CANCEL_FOR_SUBSCRIPTION = """
UPDATE deferred_runs SET status = 'CANCELLED', reason = 'SUBSCRIPTION_DEACTIVATED', closed_at = $3,
                         updated_at = $3
WHERE subscription_id = $1 AND tenant_id = $2 AND status = 'PENDING'
"""

RECORD_OUTCOMES = """
INSERT INTO incoming_event_outcomes (event_id, subscription_id, tenant_id, script_id, outcome, reason,
                                     run_id, deferred_run_id, position)
SELECT $1::uuid, u.subscription_id, $2::varchar, u.script_id, u.outcome, u.reason, u.run_id,
       u.deferred_run_id, u.position
FROM unnest($3::uuid[], $4::uuid[], $5::varchar[], $6::varchar[], $7::uuid[], $8::uuid[], $9::int[])
     AS u(subscription_id, script_id, outcome, reason, run_id, deferred_run_id, position)
"""

# Each event's outcomes as of now: a deferred one through the state of its window.
OUTCOMES_OF = """
SELECT o.event_id, o.subscription_id, o.script_id, o.outcome, o.reason, o.run_id,
       w.status AS window_status, w.reason AS window_reason, w.due_at, w.run_id AS window_run_id
FROM incoming_event_outcomes AS o
LEFT JOIN deferred_runs AS w ON w.id = o.deferred_run_id
WHERE o.event_id = ANY($1::uuid[]) AND o.tenant_id = $2
ORDER BY o.event_id, o.subscription_id
"""

# Due windows, fairly across tenants like due schedules (``app.domain.schedules.repositories``),
# each locked with the flow row of its (subscription, subject), SKIP LOCKED.
CLAIM_DUE_WINDOWS = """
SELECT w.id, w.tenant_id, w.subscription_id, w.subject, w.script_id, w.last_event_id, w.due_at,
       sub.active AS subscription_active, sub.throttle_runs, sub.throttle_per_seconds,
       s.status = 'ARCHIVED' AS archived, s.active_version_id IS NOT NULL AS has_active_version,
       f.recent_starts
FROM (
    SELECT id, tenant_id, tenant_id <= $3 AS wrapped,
           row_number() OVER (PARTITION BY tenant_id ORDER BY due_at, id) AS turn
    FROM deferred_runs
    WHERE status = 'PENDING' AND due_at <= $1
    ORDER BY turn, wrapped, tenant_id
    LIMIT 2 * $2
) AS fair
JOIN deferred_runs AS w ON w.id = fair.id
JOIN trigger_flows AS f ON f.subscription_id = w.subscription_id AND f.subject = w.subject
JOIN trigger_subscriptions AS sub ON sub.id = w.subscription_id
JOIN scripts AS s ON s.id = w.script_id
WHERE w.status = 'PENDING' AND w.due_at <= $1
ORDER BY fair.turn, fair.wrapped, fair.tenant_id
LIMIT $2
FOR UPDATE OF w, f SKIP LOCKED
"""
# The run's source: the window's last event, and its events in arrival order.
WINDOW_EVENTS = """
SELECT w.id, ie.event_name, ie.subject, ie.payload::text AS payload, ie.source_event_id, ie.received_by_id,
       ARRAY(SELECT o.event_id FROM incoming_event_outcomes AS o
             WHERE o.deferred_run_id = w.id ORDER BY o.position) AS event_ids
FROM deferred_runs AS w
JOIN incoming_events AS ie ON ie.id = w.last_event_id
WHERE w.id = ANY($1::uuid[])
"""
# The runs of (event, script) pairs that exist already.
EXISTING_RUNS = """
SELECT r.triggering_event_id, r.script_id, r.id
FROM unnest($1::uuid[], $2::uuid[]) AS k(event_id, script_id)
JOIN runs AS r ON r.triggering_event_id = k.event_id AND r.script_id = k.script_id
"""
CLOSE_WINDOWS = """
UPDATE deferred_runs AS w
SET status = u.status, reason = u.reason, run_id = u.run_id, closed_at = $5::timestamptz,
    updated_at = $5::timestamptz
FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::uuid[]) AS u(id, status, reason, run_id)
WHERE w.id = u.id
"""


class IncomingEventFilters(NewestFirstFilters, total=False):
    """What narrows the list of a tenant's incoming events (None narrows nothing)."""

    subject: str | None
    event_name: str | None


class IncomingEventRepository(Repository[IncomingEvent]):
    model_type = IncomingEvent

    async def get_of_tenant(self, event_id: uuid.UUID, tenant_id: str) -> IncomingEvent | None:
        return await self.get_one_or_none(IncomingEvent.id == event_id, IncomingEvent.tenant_id == tenant_id)

    async def insert_unless_repeated(
        self, now: datetime.datetime, source_event_id: str | None, **values: Any
    ) -> uuid.UUID | None:
        """The new event's id; None when the tenant has an event of this ``source_event_id``
        already. A concurrent insert of the same one waits here for the first to commit, then
        inserts nothing."""
        repeat = {
            "index_elements": ["tenant_id", "source_event_id"],
            "index_where": IncomingEvent.source_event_id.is_not(None),
        }
        return await self.insert_returning(
            now,
            on_conflict=repeat if source_event_id is not None else None,
            returning=IncomingEvent.id,
            source_event_id=source_event_id,
            **values,
        )

    async def first_answer(self, tenant_id: str, source_event_id: str) -> tuple[uuid.UUID, Any]:
        """The id and stored answer of the tenant's event of ``source_event_id``, which exists."""
        first = (
            await self.session.execute(
                select(IncomingEvent.id, IncomingEvent.answer).where(
                    IncomingEvent.tenant_id == tenant_id,
                    IncomingEvent.source_event_id == source_event_id,
                )
            )
        ).one()
        return first.id, first.answer

    async def matching_subscriptions(self, tenant_id: str, event_name: str, subject: str) -> list[Row[Any]]:
        """``MATCHING_SUBSCRIPTIONS``: the active subscriptions the event matches, by id."""
        return list(
            (
                await self.session.execute(
                    MATCHING_SUBSCRIPTIONS,
                    {"tenant_id": tenant_id, "event_name": event_name, "subject": subject},
                )
            ).all()
        )

    async def store_answer(self, event_id: uuid.UUID, answer: Any) -> None:
        """The answer a repeat of the event gets (the builtins of ``EventAccepted``)."""
        await self.session.execute(
            update(IncomingEvent).where(IncomingEvent.id == event_id).values(answer=answer)
        )


# ---- lifecycle hooks: the dispatcher's statements (app/worker/hooks.py) ----------------------

# The dispatcher's position in the sequenced events, one row in worker_cursors.
HOOK_CURSOR_NAME = "lifecycle_hooks"
HOOK_LOCK_CURSOR = (
    f"SELECT xid, event_id FROM worker_cursors WHERE name = '{HOOK_CURSOR_NAME}' FOR UPDATE SKIP LOCKED"
)
# The next sequenced lifecycle events and, from the same snapshot, the newest sequenced
# position: when the page is not full, the cursor may move up to it (whatever is sequenced later
# gets a larger position; see app.domain.events.repositories).
HOOK_READ = """
WITH newest AS (
    SELECT xid, id FROM events WHERE xid IS NOT NULL ORDER BY xid DESC, id DESC LIMIT 1
)
SELECT n.xid AS newest_xid, n.id AS newest_id, e.id, e.xid, e.tenant_id, e.event, e.payload,
       e.occurred_at
FROM (SELECT 1) AS one
LEFT JOIN newest AS n ON true
LEFT JOIN LATERAL (
    SELECT id, xid, tenant_id, event, payload::text AS payload, occurred_at
    FROM events
    WHERE (xid, id) > ($1::xid8, $2::bigint) AND event = ANY($3::text[])
    ORDER BY xid, id
    LIMIT $4
) AS e ON true
"""
# Where each run stands in a hook chain: its depth, and the lifecycle event that started the
# chain (a hook run's ``originEventId``; none for other runs, whose events start chains).
HOOK_RUN_CHAINS = """
SELECT id, CASE WHEN trigger_type = 'LIFECYCLE_HOOK'
                THEN coalesce((event_data->>'hookDepth')::integer, 1) ELSE 0 END AS depth,
       CASE WHEN trigger_type = 'LIFECYCLE_HOOK'
                THEN coalesce((event_data->>'originEventId')::bigint,
                              (event_data->>'lifecycleEventId')::bigint)
       END AS origin
FROM runs WHERE id = ANY($1::uuid[])
"""
# Active subscriptions matching each event (by tenant, name, subject or '*'), created before the
# event happened, except the subject script's own; one row per (event, script).
HOOK_MATCHES = """
SELECT DISTINCT e.idx, sub.script_id, s.active_version_id IS NOT NULL AS has_active_version,
       s.status = 'ARCHIVED' AS archived
FROM unnest($1::integer[], $2::varchar[], $3::varchar[], $4::varchar[], $5::timestamptz[])
     AS e(idx, tenant_id, event_name, subject, occurred_at)
JOIN trigger_subscriptions AS sub
  ON sub.tenant_id = e.tenant_id AND sub.event_name = e.event_name AND sub.subject IN (e.subject, '*')
     AND sub.active AND sub.created_at <= e.occurred_at
JOIN scripts AS s ON s.id = sub.script_id
WHERE sub.script_id::text <> e.subject
ORDER BY e.idx, sub.script_id
"""
HOOK_RECORD = """
INSERT INTO incoming_events (id, tenant_id, event_name, subject, payload, lifecycle_event_id, answer,
                             created_at, updated_at)
SELECT i.id, i.tenant_id, i.event_name, i.subject, i.payload::jsonb, i.lifecycle_event_id, '{}'::jsonb,
       now(), now()
FROM unnest($1::uuid[], $2::varchar[], $3::varchar[], $4::varchar[], $5::text[], $6::bigint[])
     AS i(id, tenant_id, event_name, subject, payload, lifecycle_event_id)
ON CONFLICT (lifecycle_event_id) WHERE lifecycle_event_id IS NOT NULL DO NOTHING
RETURNING id, lifecycle_event_id
"""
HOOK_ANSWER = """
UPDATE incoming_events AS ie SET answer = a.answer::jsonb
FROM unnest($1::uuid[], $2::text[]) AS a(id, answer)
WHERE ie.id = a.id
"""
HOOK_MOVE_CURSOR = f"""
UPDATE worker_cursors SET xid = $1::xid8, event_id = $2, updated_at = now() WHERE name = '{HOOK_CURSOR_NAME}'
"""


# Retention (the worker's maintenance runs it in batches of $1 rows).
# Incoming events (UUIDv7 ids, like runs) past the event retention that no retained run names
# as its triggering event: traceability (run → triggeringEventId) holds as long as the run does.
# Nor an event folded into a debounce window still pending: its run has yet to start from it.
PRUNE_INCOMING = """
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
PRUNE_WINDOWS = """
DELETE FROM deferred_runs WHERE id IN (
    SELECT d.id FROM deferred_runs AS d
    WHERE d.status <> 'PENDING' AND d.closed_at < $2
      AND NOT EXISTS (SELECT FROM incoming_event_outcomes AS o WHERE o.deferred_run_id = d.id)
    ORDER BY d.closed_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""

PRUNE_FLOWS = """
DELETE FROM trigger_flows WHERE (subscription_id, subject) IN (
    SELECT f.subscription_id, f.subject FROM trigger_flows AS f
    WHERE f.updated_at < $2
      AND NOT EXISTS (SELECT FROM deferred_runs AS d WHERE d.id = f.open_window_id AND d.status = 'PENDING')
    ORDER BY f.updated_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
