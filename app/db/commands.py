"""The transactional outbox: commands posted by integration clients, drained by workers."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TenantScoped, Time, newest_first, one_of

__all__ = ["COMMAND_STATUSES", "Command"]

COMMAND_STATUSES = ("PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED")


class Command(TenantScoped, Base):
    __tablename__ = "commands"

    correlation_id: Mapped[str] = mapped_column(String(128))
    command: Mapped[str] = mapped_column(String(200))
    actor: Mapped[dict[str, Any]] = mapped_column(JSONB)
    context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    available_at: Mapped[datetime.datetime] = mapped_column(Time, server_default=text("now()"))
    lease_token: Mapped[uuid.UUID | None] = mapped_column()
    lease_expires_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    last_error: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime.datetime | None] = mapped_column(Time)
    request_correlation_id: Mapped[str | None] = mapped_column(String(128))
    # The authenticated actor who posted it (``actor`` is whom it acts for, as sent).
    submitted_by_id: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("tenant_id", "correlation_id", name="uq_commands_tenant_correlation"),
        CheckConstraint(one_of("status", COMMAND_STATUSES), name="ck_commands_status"),
        CheckConstraint(
            "(status = 'PROCESSING') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="ck_commands_lease",
        ),
        CheckConstraint(
            "(status IN ('COMPLETED', 'FAILED', 'CANCELLED')) = (completed_at IS NOT NULL)",
            name="ck_commands_completed_at",
        ),
        # Claiming due work fairly (tenant by tenant, each tenant's oldest first), reclaiming
        # expired leases, pruning finished rows.
        Index(
            "ix_commands_due_by_tenant",
            "tenant_id",
            "available_at",
            "id",
            postgresql_where=text("status = 'PENDING'"),
        ),
        Index("ix_commands_leases", "lease_expires_at", postgresql_where=text("status = 'PROCESSING'")),
        # The commands list, newest first: all of a tenant's, by status, by command name.
        newest_first("ix_commands_tenant_created", "tenant_id"),
        newest_first("ix_commands_tenant_status", "tenant_id", "status"),
        newest_first("ix_commands_tenant_command", "tenant_id", "command"),
        Index(
            "ix_commands_finished",
            "completed_at",
            postgresql_where=text("status IN ('COMPLETED', 'FAILED', 'CANCELLED')"),
        ),
    )
