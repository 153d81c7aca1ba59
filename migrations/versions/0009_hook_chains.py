"""Lifecycle-hook chains cannot multiply: one run of a script per originating change.

Every hook run carries, in ``eventData.originEventId``, the lifecycle event that started its
chain; this index lets the dispatcher's insert skip a second run of the same script for the same
origin (ON CONFLICT DO NOTHING), however many links the chain has. Hook runs from before this
revision carry no origin and are left out of the index.

Revision ID: 0009_hook_chains
Revises: 0008_principals
Create Date: 2026-12-01
"""

from alembic import op

revision = "0009_hook_chains"
down_revision = "0008_principals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE UNIQUE INDEX uq_runs_hook_origin_script "
        "ON runs (script_id, (event_data ->> 'originEventId')) "
        "WHERE trigger_type = 'LIFECYCLE_HOOK' AND event_data ? 'originEventId'"
    )


def downgrade() -> None:
    op.drop_index("uq_runs_hook_origin_script", table_name="runs")
