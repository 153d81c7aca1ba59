"""Runs, their typed variables and executed steps.

Revision ID: 0002_runs
Revises: 0001_scripts
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_runs"
down_revision = "0001_scripts"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
# Times runners report and read back are kept to the millisecond, as the API shows them.
MS = postgresql.TIMESTAMP(timezone=True, precision=3)


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
    ]


def _newest_first(name: str, table: str, *leading: str, **kw: object) -> None:
    op.create_index(name, table, [*leading, sa.text("started_at DESC"), sa.text("id DESC")], **kw)


def upgrade() -> None:
    op.create_table(
        "runs",
        *_common(),
        sa.Column("script_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger_type", sa.String(32), nullable=False),
        # Foreign keys to schedules and incoming events arrive with the tables they point at.
        sa.Column("schedule_id", sa.Uuid(), nullable=True),
        sa.Column("planned_at", TS, nullable=True),
        sa.Column("triggering_event_id", sa.Uuid(), nullable=True),
        sa.Column("event_data", postgresql.JSONB(), nullable=True),
        sa.Column("started_by_id", sa.String(128), nullable=True),
        sa.Column("connector_type", sa.String(100), nullable=True),
        sa.Column("connector_key", sa.String(200), nullable=True),
        sa.Column("started_at", MS, nullable=False),
        sa.Column("ended_at", MS, nullable=True),
        sa.ForeignKeyConstraint(
            ["script_id", "version"],
            ["script_versions.script_id", "script_versions.version"],
            name="fk_runs_script_version",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "status IN ('RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')", name=op.f("ck_runs_status")
        ),
        sa.CheckConstraint(
            "trigger_type IN ('API_RUN', 'SCHEDULED_TASK', 'EVENT_TRIGGER', 'ENDPOINT_REQUEST', "
            "'LIFECYCLE_HOOK')",
            name=op.f("ck_runs_trigger_type"),
        ),
        # Where a run came from must agree with its trigger type.
        sa.CheckConstraint(
            "CASE"
            " WHEN trigger_type = 'SCHEDULED_TASK'"
            " THEN schedule_id IS NOT NULL AND planned_at IS NOT NULL AND triggering_event_id IS NULL"
            " WHEN trigger_type IN ('EVENT_TRIGGER', 'LIFECYCLE_HOOK')"
            " THEN triggering_event_id IS NOT NULL AND schedule_id IS NULL AND planned_at IS NULL"
            " ELSE schedule_id IS NULL AND planned_at IS NULL AND triggering_event_id IS NULL"
            " END",
            name=op.f("ck_runs_trigger_source"),
        ),
        sa.CheckConstraint("(status = 'RUNNING') = (ended_at IS NULL)", name=op.f("ck_runs_ended_at")),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= started_at", name=op.f("ck_runs_ended_after_start")
        ),
    )
    # GET /runs, newest first: by each filter, and by script and status together. README
    # "Runs: indexes" says which index serves which query.
    _newest_first("ix_runs_tenant_started", "runs", "tenant_id")
    _newest_first("ix_runs_tenant_script_started", "runs", "tenant_id", "script_id")
    _newest_first("ix_runs_tenant_script_status_started", "runs", "tenant_id", "script_id", "status")
    _newest_first("ix_runs_tenant_status_started", "runs", "tenant_id", "status")
    _newest_first("ix_runs_tenant_trigger_started", "runs", "tenant_id", "trigger_type")
    _newest_first(
        "ix_runs_tenant_event_started",
        "runs",
        "tenant_id",
        "triggering_event_id",
        postgresql_where=sa.text("triggering_event_id IS NOT NULL"),
    )

    op.create_table(
        "run_variables",
        *_common(),
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("str_val", sa.Text(), nullable=True),
        sa.Column("num_val", sa.Double(), nullable=True),
        sa.Column("bool_val", sa.Boolean(), nullable=True),
        sa.Column("json_val", postgresql.JSONB(), nullable=True),
        # Also the index that reads a run's variables in key order.
        sa.UniqueConstraint("run_id", "key", name="uq_run_variables_run_key"),
        sa.CheckConstraint(
            "num_nonnulls(str_val, num_val, bool_val, json_val) = 1", name=op.f("ck_run_variables_one_value")
        ),
    )

    op.create_table(
        "run_steps",
        *_common(),
        sa.Column("run_id", sa.Uuid(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("node_id", sa.String(200), nullable=False),
        sa.Column("step_type", sa.String(32), nullable=False),
        sa.Column("next_node_id", sa.String(200), nullable=True),
        sa.Column("executed_at", MS, nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=True),
        sa.CheckConstraint(
            "step_type IN ('say', 'wait', 'closedQuestion', 'multipleChoice', 'report', 'statusCheck')",
            name=op.f("ck_run_steps_step_type"),
        ),
        sa.CheckConstraint(
            "data IS NULL OR CASE step_type"
            " WHEN 'closedQuestion' THEN data->>'dataType' = 'closedQuestionData'"
            " WHEN 'multipleChoice' THEN data->>'dataType' = 'multipleChoiceData'"
            " WHEN 'report' THEN data->>'dataType' = 'reportData'"
            " ELSE false END",
            name=op.f("ck_run_steps_data_fits_type"),
        ),
    )
    # A run's steps in the order they were executed.
    op.create_index("ix_run_steps_run_executed", "run_steps", ["run_id", "executed_at", "id"])


def downgrade() -> None:
    op.drop_table("run_steps")
    op.drop_table("run_variables")
    op.drop_table("runs")
