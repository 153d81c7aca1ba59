"""Fair claims: the due-commands index leads with the tenant.

Workers now claim due commands round-robin across tenants, oldest first within each tenant. The
claim walks the pending commands tenant by tenant (one index descent per tenant with pending
work) and reads each tenant's queue in order from where it starts, so a tenant's backlog of
100,000 commands costs the claim no more than a queue of ten: that needs
``(tenant_id, available_at, id)`` over the pending rows.

It replaces ``ix_commands_due`` (``available_at`` alone), which no query needs any more: kept, the
planner could pick it to read one tenant's queue and walk every other tenant's due rows on the
way, and every claim and insert would maintain two indexes instead of one.

On a large ``commands`` table an operator may build the new index beforehand with
``CREATE INDEX CONCURRENTLY ix_commands_due_by_tenant ON commands (tenant_id, available_at, id)
WHERE status = 'PENDING'``: this revision then finds it.

Revision ID: 0011_fair_claims
Revises: 0010_event_sequencer
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_fair_claims"
down_revision = "0010_event_sequencer"
branch_labels = None
depends_on = None

_PENDING = sa.text("status = 'PENDING'")


def upgrade() -> None:
    op.create_index(
        "ix_commands_due_by_tenant",
        "commands",
        ["tenant_id", "available_at", "id"],
        postgresql_where=_PENDING,
        if_not_exists=True,
    )
    op.drop_index("ix_commands_due", table_name="commands", if_exists=True)


def downgrade() -> None:
    op.create_index(
        "ix_commands_due", "commands", ["available_at"], postgresql_where=_PENDING, if_not_exists=True
    )
    op.drop_index("ix_commands_due_by_tenant", table_name="commands", if_exists=True)
