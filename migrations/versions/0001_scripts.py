"""Scripts, immutable script versions and the audit log.

Revision ID: 0001_scripts
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_scripts"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    ]


def upgrade() -> None:
    # Trigram indexes serve the case-insensitive substring search of GET /scripts?q=.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")

    op.create_table(
        "scripts",
        *_common(),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("slug", sa.String(100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="DRAFT"),
        sa.Column("active_version_id", sa.Uuid(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("labels", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("intents", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("language_codes", postgresql.ARRAY(sa.Text()), nullable=False, server_default="{}"),
        sa.Column("embedding_key", sa.String(200), nullable=True),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        sa.Column("updated_by_id", sa.String(128), nullable=False),
        sa.UniqueConstraint("tenant_id", "slug", name="uq_scripts_tenant_slug"),
        sa.CheckConstraint("status IN ('DRAFT', 'PUBLISHED', 'ARCHIVED')", name="ck_scripts_status"),
        sa.CheckConstraint("latest_version >= 0", name="ck_scripts_latest_version"),
        sa.CheckConstraint("slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'", name="ck_scripts_slug_format"),
    )
    op.create_index(
        "ix_scripts_tenant_created", "scripts", ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index(
        "ix_scripts_tenant_status_created",
        "scripts",
        ["tenant_id", "status", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index("ix_scripts_labels", "scripts", ["labels"], postgresql_using="gin")
    op.create_index("ix_scripts_name_trgm", "scripts", [sa.text("name gin_trgm_ops")], postgresql_using="gin")
    op.create_index("ix_scripts_slug_trgm", "scripts", [sa.text("slug gin_trgm_ops")], postgresql_using="gin")

    op.create_table(
        "script_versions",
        *_common(),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("script_id", sa.Uuid(), sa.ForeignKey("scripts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("graph_json", postgresql.JSONB(), nullable=False),
        sa.Column("variables_def", postgresql.JSONB(), nullable=True),
        sa.Column("changelog", sa.Text(), nullable=True),
        sa.Column("is_published", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("created_by_id", sa.String(128), nullable=False),
        # Also the index for "versions of a script, newest first" (scanned backwards).
        sa.UniqueConstraint("script_id", "version", name="uq_script_versions_script_version"),
        sa.UniqueConstraint("script_id", "id", name="uq_script_versions_script_id_id"),
        sa.CheckConstraint("version >= 1", name="ck_script_versions_version"),
    )
    # The active version must be one of the script's own versions. Deferred, so a version and
    # the script row that points at it can be written in either order within a transaction.
    op.create_foreign_key(
        "fk_scripts_active_version",
        "scripts",
        "script_versions",
        ["id", "active_version_id"],
        ["script_id", "id"],
        deferrable=True,
        initially="DEFERRED",
    )

    op.create_table(
        "audit_log",
        *_common(),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("script_id", sa.Uuid(), sa.ForeignKey("scripts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(128), nullable=False),
        sa.Column("diff_json", postgresql.JSONB(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "action IN ('CREATE', 'UPDATE', 'PUBLISH', 'ROLLBACK', 'ARCHIVE')", name="ck_audit_log_action"
        ),
    )
    op.create_index(
        "ix_audit_log_script", "audit_log", ["script_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_index(
        "ix_audit_log_script_action",
        "audit_log",
        ["script_id", "action", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_audit_log_tenant_created",
        "audit_log",
        ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_audit_log_tenant_actor",
        "audit_log",
        ["tenant_id", "actor_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_audit_log_tenant_action",
        "audit_log",
        ["tenant_id", "action", sa.text("created_at DESC"), sa.text("id DESC")],
    )


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_constraint("fk_scripts_active_version", "scripts", type_="foreignkey")
    op.drop_table("script_versions")
    op.drop_table("scripts")
