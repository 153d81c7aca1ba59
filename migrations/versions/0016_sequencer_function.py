"""The event sequencer in one statement: ``SELECT sequence_events(batch)``.

Sequencing took five round trips from whoever read next (a check for unsequenced events, BEGIN,
the advisory lock, the stamping UPDATE, COMMIT), and every reader pays it between an event's
commit and its delivery. The same steps now run inside one function, called as one
autocommitted statement. The guarantees are those of revision 0010: the lock is taken before the
UPDATE gives the transaction its id, and each statement of a VOLATILE function takes a fresh
snapshot, so the UPDATE sees every event committed before the lock was granted, the previous
sequencer's stamps included.

Revision ID: 0016_sequencer_function
Revises: 0015_command_wakeups
Create Date: 2026-12-05
"""

from alembic import op

revision = "0016_sequencer_function"
down_revision = "0015_command_wakeups"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0x5357534551 spells "SWSEQ": the advisory lock every sequencer of the database shares.
    op.execute(
        """
        CREATE FUNCTION sequence_events(batch integer) RETURNS integer
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
            stamped integer;
        BEGIN
            IF NOT EXISTS (SELECT FROM events WHERE xid IS NULL) THEN
                RETURN 0;  -- nothing to do: no lock taken, no transaction id used
            END IF;
            PERFORM pg_advisory_xact_lock(x'5357534551'::bigint);
            UPDATE events SET xid = pg_current_xact_id()
            WHERE id IN (SELECT id FROM events WHERE xid IS NULL ORDER BY id LIMIT batch);
            GET DIAGNOSTICS stamped = ROW_COUNT;
            RETURN stamped;
        END $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION sequence_events(integer)")
