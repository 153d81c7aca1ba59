"""Principals bound to tenants: idempotency keys scoped per actor, who submitted each command,
signed custom endpoints, and the server secret that signs stream tickets.

Revision ID: 0008_principals
Revises: 0007_operations
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_principals"
down_revision = "0007_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An Idempotency-Key belongs to (tenant, actor): another actor's key of the same text is
    # another key. Keys stored before this revision belong to no actor ('').
    op.add_column(
        "idempotency_keys",
        sa.Column("actor_id", sa.String(128), nullable=False, server_default=""),
    )
    op.drop_constraint("pk_idempotency_keys", "idempotency_keys", type_="primary")
    op.create_primary_key("pk_idempotency_keys", "idempotency_keys", ["tenant_id", "actor_id", "key"])

    # Who sent a command (the authenticated actor), beside the body's actor.userId it acts for.
    op.add_column("commands", sa.Column("submitted_by_id", sa.String(128), nullable=True))

    # A custom endpoint with a signing secret accepts only requests signed with it.
    op.add_column("endpoints", sa.Column("signing_secret", sa.String(256), nullable=True))

    # Secrets every process of a deployment shares (the stream-ticket signing key when
    # STREAM_TICKET_SECRET is not set), created once by whichever process starts first.
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("octet_length(value) >= 32", name="ck_server_secrets_length"),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_column("endpoints", "signing_secret")
    op.drop_column("commands", "submitted_by_id")
    op.execute("DELETE FROM idempotency_keys WHERE actor_id <> ''")
    op.drop_constraint("pk_idempotency_keys", "idempotency_keys", type_="primary")
    op.create_primary_key("pk_idempotency_keys", "idempotency_keys", ["tenant_id", "key"])
    op.drop_column("idempotency_keys", "actor_id")
