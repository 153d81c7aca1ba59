"""Runs of script versions, the typed variables a runner reports, and the steps it executed."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.naming import conv

from app.db.base import Base, TenantScoped, Time, newest_first, one_of

__all__ = [
    "RUN_STATUSES",
    "STEP_TYPES",
    "TRIGGER_TYPES",
    "Run",
    "RunStep",
    "RunVariable",
]

RUN_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
TRIGGER_TYPES = ("API_RUN", "SCHEDULED_TASK", "EVENT_TRIGGER", "ENDPOINT_REQUEST", "LIFECYCLE_HOOK")
STEP_TYPES = ("say", "wait", "closedQuestion", "multipleChoice", "report", "statusCheck")
# The data tag each step type may carry; step types absent here take no data.
DATA_TYPE_OF_STEP = {
    "closedQuestion": "closedQuestionData",
    "multipleChoice": "multipleChoiceData",
    "report": "reportData",
}

# None is stored as SQL NULL, never as the JSON value null (CHECKs count non-null values).
Json = JSONB(none_as_null=True)
# Times a runner reports or reads back are kept to the millisecond, as the API shows them.
MillisecondTime = TIMESTAMP(timezone=True, precision=3)


# CHECK names are wrapped in conv() so the metadata naming convention does not prefix them again.

# Where a run came from must agree with its trigger type (SPEC section 5).
TRIGGER_SOURCE_CHECK = (
    "CASE"
    " WHEN trigger_type = 'SCHEDULED_TASK'"
    " THEN schedule_id IS NOT NULL AND planned_at IS NOT NULL AND triggering_event_id IS NULL"
    " WHEN trigger_type IN ('EVENT_TRIGGER', 'LIFECYCLE_HOOK')"
    " THEN triggering_event_id IS NOT NULL AND schedule_id IS NULL AND planned_at IS NULL"
    " ELSE schedule_id IS NULL AND planned_at IS NULL AND triggering_event_id IS NULL"
    " END"
)
STEP_DATA_CHECK = (
    "data IS NULL OR CASE step_type"
    + "".join(f" WHEN '{step}' THEN data->>'dataType' = '{tag}'" for step, tag in DATA_TYPE_OF_STEP.items())
    + " ELSE false END"
)


class Run(TenantScoped, Base):
    __tablename__ = "runs"

    script_id: Mapped[uuid.UUID] = mapped_column()
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    trigger_type: Mapped[str] = mapped_column(String(32))
    schedule_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("schedules.id", name="fk_runs_schedule"))
    planned_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    triggering_event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("incoming_events.id", name="fk_runs_triggering_event")
    )
    event_data: Mapped[dict[str, Any] | None] = mapped_column(Json)
    started_by_id: Mapped[str | None] = mapped_column(String(128))
    connector_type: Mapped[str | None] = mapped_column(String(100))
    connector_key: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime.datetime] = mapped_column(MillisecondTime)
    ended_at: Mapped[datetime.datetime | None] = mapped_column(MillisecondTime)

    __table_args__ = (
        # A run is of one existing version; versions are never deleted while their script lives.
        ForeignKeyConstraint(
            ["script_id", "version"],
            ["script_versions.script_id", "script_versions.version"],
            name="fk_runs_script_version",
            ondelete="CASCADE",
        ),
        CheckConstraint(one_of("status", RUN_STATUSES), name=conv("ck_runs_status")),
        CheckConstraint(one_of("trigger_type", TRIGGER_TYPES), name=conv("ck_runs_trigger_type")),
        CheckConstraint(TRIGGER_SOURCE_CHECK, name=conv("ck_runs_trigger_source")),
        CheckConstraint("(status = 'RUNNING') = (ended_at IS NULL)", name=conv("ck_runs_ended_at")),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name=conv("ck_runs_ended_after_start")),
        # GET /runs: newest first per tenant, by each filter and by script and status together;
        # docs/performance.md, "The runs list: indexes", says which index serves which query.
        newest_first("ix_runs_tenant_started", "tenant_id", by="started_at"),
        newest_first("ix_runs_tenant_script_started", "tenant_id", "script_id", by="started_at"),
        newest_first(
            "ix_runs_tenant_script_status_started", "tenant_id", "script_id", "status", by="started_at"
        ),
        newest_first("ix_runs_tenant_status_started", "tenant_id", "status", by="started_at"),
        newest_first("ix_runs_tenant_trigger_started", "tenant_id", "trigger_type", by="started_at"),
        newest_first(
            "ix_runs_tenant_event_started",
            "tenant_id",
            "triggering_event_id",
            by="started_at",
            postgresql_where=text("triggering_event_id IS NOT NULL"),
        ),
        # Exactly one scheduled run per fire time, and one run of a script per incoming event,
        # whoever inserts it: triggered starts and execution reports use ON CONFLICT DO NOTHING.
        Index(
            "uq_runs_schedule_planned",
            "schedule_id",
            "planned_at",
            unique=True,
            postgresql_where=text("trigger_type = 'SCHEDULED_TASK'"),
        ),
        Index(
            "uq_runs_event_script",
            "triggering_event_id",
            "script_id",
            unique=True,
            postgresql_where=text("triggering_event_id IS NOT NULL"),
        ),
        # One run of a script per originating change in a lifecycle-hook chain.
        Index(
            "uq_runs_hook_origin_script",
            "script_id",
            text("(event_data ->> 'originEventId')"),
            unique=True,
            postgresql_where=text("trigger_type = 'LIFECYCLE_HOOK' AND event_data ? 'originEventId'"),
        ),
    )


class RunVariable(TenantScoped, Base):
    __tablename__ = "run_variables"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    str_val: Mapped[str | None] = mapped_column(Text)
    num_val: Mapped[float | None] = mapped_column(Double)
    bool_val: Mapped[bool | None] = mapped_column(Boolean)
    json_val: Mapped[Any | None] = mapped_column(Json)

    __table_args__ = (
        # Also the index that reads a run's variables in key order.
        UniqueConstraint("run_id", "key", name="uq_run_variables_run_key"),
        CheckConstraint(
            "num_nonnulls(str_val, num_val, bool_val, json_val) = 1", name=conv("ck_run_variables_one_value")
        ),
    )


class RunStep(TenantScoped, Base):
    __tablename__ = "run_steps"

    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    node_id: Mapped[str] = mapped_column(String(200))
    step_type: Mapped[str] = mapped_column(String(32))
    next_node_id: Mapped[str | None] = mapped_column(String(200))
    executed_at: Mapped[datetime.datetime] = mapped_column(MillisecondTime)
    data: Mapped[dict[str, Any] | None] = mapped_column(Json)

    __table_args__ = (
        CheckConstraint(one_of("step_type", STEP_TYPES), name=conv("ck_run_steps_step_type")),
        CheckConstraint(STEP_DATA_CHECK, name=conv("ck_run_steps_data_fits_type")),
        # A run's steps in the order they were executed.
        Index("ix_run_steps_run_executed", "run_id", "executed_at", "id"),
    )
