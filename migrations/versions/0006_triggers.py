"""Triggers: event types, trigger subscriptions, incoming events, schedules, custom endpoints,
the lifecycle-hook cursor, and the keys that make triggered runs exactly-once.

Revision ID: 0006_triggers
Revises: 0005_idempotency
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_triggers"
down_revision = "0005_idempotency"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
MS = postgresql.TIMESTAMP(timezone=True, precision=3)


class XID8(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
    ]


def _script_id() -> sa.Column:
    return sa.Column("script_id", sa.Uuid(), sa.ForeignKey("scripts.id", ondelete="CASCADE"), nullable=False)


def _newest_first(name: str, table: str, *leading: str, **kw: object) -> None:
    op.create_index(name, table, [*leading, sa.text("created_at DESC"), sa.text("id DESC")], **kw)


def upgrade() -> None:
    op.create_table(
        "event_types",
        *_common(),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_event_types_tenant_name"),
        sa.CheckConstraint("name ~ '^[A-Za-z][A-Za-z0-9_.]{0,99}$'", name="ck_event_types_name"),
    )
    _newest_first("ix_event_types_tenant_created", "event_types", "tenant_id")

    op.create_table(
        "trigger_subscriptions",
        *_common(),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("event_name", sa.String(100), nullable=False),
        _script_id(),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        sa.Column("deactivated_at", TS, nullable=True),
        sa.CheckConstraint(
            "subject = '*' OR subject ~ '^[A-Za-z0-9_.:-]{1,128}$'", name="ck_trigger_subscriptions_subject"
        ),
        sa.CheckConstraint(
            "active = (deactivated_at IS NULL)", name="ck_trigger_subscriptions_deactivated_at"
        ),
    )
    # At most one active subscription per (tenant, subject, event), whatever its script: two
    # concurrent creates cannot both win. Also the index that matches an incoming event
    # (subject IN (S, '*') AND event_name = E: two probes).
    op.create_index(
        "uq_trigger_subscriptions_active",
        "trigger_subscriptions",
        ["tenant_id", "subject", "event_name"],
        unique=True,
        postgresql_where=sa.text("active"),
    )
    _newest_first("ix_trigger_subscriptions_subject", "trigger_subscriptions", "tenant_id", "subject")

    op.create_table(
        "incoming_events",
        *_common(),
        sa.Column("event_name", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(128), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=True),
        # The sender's own id of the event (POST /events): the same one twice is one event.
        sa.Column("source_event_id", sa.String(200), nullable=True),
        # Set when the event is a lifecycle event of the event store recorded by the hook dispatcher.
        sa.Column("lifecycle_event_id", sa.BigInteger(), nullable=True),
        sa.Column("received_by_id", sa.String(128), nullable=True),
        # What POST /events answered ({runs, skipped}), replayed for a repeated sourceEventId.
        sa.Column("answer", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.create_index(
        "uq_incoming_events_source",
        "incoming_events",
        ["tenant_id", "source_event_id"],
        unique=True,
        postgresql_where=sa.text("source_event_id IS NOT NULL"),
    )
    op.create_index(
        "uq_incoming_events_lifecycle",
        "incoming_events",
        ["lifecycle_event_id"],
        unique=True,
        postgresql_where=sa.text("lifecycle_event_id IS NOT NULL"),
    )

    op.create_table(
        "schedules",
        *_common(),
        _script_id(),
        sa.Column("cron", sa.String(120), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        # The planned time of the next fire, and when the scheduler should next look at the
        # schedule (the same, or later while a failed fire waits for its retry).
        sa.Column("next_fire_at", TS, nullable=True),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_fired_at", TS, nullable=True),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        sa.Column("updated_by_id", sa.String(128), nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
        sa.CheckConstraint(
            "NOT active OR (next_fire_at IS NOT NULL AND due_at IS NOT NULL)", name="ck_schedules_due"
        ),
        sa.CheckConstraint("deleted_at IS NULL OR NOT active", name="ck_schedules_deleted_inactive"),
        sa.CheckConstraint("failed_attempts >= 0", name="ck_schedules_failed_attempts"),
    )
    # The scheduler's claim: active schedules by due time.
    op.create_index("ix_schedules_due", "schedules", ["due_at"], postgresql_where=sa.text("active"))
    _newest_first(
        "ix_schedules_script",
        "schedules",
        "tenant_id",
        "script_id",
        postgresql_where=sa.text("deleted_at IS NULL"),
    )

    op.create_table(
        "endpoints",
        *_common(),
        _script_id(),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("auth_required", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        # Also the index a /hooks request is looked up by.
        sa.UniqueConstraint("tenant_id", "method", "route", name="uq_endpoints_tenant_method_route"),
        sa.CheckConstraint("method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')", name="ck_endpoints_method"),
        sa.CheckConstraint(
            "route ~ '^[a-z0-9][a-z0-9/_-]*$' AND route !~ '//' AND route !~ '/$'", name="ck_endpoints_route"
        ),
    )
    _newest_first("ix_endpoints_script", "endpoints", "tenant_id", "script_id")

    # Where the lifecycle-hook dispatcher stopped reading the event store, as an event-store
    # position (xid, id). It starts at "now": history from before triggers existed is not replayed.
    op.create_table(
        "worker_cursors",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("xid", XID8(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False, server_default=sa.text("now()")),
    )
    op.execute(
        "INSERT INTO worker_cursors (name, xid, event_id) "
        "VALUES ('lifecycle_hooks', pg_snapshot_xmin(pg_current_snapshot()), 0)"
    )

    # Runs now point at the schedule or the incoming event that started them.
    op.create_foreign_key("fk_runs_schedule", "runs", "schedules", ["schedule_id"], ["id"])
    op.create_foreign_key(
        "fk_runs_triggering_event", "runs", "incoming_events", ["triggering_event_id"], ["id"]
    )
    # Exactly one scheduled run per fire time, whoever inserts it (several schedulers, a
    # runner's execution report): inserts use ON CONFLICT DO NOTHING on this index.
    op.create_index(
        "uq_runs_schedule_planned",
        "runs",
        ["schedule_id", "planned_at"],
        unique=True,
        postgresql_where=sa.text("trigger_type = 'SCHEDULED_TASK'"),
    )
    # At most one run of a script per incoming event: a second matching subscription of the
    # same script, a retried execution report and a second dispatcher all find the first run.
    op.create_index(
        "uq_runs_event_script",
        "runs",
        ["triggering_event_id", "script_id"],
        unique=True,
        postgresql_where=sa.text("triggering_event_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_runs_event_script", table_name="runs")
    op.drop_index("uq_runs_schedule_planned", table_name="runs")
    op.drop_constraint("fk_runs_triggering_event", "runs", type_="foreignkey")
    op.drop_constraint("fk_runs_schedule", "runs", type_="foreignkey")
    op.drop_table("worker_cursors")
    op.drop_table("endpoints")
    op.drop_table("schedules")
    op.drop_table("incoming_events")
    op.drop_table("trigger_subscriptions")
    op.drop_table("event_types")
