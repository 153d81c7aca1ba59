"""All SQL of the commands API: accepting a command, reading it with its outcome, the operator's
retry and cancel. (The worker's side of the outbox, claims to outcomes, is ``outbox.py``.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Unpack

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Row, Select, select, true

from app.db.commands import Command
from app.db.events import Event
from app.domain.events.schemas import LIFECYCLE_EVENTS
from app.lib.pagination import PageParams
from app.lib.repository import NewestFirstFilters, apply_filters, newest_first

__all__ = [
    "CANCEL",
    "COMMANDS",
    "FINISHED",
    "NAME_AND_STATUS",
    "PRUNE_COMMANDS",
    "RETRY",
    "STATUS",
    "SUBMIT",
    "CommandFilters",
    "CommandRepository",
    "with_outcome",
]

# Also spelled by the ORM model (``app.db.commands``); this is the hot path's single statement.
SUBMIT = """
INSERT INTO commands (
    id, tenant_id, correlation_id, command, actor, context, payload, status, attempts,
    available_at, request_correlation_id, created_at, updated_at, submitted_by_id
)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, 'PENDING', 0, $9, $8, $9, $9, $10)
ON CONFLICT ON CONSTRAINT uq_commands_tenant_correlation DO NOTHING
RETURNING true
"""

# A command is finished in these states; only then does it have an outcome to show.
FINISHED = ("COMPLETED", "FAILED", "CANCELLED")

COMMANDS = Command.__table__
_events = Event.__table__


class CommandFilters(NewestFirstFilters, total=False):
    """What narrows the list of a tenant's commands (None narrows nothing)."""

    status: str | None
    command: str | None


def with_outcome() -> Select[Any]:
    """Commands with their outcome event in ``outcome_*`` columns (NULL while unfinished).

    The outcome is the newest event of the command's correlation id that is not a lifecycle event
    (those carry the correlation id of the request that caused them, which may be the same): only
    the worker and a cancel write other events under a command's correlation id. A retried command
    has several; the newest belongs to its latest run.
    """
    outcome = (
        select(_events.c.id, _events.c.event, _events.c.success, _events.c.payload, _events.c.occurred_at)
        .where(
            _events.c.tenant_id == COMMANDS.c.tenant_id,
            _events.c.correlation_id == COMMANDS.c.correlation_id,
            _events.c.event.not_in(LIFECYCLE_EVENTS),
            COMMANDS.c.status.in_(FINISHED),
        )
        .order_by(_events.c.id.desc())
        .limit(1)
        .lateral("outcome")
    )
    return select(
        COMMANDS,
        outcome.c.id.label("outcome_id"),
        outcome.c.event.label("outcome_event"),
        outcome.c.success.label("outcome_success"),
        outcome.c.payload.label("outcome_payload"),
        outcome.c.occurred_at.label("outcome_occurred_at"),
    ).select_from(COMMANDS.outerjoin(outcome, true()))


NAME_AND_STATUS = "SELECT command, status FROM commands WHERE tenant_id = $1 AND correlation_id = $2"
STATUS = "SELECT status FROM commands WHERE tenant_id = $1 AND correlation_id = $2"

# A FAILED or CANCELLED command back to PENDING, due now, its attempts reset, with its RETRY audit
# entry; last_error is kept (the error that sent it to the dead letters) until a new attempt
# replaces or clears it. Waking the workers is the NOTIFY the insert trigger would have sent.
# Parameters: $1 tenant, $2 correlation id, $3 audit entry id, $4 actor.
RETRY = """
WITH previous AS (
    SELECT id, status, attempts FROM commands
    WHERE tenant_id = $1 AND correlation_id = $2 AND status IN ('FAILED', 'CANCELLED')
    FOR UPDATE
), retried AS (
    UPDATE commands c
    SET status = 'PENDING', attempts = 0, available_at = now(), completed_at = NULL, updated_at = now()
    FROM previous p
    WHERE c.id = p.id
    RETURNING c.*, p.status AS previous_status, p.attempts AS previous_attempts
), audit AS (
    INSERT INTO audit_log (id, tenant_id, correlation_id, action, actor_id, diff_json, created_at, updated_at)
    SELECT $3, tenant_id, correlation_id, 'RETRY', $4,
           jsonb_build_object(
               'status', jsonb_build_object('from', previous_status, 'to', 'PENDING'),
               'attempts', jsonb_build_object('from', previous_attempts, 'to', 0)
           ),
           now(), now()
    FROM retried
)
SELECT r.*, pg_notify('scriptworks_commands', '') FROM retried r
"""

# A PENDING command to CANCELLED with its one outcome event (success false, the payload of the
# worker's failure events) and its CANCEL audit entry. A claimed command is PROCESSING, so a
# claim and a cancel of the same row never both succeed.
# Parameters: $1 tenant, $2 correlation id, $3 outcome event name, $4 audit entry id, $5 actor.
CANCEL = """
WITH cancelled AS (
    UPDATE commands
    SET status = 'CANCELLED', completed_at = now(), updated_at = now()
    WHERE tenant_id = $1 AND correlation_id = $2 AND status = 'PENDING'
    RETURNING *
), outcome AS (
    INSERT INTO events (tenant_id, event, correlation_id, success, payload)
    SELECT tenant_id, $3, correlation_id, false,
           jsonb_build_object('command', command, 'error', 'cancelled', 'attempts', attempts)
    FROM cancelled
    RETURNING id, event, success, payload, occurred_at
), audit AS (
    INSERT INTO audit_log (id, tenant_id, correlation_id, action, actor_id, diff_json, created_at, updated_at)
    SELECT $4, tenant_id, correlation_id, 'CANCEL', $5,
           jsonb_build_object('status', jsonb_build_object('from', 'PENDING', 'to', 'CANCELLED')),
           now(), now()
    FROM cancelled
)
SELECT c.*, o.id AS outcome_id, o.event AS outcome_event, o.success AS outcome_success,
       o.payload AS outcome_payload, o.occurred_at AS outcome_occurred_at
FROM cancelled c CROSS JOIN outcome o
"""


class CommandRepository(SQLAlchemyAsyncRepository[Command]):
    model_type = Command

    async def with_outcome_of(self, tenant_id: str, correlation_id: str) -> Row[Any] | None:
        """The command with its outcome (see ``with_outcome``); None when there is no such one."""
        statement = with_outcome().where(
            COMMANDS.c.tenant_id == tenant_id, COMMANDS.c.correlation_id == correlation_id
        )
        return (await self.session.execute(statement)).one_or_none()

    async def page_with_outcomes(
        self, tenant_id: str, page: PageParams, **filters: Unpack[CommandFilters]
    ) -> Sequence[Row[Any]]:
        """A keyset page of the tenant's commands with their outcomes, newest first (createdAt,
        id). Each filter has its index (migration 0012)."""
        statement = apply_filters(with_outcome(), Command, newest_first(Command, tenant_id, page, **filters))
        return (await self.session.execute(statement)).all()


# Retention (the worker's maintenance runs it in batches of $1 rows).
PRUNE_COMMANDS = """
DELETE FROM commands WHERE id IN (
    SELECT id FROM commands WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND completed_at < $2
    ORDER BY completed_at LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
