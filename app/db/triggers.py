"""Triggers: event types, trigger subscriptions, incoming events, schedules and custom endpoints,
plus the cursor the lifecycle-hook dispatcher keeps in the event store."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.base import DefaultBase
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TenantScoped, Time, newest_first, one_of
from app.db.events import XID8

__all__ = [
    "ENDPOINT_METHODS",
    "DeferredRun",
    "Endpoint",
    "EventType",
    "IncomingEvent",
    "IncomingEventOutcome",
    "Schedule",
    "TriggerFlow",
    "TriggerSubscription",
    "WorkerCursor",
]

ENDPOINT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class EventType(TenantScoped, Base):
    """A tenant-registered event name; the lifecycle names are built in and have no rows."""

    __tablename__ = "event_types"

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_event_types_tenant_name"),
        CheckConstraint("name ~ '^[A-Za-z][A-Za-z0-9_.]{0,99}$'", name="ck_event_types_name"),
        newest_first("ix_event_types_tenant_created", "tenant_id"),
    )


class TriggerSubscription(TenantScoped, Base):
    """Binds one event name on a subject (or ``*``) to a script; deactivated, never deleted."""

    __tablename__ = "trigger_subscriptions"

    subject: Mapped[str] = mapped_column(String(128))
    event_name: Mapped[str] = mapped_column(String(100))
    script_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_by_id: Mapped[str] = mapped_column(String(128))
    deactivated_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    # flowControl (SPEC 7.1; app.domain.incoming_events.flow_control): all NULL means none.
    debounce_seconds: Mapped[int | None] = mapped_column(Integer)
    max_delay_seconds: Mapped[int | None] = mapped_column(Integer)
    throttle_runs: Mapped[int | None] = mapped_column(Integer)
    throttle_per_seconds: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint(
            "subject = '*' OR subject ~ '^[A-Za-z0-9_.:-]{1,128}$'", name="ck_trigger_subscriptions_subject"
        ),
        CheckConstraint(
            "debounce_seconds IS NULL OR debounce_seconds BETWEEN 1 AND 3600",
            name="ck_trigger_subscriptions_debounce",
        ),
        CheckConstraint(
            "max_delay_seconds IS NULL OR (debounce_seconds IS NOT NULL"
            " AND max_delay_seconds BETWEEN debounce_seconds AND 86400)",
            name="ck_trigger_subscriptions_max_delay",
        ),
        CheckConstraint(
            "(throttle_runs IS NULL AND throttle_per_seconds IS NULL)"
            " OR (throttle_runs BETWEEN 1 AND 1000 AND throttle_per_seconds BETWEEN 1 AND 86400)",
            name="ck_trigger_subscriptions_throttle",
        ),
        CheckConstraint("active = (deactivated_at IS NULL)", name="ck_trigger_subscriptions_deactivated_at"),
        # One active subscription per (tenant, subject, event): race-free 409 SUBSCRIPTION_EXISTS.
        Index(
            "uq_trigger_subscriptions_active",
            "tenant_id",
            "subject",
            "event_name",
            unique=True,
            postgresql_where=text("active"),
        ),
        newest_first("ix_trigger_subscriptions_subject", "tenant_id", "subject"),
    )


class IncomingEvent(TenantScoped, Base):
    """An event received by ``POST /events`` or a lifecycle event that started hooks; the
    ``triggeringEventId`` of the runs it started."""

    __tablename__ = "incoming_events"

    event_name: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(128))
    payload: Mapped[Any | None] = mapped_column(JSONB(none_as_null=True))
    source_event_id: Mapped[str | None] = mapped_column(String(200))
    lifecycle_event_id: Mapped[int | None] = mapped_column(BigInteger)
    received_by_id: Mapped[str | None] = mapped_column(String(128))
    answer: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    __table_args__ = (
        Index(
            "uq_incoming_events_source",
            "tenant_id",
            "source_event_id",
            unique=True,
            postgresql_where=text("source_event_id IS NOT NULL"),
        ),
        Index(
            "uq_incoming_events_lifecycle",
            "lifecycle_event_id",
            unique=True,
            postgresql_where=text("lifecycle_event_id IS NOT NULL"),
        ),
        # GET /events/incoming: newest first, alone or by subject or by event name.
        newest_first("ix_incoming_events_tenant_created", "tenant_id"),
        newest_first("ix_incoming_events_tenant_subject", "tenant_id", "subject"),
        newest_first("ix_incoming_events_tenant_event_name", "tenant_id", "event_name"),
    )


class TriggerFlow(DefaultBase):
    """Flow-control state of one (subscription, subject): its row lock serializes every decision
    for the pair; it holds the throttle's recent start times and the open debounce window."""

    __tablename__ = "trigger_flows"

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trigger_subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    recent_starts: Mapped[list[datetime.datetime]] = mapped_column(
        ARRAY(Time), server_default=text("'{}'::timestamptz[]")
    )
    open_window_id: Mapped[uuid.UUID | None] = mapped_column()
    created_at: Mapped[datetime.datetime] = mapped_column(Time)
    updated_at: Mapped[datetime.datetime] = mapped_column(Time)


