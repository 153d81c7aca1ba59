"""All SQL of incoming events and their flow control: matching subscriptions, the per-(subscription,
subject) flow rows (throttle ledgers, open debounce windows), windows, and each event's outcomes.

Named statements for the asyncpg driver (the flow rules run on the request's transaction
connection, or the deferred-run starter's); the ORM reads live in the service's repository.
"""

from __future__ import annotations

from sqlalchemy import text

__all__ = [
    "CANCEL_FOR_SCRIPT",
    "CANCEL_FOR_SUBSCRIPTION",
    "FOLD",
    "LOCK_FLOWS",
    "MATCHING_SUBSCRIPTIONS",
    "OPEN",
    "OUTCOMES_OF",
    "RECORD_OUTCOMES",
    "SET_LEDGERS",
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
