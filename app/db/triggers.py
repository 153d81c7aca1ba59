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
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TenantScoped
from app.db.events import XID8

__all__ = [
    "ENDPOINT_METHODS",
    "Endpoint",
    "EventType",
    "IncomingEvent",
    "Schedule",
    "TriggerSubscription",
    "WorkerCursor",
]

ENDPOINT_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
Time = DateTime(timezone=True)


def _newest_first(name: str, *leading: str, **kw: Any) -> Index:
    return Index(name, *leading, text("created_at DESC"), text("id DESC"), **kw)


class EventType(TenantScoped, Base):
    """A tenant-registered event name; the lifecycle names are built in and have no rows."""

    __tablename__ = "event_types"

    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_event_types_tenant_name"),
        CheckConstraint("name ~ '^[A-Za-z][A-Za-z0-9_.]{0,99}$'", name="ck_event_types_name"),
        _newest_first("ix_event_types_tenant_created", "tenant_id"),
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

    __table_args__ = (
        CheckConstraint(
            "subject = '*' OR subject ~ '^[A-Za-z0-9_.:-]{1,128}$'", name="ck_trigger_subscriptions_subject"
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
        _newest_first("ix_trigger_subscriptions_subject", "tenant_id", "subject"),
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
    )


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
        _newest_first(
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
        CheckConstraint("method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE')", name="ck_endpoints_method"),
        CheckConstraint(
            "route ~ '^[a-z0-9][a-z0-9/_-]*$' AND route !~ '//' AND route !~ '/$'", name="ck_endpoints_route"
        ),
        _newest_first("ix_endpoints_script", "tenant_id", "script_id"),
    )


class WorkerCursor(DefaultBase):
    """Where a background reader of the event store stopped, as a position ``(xid, event_id)``."""

    __tablename__ = "worker_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    xid: Mapped[int] = mapped_column(XID8())
    event_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime.datetime] = mapped_column(Time, server_default=text("now()"))