class DeferredRun(DefaultBase):
    """A debounce window: the run its folded events will start at ``due_at`` (worker-started)."""

    __tablename__ = "deferred_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trigger_subscriptions.id", ondelete="CASCADE")
    )
    subject: Mapped[str] = mapped_column(String(128))
    script_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), server_default=text("'PENDING'"))
    reason: Mapped[str | None] = mapped_column(String(32))
    event_count: Mapped[int] = mapped_column(Integer)
    first_event_at: Mapped[datetime.datetime] = mapped_column(Time)
    last_event_at: Mapped[datetime.datetime] = mapped_column(Time)
    last_event_id: Mapped[uuid.UUID] = mapped_column()
    due_at: Mapped[datetime.datetime] = mapped_column(Time)
    deadline_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    run_id: Mapped[uuid.UUID | None] = mapped_column()
    closed_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    created_at: Mapped[datetime.datetime] = mapped_column(Time)
    updated_at: Mapped[datetime.datetime] = mapped_column(Time)

    __table_args__ = (
        Index("ix_deferred_runs_due", "due_at", "id", postgresql_where=text("status = 'PENDING'")),
        Index("ix_deferred_runs_pending_script", "script_id", postgresql_where=text("status = 'PENDING'")),
        Index(
            "ix_deferred_runs_pending_subscription",
            "subscription_id",
            postgresql_where=text("status = 'PENDING'"),
        ),
    )


class IncomingEventOutcome(DefaultBase):
    """What an incoming event became for one matching subscription (a deferred one: see its window)."""

    __tablename__ = "incoming_event_outcomes"

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("incoming_events.id", ondelete="CASCADE"), primary_key=True
    )
    subscription_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("trigger_subscriptions.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64))
    script_id: Mapped[uuid.UUID] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[uuid.UUID | None] = mapped_column()
    deferred_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deferred_runs.id", ondelete="CASCADE")
    )
    position: Mapped[int | None] = mapped_column(Integer)


class Schedule(TenantScoped, Base):
    """A cron expression in an IANA time zone that starts runs of a script's active version."""

    __tablename__ = "schedules"

    script_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    next_fire_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    due_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    failed_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_fired_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    created_by_id: Mapped[str] = mapped_column(String(128))
    updated_by_id: Mapped[str] = mapped_column(String(128))
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(Time)

    __table_args__ = (
        CheckConstraint(
            "NOT active OR (next_fire_at IS NOT NULL AND due_at IS NOT NULL)", name="ck_schedules_due"
        ),
        CheckConstraint("deleted_at IS NULL OR NOT active", name="ck_schedules_deleted_inactive"),
        CheckConstraint("failed_attempts >= 0", name="ck_schedules_failed_attempts"),
        Index("ix_schedules_due", "due_at", postgresql_where=text("active")),
        newest_first(
            "ix_schedules_script", "tenant_id", "script_id", postgresql_where=text("deleted_at IS NULL")
        ),
    )


class Endpoint(TenantScoped, Base):
    """A custom HTTP endpoint, ``/hooks/{tenantId}/{route}``, that starts runs of a script."""

    __tablename__ = "endpoints"

    script_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(200))
    auth_required: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_by_id: Mapped[str] = mapped_column(String(128))
    # Write-only: requests must carry a Scriptworks-Signature made with it (never returned).
    signing_secret: Mapped[str | None] = mapped_column(String(256))

    __table_args__ = (
        UniqueConstraint("tenant_id", "method", "route", name="uq_endpoints_tenant_method_route"),
        CheckConstraint(one_of("method", ENDPOINT_METHODS), name="ck_endpoints_method"),
        CheckConstraint(
            "route ~ '^[a-z0-9][a-z0-9/_-]*$' AND route !~ '//' AND route !~ '/$'", name="ck_endpoints_route"
        ),
        newest_first("ix_endpoints_script", "tenant_id", "script_id"),
    )


class WorkerCursor(DefaultBase):
    """Where a background reader of the event store stopped, as a position ``(xid, event_id)``."""

    __tablename__ = "worker_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    xid: Mapped[int] = mapped_column(XID8())
    event_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime.datetime] = mapped_column(Time, server_default=text("now()"))
