"""The command outbox and the event store, with the NOTIFY triggers that wake workers and hubs.

Revision ID: 0003_commands_events
Revises: 0002_runs
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_commands_events"
down_revision = "0002_runs"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


class XID8(sa.types.UserDefinedType):
    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("command", sa.String(200), nullable=False),
        sa.Column("actor", postgresql.JSONB(), nullable=False),
        sa.Column("context", postgresql.JSONB(), nullable=False),
        sa.Column("payload", postgresql.JSONB(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="PENDING"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("available_at", TS, nullable=False, server_default=sa.text("now()")),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("lease_expires_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("completed_at", TS, nullable=True),
        sa.Column("request_correlation_id", sa.String(128), nullable=True),
        sa.UniqueConstraint("tenant_id", "correlation_id", name="uq_commands_tenant_correlation"),
        sa.CheckConstraint(
            "status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')", name="ck_commands_status"
        ),
        sa.CheckConstraint(
            "(status = 'PROCESSING') = (lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)",
            name="ck_commands_lease",
        ),
        sa.CheckConstraint(
            "(status IN ('COMPLETED', 'FAILED')) = (completed_at IS NOT NULL)",
            name="ck_commands_completed_at",
        ),
    )
    op.create_index(
        "ix_commands_due", "commands", ["available_at"], postgresql_where=sa.text("status = 'PENDING'")
    )
    op.create_index(
        "ix_commands_leases",
        "commands",
        ["lease_expires_at"],
        postgresql_where=sa.text("status = 'PROCESSING'"),
    )
    op.create_index(
        "ix_commands_finished",
        "commands",
        ["completed_at"],
        postgresql_where=sa.text("status IN ('COMPLETED', 'FAILED')"),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(start=1, increment=1), primary_key=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("xid", XID8(), nullable=False, server_default=sa.text("pg_current_xact_id()")),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(200), nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("payload", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("occurred_at", TS, nullable=False, server_default=sa.text("now()")),
    )
    op.create_index("ix_events_position", "events", ["xid", "id"])
    op.create_index("ix_events_tenant_position", "events", ["tenant_id", "xid", "id"])
    op.create_index("ix_events_tenant_correlation", "events", ["tenant_id", "correlation_id", "xid", "id"])
    op.create_index("ix_events_occurred", "events", ["occurred_at"])

    # Wake-ups, sent at commit and only then. The payload is a hint; the tables stay the truth.
    # Statement-level triggers: one notification per inserting statement, whatever its row count.
    op.execute(
        """
        CREATE FUNCTION notify_commands_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('scriptworks_commands', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER commands_inserted AFTER INSERT ON commands
            FOR EACH STATEMENT EXECUTE FUNCTION notify_commands_inserted()
        """
    )
    op.execute(
        """
        CREATE FUNCTION notify_events_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('scriptworks_events', (SELECT max(id)::text FROM inserted));
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER events_inserted AFTER INSERT ON events
            REFERENCING NEW TABLE AS inserted
            FOR EACH STATEMENT EXECUTE FUNCTION notify_events_inserted()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS events_inserted ON events")
    op.execute("DROP FUNCTION IF EXISTS notify_events_inserted()")
    op.execute("DROP TRIGGER IF EXISTS commands_inserted ON commands")
    op.execute("DROP FUNCTION IF EXISTS notify_commands_inserted()")
    op.drop_table("events")
    op.drop_table("commands")
