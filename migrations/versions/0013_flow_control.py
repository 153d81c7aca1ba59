"""Flow control on trigger subscriptions: debounce and throttle, and every event's outcome.

- ``trigger_subscriptions`` gains its ``flowControl``: ``debounce_seconds`` (1-3600) with an
  optional ``max_delay_seconds`` (debounce..86400), and a throttle of ``throttle_runs`` (1-1000)
  per ``throttle_per_seconds`` (1-86400), the two throttle columns set together.
- ``trigger_flows``: one row per (subscription, subject) that flow control has seen. Its row lock
  serializes everything that decides for that pair (two events at once, an event and the worker
  starting a debounced run), and it holds the throttle's sliding window (``recent_starts``: the
  start times within the window, at most ``throttle_runs`` of them) and the debounce window that
  is open for new events (``open_window_id``).
- ``deferred_runs``: a debounce window, i.e. a run that is waiting for its due time. ``PENDING``
  until the worker closes it as ``STARTED`` (with ``run_id``), ``SUPPRESSED`` (the throttle said
  no), ``SKIPPED`` (no active version by then) or ``CANCELLED`` (script archived, subscription
  deactivated). ``ix_deferred_runs_due`` serves the worker's claim of due windows; the two
  partial indexes serve the cancellations by script and by subscription.
- ``incoming_event_outcomes``: what each incoming event became per matching subscription; a
  deferred event points at its window with its ``position`` there (arrival order), so the
  window's run lists the folded events in order and the event can say which run it folded into.
- Indexes for ``GET /events/incoming``: the tenant's incoming events newest first, alone or by
  subject or by event name.

Revision ID: 0013_flow_control
Revises: 0012_command_operations
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0013_flow_control"
down_revision = "0012_command_operations"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_WINDOW_STATUS = "status IN ('PENDING', 'STARTED', 'SUPPRESSED', 'SKIPPED', 'CANCELLED')"
_WINDOW_CLOSED = (
    "CASE status"
    " WHEN 'PENDING' THEN closed_at IS NULL AND run_id IS NULL AND reason IS NULL"
    " WHEN 'STARTED' THEN closed_at IS NOT NULL AND run_id IS NOT NULL AND reason IS NULL"
    " ELSE closed_at IS NOT NULL AND run_id IS NULL AND reason IS NOT NULL"
    " END"
)
_OUTCOME = (
    "CASE outcome"
    " WHEN 'STARTED' THEN run_id IS NOT NULL AND deferred_run_id IS NULL AND reason IS NULL"
    " WHEN 'DEFERRED' THEN deferred_run_id IS NOT NULL AND position IS NOT NULL AND run_id IS NULL"
    " AND reason IS NULL"
    " WHEN 'SUPPRESSED' THEN reason = 'THROTTLED' AND run_id IS NULL AND deferred_run_id IS NULL"
    " WHEN 'SKIPPED' THEN reason IN ('SCRIPT_ARCHIVED', 'NO_ACTIVE_VERSION') AND run_id IS NULL"
    " AND deferred_run_id IS NULL"
    " ELSE false END"
)
_INCOMING_LISTS = {
    "ix_incoming_events_tenant_created": ["tenant_id"],
    "ix_incoming_events_tenant_subject": ["tenant_id", "subject"],
    "ix_incoming_events_tenant_event_name": ["tenant_id", "event_name"],
}


def _subscription_id(**kw: object) -> sa.Column:
    return sa.Column(
        "subscription_id",
        sa.Uuid(),
        sa.ForeignKey("trigger_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
        **kw,
    )


def upgrade() -> None:
    op.add_column("trigger_subscriptions", sa.Column("debounce_seconds", sa.Integer(), nullable=True))
    op.add_column("trigger_subscriptions", sa.Column("max_delay_seconds", sa.Integer(), nullable=True))
    op.add_column("trigger_subscriptions", sa.Column("throttle_runs", sa.Integer(), nullable=True))
    op.add_column("trigger_subscriptions", sa.Column("throttle_per_seconds", sa.Integer(), nullable=True))
    op.create_check_constraint(
        "ck_trigger_subscriptions_debounce",
        "trigger_subscriptions",
        "debounce_seconds IS NULL OR debounce_seconds BETWEEN 1 AND 3600",
    )
    op.create_check_constraint(
        "ck_trigger_subscriptions_max_delay",
        "trigger_subscriptions",
        "max_delay_seconds IS NULL OR (debounce_seconds IS NOT NULL"
        " AND max_delay_seconds BETWEEN debounce_seconds AND 86400)",
    )
    op.create_check_constraint(
        "ck_trigger_subscriptions_throttle",
        "trigger_subscriptions",
        "(throttle_runs IS NULL AND throttle_per_seconds IS NULL)"
        " OR (throttle_runs BETWEEN 1 AND 1000 AND throttle_per_seconds BETWEEN 1 AND 86400)",
    )

    op.create_table(
        "trigger_flows",
        _subscription_id(primary_key=True),
        sa.Column("subject", sa.String(128), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column(
            "recent_starts",
            postgresql.ARRAY(TS),
            nullable=False,
            server_default=sa.text("'{}'::timestamptz[]"),
        ),
        sa.Column("open_window_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )

    op.create_table(
        "deferred_runs",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        _subscription_id(),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("script_id", sa.Uuid(), sa.ForeignKey("scripts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default=sa.text("'PENDING'")),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("first_event_at", TS, nullable=False),
        sa.Column("last_event_at", TS, nullable=False),
        sa.Column("last_event_id", sa.Uuid(), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("deadline_at", TS, nullable=True),
        # Not a foreign key: retention prunes runs, the window's record stays meaningful.
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(_WINDOW_STATUS, name="ck_deferred_runs_status"),
        sa.CheckConstraint(_WINDOW_CLOSED, name="ck_deferred_runs_closed"),
        sa.CheckConstraint("event_count >= 1", name="ck_deferred_runs_event_count"),
        sa.CheckConstraint(
            "last_event_at >= first_event_at AND due_at > last_event_at", name="ck_deferred_runs_times"
        ),
        sa.CheckConstraint("deadline_at IS NULL OR due_at <= deadline_at", name="ck_deferred_runs_deadline"),
    )
    op.create_index(
        "ix_deferred_runs_due",
        "deferred_runs",
        ["due_at", "id"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_deferred_runs_pending_script",
        "deferred_runs",
        ["script_id"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )
    op.create_index(
        "ix_deferred_runs_pending_subscription",
        "deferred_runs",
        ["subscription_id"],
        postgresql_where=sa.text("status = 'PENDING'"),
    )

    op.create_table(
        "incoming_event_outcomes",
        sa.Column(
            "event_id",
            sa.Uuid(),
            sa.ForeignKey("incoming_events.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        _subscription_id(primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("script_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column(
            "deferred_run_id",
            sa.Uuid(),
            sa.ForeignKey("deferred_runs.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.CheckConstraint(_OUTCOME, name="ck_incoming_event_outcomes_outcome"),
    )
    # A window's events in arrival order (the coalescedEventIds of its run).
    op.create_index(
        "uq_incoming_event_outcomes_window",
        "incoming_event_outcomes",
        ["deferred_run_id", "position"],
        unique=True,
        postgresql_where=sa.text("deferred_run_id IS NOT NULL"),
    )
    for name, columns in _INCOMING_LISTS.items():
        op.create_index(
            name,
            "incoming_events",
            [*columns, sa.text("created_at DESC"), sa.text("id DESC")],
            if_not_exists=True,
        )


def downgrade() -> None:
    for name in _INCOMING_LISTS:
        op.drop_index(name, table_name="incoming_events", if_exists=True)
    op.drop_table("incoming_event_outcomes")
    op.drop_table("deferred_runs")
    op.drop_table("trigger_flows")
    for name in ("throttle", "max_delay", "debounce"):
        op.drop_constraint(f"ck_trigger_subscriptions_{name}", "trigger_subscriptions", type_="check")
    for column in ("throttle_per_seconds", "throttle_runs", "max_delay_seconds", "debounce_seconds"):
        op.drop_column("trigger_subscriptions", column)
