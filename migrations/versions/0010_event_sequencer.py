"""Live delivery that no other transaction can stall: events get their delivery position when
they are sequenced, not from the transaction that wrote them.

Before this revision an event's position was its writer's transaction id, and readers waited for
every transaction older than it, anywhere on the server (the snapshot's xmin): one idle session
in a transaction, in any database, held back every stream and hook. Now an event is written
without a position (``xid`` NULL), and a sequencer (any API process or worker, one at a time
under an advisory lock) stamps committed, unsequenced events with its own transaction id.
Sequencer transactions are serialised by the lock, so their ids grow in commit order: a reader
that sees a position has already been able to see every smaller one. Rows written before this
revision keep their positions, which are all smaller than any new one.

Revision ID: 0010_event_sequencer
Revises: 0009_hook_chains
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010_event_sequencer"
down_revision = "0009_hook_chains"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ALTER COLUMN xid DROP DEFAULT, ALTER COLUMN xid DROP NOT NULL")
    # What the sequencer looks for: small, since events are sequenced within milliseconds.
    op.execute("CREATE INDEX ix_events_unsequenced ON events (id) WHERE xid IS NULL")


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_unsequenced")
    op.execute("UPDATE events SET xid = pg_current_xact_id() WHERE xid IS NULL")
    op.execute(
        "ALTER TABLE events ALTER COLUMN xid SET DEFAULT pg_current_xact_id(), ALTER COLUMN xid SET NOT NULL"
    )
