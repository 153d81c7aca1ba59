"""Scripts, their immutable versions, and the audit log: every change to a script, and every
operator action on a command (retry, cancel)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, TenantScoped, newest_first, one_of

__all__ = ["SCRIPT_STATUSES", "AuditEntry", "Script", "ScriptVersion"]

SCRIPT_STATUSES = ("DRAFT", "PUBLISHED", "ARCHIVED")
# Changes to scripts, then operations on commands (the entry names the command, not a script).
AUDIT_ACTIONS = ("CREATE", "UPDATE", "PUBLISH", "ROLLBACK", "ARCHIVE", "RETRY", "CANCEL")


class Script(TenantScoped, Base):
    __tablename__ = "scripts"

    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), server_default="DRAFT")
    active_version_id: Mapped[uuid.UUID | None] = mapped_column()
    latest_version: Mapped[int] = mapped_column(Integer, server_default="0")
    labels: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    intents: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    language_codes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    embedding_key: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[str] = mapped_column(String(128))
    updated_by_id: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("tenant_id", "slug", name="uq_scripts_tenant_slug"),
        CheckConstraint(one_of("status", SCRIPT_STATUSES), name="ck_scripts_status"),
        CheckConstraint("latest_version >= 0", name="ck_scripts_latest_version"),
        CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name="ck_scripts_slug_format"),
        # The active version must be one of this script's own versions.
        ForeignKeyConstraint(
            ["id", "active_version_id"],
            ["script_versions.script_id", "script_versions.id"],
            name="fk_scripts_active_version",
            use_alter=True,
            deferrable=True,
            initially="DEFERRED",
        ),
        # Lists: newest first per tenant, optionally by status; label containment; name/slug search.
        newest_first("ix_scripts_tenant_created", "tenant_id"),
        newest_first("ix_scripts_tenant_status_created", "tenant_id", "status"),
        Index("ix_scripts_labels", "labels", postgresql_using="gin"),
        Index(
            "ix_scripts_name_trgm",
            text("name gin_trgm_ops"),
            postgresql_using="gin",
        ),
        Index(
            "ix_scripts_slug_trgm",
            text("slug gin_trgm_ops"),
            postgresql_using="gin",
        ),
    )


class ScriptVersion(TenantScoped, Base):
    __tablename__ = "script_versions"

    script_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    graph_json: Mapped[dict[str, Any]] = mapped_column(JSONB)
    variables_def: Mapped[dict[str, Any] | list[Any] | None] = mapped_column(JSONB)
    changelog: Mapped[str | None] = mapped_column(Text)
    is_published: Mapped[bool] = mapped_column(server_default=text("false"))
    created_by_id: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("script_id", "version", name="uq_script_versions_script_version"),
        # Target of the scripts -> active version composite foreign key.
        UniqueConstraint("script_id", "id", name="uq_script_versions_script_id_id"),
        CheckConstraint("version >= 1", name="ck_script_versions_version"),
    )


class AuditEntry(TenantScoped, Base):
    __tablename__ = "audit_log"

    # What the entry is about: a script (and version), or, for RETRY and CANCEL, a command.
    script_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str] = mapped_column(String(128))
    diff_json: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint(one_of("action", AUDIT_ACTIONS), name="ck_audit_log_action"),
        CheckConstraint(
            "CASE WHEN action IN ('RETRY', 'CANCEL') THEN correlation_id IS NOT NULL AND script_id IS NULL"
            " ELSE script_id IS NOT NULL AND correlation_id IS NULL END",
            name="ck_audit_log_subject",
        ),
        # Per-script trail (optionally by action), and the tenant-wide trail by actor/action/time.
        newest_first("ix_audit_log_script", "script_id"),
        newest_first("ix_audit_log_script_action", "script_id", "action"),
        newest_first("ix_audit_log_tenant_created", "tenant_id"),
        newest_first("ix_audit_log_tenant_actor", "tenant_id", "actor_id"),
        newest_first("ix_audit_log_tenant_action", "tenant_id", "action"),
        # Both filters at once: their intersection can be far rarer than either (migration 0004).
        newest_first("ix_audit_log_tenant_actor_action", "tenant_id", "actor_id", "action"),
    )
