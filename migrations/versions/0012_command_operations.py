"""Dead-letter operations on commands: list, retry, cancel, and their audit entries.

- ``commands.status`` may be ``CANCELLED``: a pending command an operator withdrew. Like
  ``COMPLETED`` and ``FAILED`` it is finished, so it carries ``completed_at``.
- ``audit_log`` records operations on commands too (``RETRY``, ``CANCEL``): such an entry is
  about a command, named by ``correlation_id``, and about no script, so ``script_id`` becomes
  nullable; ``ck_audit_log_subject`` keeps every entry about exactly the one kind of thing its
  action concerns.
- Indexes for ``GET /commands``: the tenant's commands newest first, alone or by status (the
  dead-letter view is ``status=FAILED``) or by command name, each walked in page order.

On a large ``commands`` table an operator may build the three indexes beforehand with
``CREATE INDEX CONCURRENTLY``: this revision then finds them.

Downgrading cannot represent what this revision allows: cancelled commands become ``FAILED``
(their outcome event already says ``success: false``) and the ``RETRY``/``CANCEL`` audit entries
are deleted.

Revision ID: 0012_command_operations
Revises: 0011_fair_claims
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_command_operations"
down_revision = "0011_fair_claims"
branch_labels = None
depends_on = None

_COMMAND_STATUS = "status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED')"
_COMMAND_COMPLETED_AT = "(status IN ('COMPLETED', 'FAILED', 'CANCELLED')) = (completed_at IS NOT NULL)"
_AUDIT_ACTION = "action IN ('CREATE', 'UPDATE', 'PUBLISH', 'ROLLBACK', 'ARCHIVE', 'RETRY', 'CANCEL')"
_AUDIT_SUBJECT = (
    "CASE WHEN action IN ('RETRY', 'CANCEL') THEN correlation_id IS NOT NULL AND script_id IS NULL"
    " ELSE script_id IS NOT NULL AND correlation_id IS NULL END"
)
_LIST_INDEXES = {
    "ix_commands_tenant_created": ["tenant_id"],
    "ix_commands_tenant_status": ["tenant_id", "status"],
    "ix_commands_tenant_command": ["tenant_id", "command"],
}


# Constraint names are the logical ones the models use; the metadata's naming convention stores
# them prefixed (``ck_commands_status`` is ``ck_commands_ck_commands_status`` in the database), as
# it did when the constraints were created.
def upgrade() -> None:
    op.drop_constraint("ck_commands_status", "commands", type_="check")
    op.create_check_constraint("ck_commands_status", "commands", _COMMAND_STATUS)
    op.drop_constraint("ck_commands_completed_at", "commands", type_="check")
    op.create_check_constraint("ck_commands_completed_at", "commands", _COMMAND_COMPLETED_AT)
    for name, columns in _LIST_INDEXES.items():
        op.create_index(
            name,
            "commands",
            [*columns, sa.text("created_at DESC"), sa.text("id DESC")],
            if_not_exists=True,
        )
    # Retention prunes cancelled commands like the other finished ones.
    op.drop_index("ix_commands_finished", table_name="commands")
    op.create_index(
        "ix_commands_finished",
        "commands",
        ["completed_at"],
        postgresql_where=sa.text("status IN ('COMPLETED', 'FAILED', 'CANCELLED')"),
    )

    op.alter_column("audit_log", "script_id", existing_type=sa.Uuid(), nullable=True)
    op.add_column("audit_log", sa.Column("correlation_id", sa.String(128), nullable=True))
    op.drop_constraint("ck_audit_log_action", "audit_log", type_="check")
    op.create_check_constraint("ck_audit_log_action", "audit_log", _AUDIT_ACTION)
    op.create_check_constraint("ck_audit_log_subject", "audit_log", _AUDIT_SUBJECT)


def downgrade() -> None:
    op.execute("DELETE FROM audit_log WHERE action IN ('RETRY', 'CANCEL')")
    op.drop_constraint("ck_audit_log_subject", "audit_log", type_="check")
    op.drop_constraint("ck_audit_log_action", "audit_log", type_="check")
    op.create_check_constraint(
        "ck_audit_log_action", "audit_log", "action IN ('CREATE', 'UPDATE', 'PUBLISH', 'ROLLBACK', 'ARCHIVE')"
    )
    op.drop_column("audit_log", "correlation_id")
    op.alter_column("audit_log", "script_id", existing_type=sa.Uuid(), nullable=False)

    for name in _LIST_INDEXES:
        op.drop_index(name, table_name="commands", if_exists=True)
    op.execute("UPDATE commands SET status = 'FAILED' WHERE status = 'CANCELLED'")
    op.drop_index("ix_commands_finished", table_name="commands")
    op.create_index(
        "ix_commands_finished",
        "commands",
        ["completed_at"],
        postgresql_where=sa.text("status IN ('COMPLETED', 'FAILED')"),
    )
    op.drop_constraint("ck_commands_completed_at", "commands", type_="check")
    op.create_check_constraint(
        "ck_commands_completed_at",
        "commands",
        "(status IN ('COMPLETED', 'FAILED')) = (completed_at IS NOT NULL)",
    )
    op.drop_constraint("ck_commands_status", "commands", type_="check")
    op.create_check_constraint(
        "ck_commands_status", "commands", "status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')"
    )
