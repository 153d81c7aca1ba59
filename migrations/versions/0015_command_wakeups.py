"""A new command's wake-up names its tenant, so a busy worker can tell whether it needs an
express claim.

The notification on ``scriptworks_commands`` carried nothing. A worker with every slot taken
then had to run an express claim for every new command, to find out whether it belonged to a
tenant it held nothing of. Now the payload is the tenant when every row of the inserting
statement has the same one (``POST /commands`` inserts one row), and stays empty otherwise: an
empty payload still means "look". Still one notification per statement, sent at commit.

Revision ID: 0015_command_wakeups
Revises: 0014_flow_retention
Create Date: 2026-12-04
"""

from alembic import op

revision = "0015_command_wakeups"
down_revision = "0014_flow_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TRIGGER commands_inserted ON commands")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION notify_commands_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify(
                'scriptworks_commands',
                (SELECT CASE WHEN min(tenant_id) = max(tenant_id) THEN min(tenant_id) ELSE '' END
                 FROM inserted)
            );
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER commands_inserted AFTER INSERT ON commands REFERENCING NEW TABLE AS inserted
            FOR EACH STATEMENT EXECUTE FUNCTION notify_commands_inserted()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER commands_inserted ON commands")
    op.execute(
        """
        CREATE OR REPLACE FUNCTION notify_commands_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
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
