"""Retention of flow control's own rows: closed debounce windows and idle flow rows.

- ``deferred_runs``: a closed window (started, suppressed or cancelled) goes once it is older
  than the event retention and none of its events is left (an incoming event a retained run
  names keeps its outcomes, and so its window, for as long as the run). ``ix_deferred_runs_closed``
  finds them in ``closed_at`` order without reading the pending ones.
- ``trigger_flows``: the row of a (subscription, subject) holds the throttle's recent starts
  (a window of at most a day) and its last debounce window; a row untouched for the event
  retention (and at least a day) whose window is no longer pending holds nothing anyone reads,
  and a new event makes it again. ``ix_trigger_flows_updated`` finds them in age order.

On large tables an operator may build the two indexes beforehand with
``CREATE INDEX CONCURRENTLY``: this revision then finds them.

Revision ID: 0014_flow_retention
Revises: 0013_flow_control
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_flow_retention"
down_revision = "0013_flow_control"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_deferred_runs_closed",
        "deferred_runs",
        ["closed_at"],
        postgresql_where=sa.text("status <> 'PENDING'"),
        if_not_exists=True,
    )
    op.create_index("ix_trigger_flows_updated", "trigger_flows", ["updated_at"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_trigger_flows_updated", table_name="trigger_flows", if_exists=True)
    op.drop_index("ix_deferred_runs_closed", table_name="deferred_runs", if_exists=True)
