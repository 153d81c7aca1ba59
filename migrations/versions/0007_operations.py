"""Worker heartbeats, for readiness checks of API processes that rely on separate workers.

Revision ID: 0007_operations
Revises: 0006_triggers
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_operations"
down_revision = "0006_triggers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker_id", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
    )
    op.create_index("ix_worker_heartbeats_last_seen", "worker_heartbeats", ["last_seen_at"])


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
