"""Accepting commands into the outbox, in the request's own transaction, reporting on them, and
the operator's dead-letter actions: listing, retrying and cancelling them.

Retry and cancel are each one conditional statement (``WHERE status IN (...)``, no read-then-write):
the state change, the cancel's outcome event and the audit entry commit together, and of a claim,
a retry and a cancel racing for the same command, exactly one finds it in the state it needs.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Select, select, true
from uuid_utils.compat import uuid7

from app.db.commands import Command
from app.db.events import Event
from app.domain.commands.handlers import HandlerRegistry, default_registry
from app.domain.commands.schemas import CommandIn
from app.domain.events.schemas import LIFECYCLE_EVENTS
from app.lib.db import Row
from app.lib.errors import Conflict, NotFound
from app.lib.pagination import Keyset, PageParams
from app.lib.service import Service
from app.lib.timerange import TimeWindow

__all__ = ["CommandService", "default_correlation_id"]


def default_correlation_id(request_correlation_id: str | None) -> str:
    """The request's Correlation-Id when it is a UUID, else a new one."""
    if request_correlation_id:
        try:
            return str(uuid.UUID(request_correlation_id))
        except ValueError:
            pass
    return str(uuid7())


_encode = msgspec.json.encode

# Also spelled by the ORM model (``app.db.commands``); this is the hot path's single statement.
_SUBMIT = """
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

_commands = Command.__table__
_events = Event.__table__


def _with_outcome() -> Select[Any]:
    """Commands with their outcome event in ``outcome_*`` columns (NULL while unfinished).

    The outcome is the newest event of the command's correlation id that is not a lifecycle event
    (those carry the correlation id of the request that caused them, which may be the same): only
    the worker and a cancel write other events under a command's correlation id. A retried command
    has several; the newest belongs to its latest run.
    """
    outcome = (
        select(_events.c.id, _events.c.event, _events.c.success, _events.c.payload, _events.c.occurred_at)
        .where(
            _events.c.tenant_id == _commands.c.tenant_id,
            _events.c.correlation_id == _commands.c.correlation_id,
            _events.c.event.not_in(LIFECYCLE_EVENTS),
            _commands.c.status.in_(FINISHED),
        )
        .order_by(_events.c.id.desc())
        .limit(1)
        .lateral("outcome")
    )
    return select(
        _commands,
        outcome.c.id.label("outcome_id"),
        outcome.c.event.label("outcome_event"),
        outcome.c.success.label("outcome_success"),
        outcome.c.payload.label("outcome_payload"),
        outcome.c.occurred_at.label("outcome_occurred_at"),
    ).select_from(_commands.outerjoin(outcome, true()))


_NAME_AND_STATUS = "SELECT command, status FROM commands WHERE tenant_id = $1 AND correlation_id = $2"
_STATUS = "SELECT status FROM commands WHERE tenant_id = $1 AND correlation_id = $2"

# A FAILED or CANCELLED command back to PENDING, due now, its attempts reset, with its RETRY audit
# entry; last_error is kept (the error that sent it to the dead letters) until a new attempt
# replaces or clears it. Waking the workers is the NOTIFY the insert trigger would have sent.
# Parameters: $1 tenant, $2 correlation id, $3 audit entry id, $4 actor.
_RETRY = """
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
_CANCEL = """
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

_default_registry = default_registry()


def _not_found() -> NotFound:
    return NotFound("No command with this correlationId.")


class CommandRepository(SQLAlchemyAsyncRepository[Command]):
    model_type = Command


class CommandService(Service[Command, CommandRepository]):
    repository_type = CommandRepository

    def __init__(self, *, registry: HandlerRegistry | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Names a cancelled command's outcome event as the worker would name its failure.
        self.registry = registry or _default_registry

    async def submit(
        self, tenant_id: str, data: CommandIn, request_correlation_id: str | None, submitted_by_id: str
    ) -> str:
        """Write the command to the outbox (PENDING) in one statement; returns its correlationId.
        ``submitted_by_id`` is the authenticated actor; ``data.actor`` is whom the command acts for.

        A trigger wakes the workers at commit. Outside an Idempotency-Key request the statement
        commits on its own (no BEGIN/COMMIT round trips, and no transaction held open while the
        response is built: the event store's readers wait for every open transaction).
        """
        correlation_id = data.correlation_id or default_correlation_id(request_correlation_id)
        async with self.uow.statements() as connection:
            inserted = await connection.fetchval(
                _SUBMIT,
                uuid7(),
                tenant_id,
                correlation_id,
                data.command,
                _encode({"userId": data.actor.user_id}).decode(),
                _encode(data.context).decode(),
                _encode(data.payload).decode(),
                request_correlation_id,
                datetime.datetime.now(datetime.UTC),
                submitted_by_id,
            )
        if inserted is None:
            raise Conflict(
                f"A command with correlationId {correlation_id!r} already exists in this tenant.",
                code="DUPLICATE_CORRELATION_ID",
            )
        return correlation_id

    async def get(self, tenant_id: str, correlation_id: str) -> Any:
        """The command with its outcome (see ``CommandStatusOut.of``)."""
        statement = _with_outcome().where(
            _commands.c.tenant_id == tenant_id, _commands.c.correlation_id == correlation_id
        )
        row = (await self.session.execute(statement)).one_or_none()
        if row is None:
            raise _not_found()
        return row

    async def list_commands(
        self,
        tenant_id: str,
        page: PageParams,
        *,
        status: str | None = None,
        command: str | None = None,
        window: TimeWindow | None = None,
    ) -> Sequence[Any]:
        """A keyset page of the tenant's commands with their outcomes, newest first (createdAt, id);
        the window is on createdAt. Each filter has its index (migration 0012)."""
        statement = _with_outcome().where(_commands.c.tenant_id == tenant_id)
        if status is not None:
            statement = statement.where(_commands.c.status == status)
        if command is not None:
            statement = statement.where(_commands.c.command == command)
        if window is not None and window.since is not None:
            statement = statement.where(_commands.c.created_at >= window.since)
        if window is not None and window.until is not None:
            statement = statement.where(_commands.c.created_at < window.until)
        statement = Keyset(("created_at", "id"), page).append_to_statement(statement, Command)
        return (await self.session.execute(statement)).all()

    async def retry(self, tenant_id: str, correlation_id: str, actor_id: str) -> Row:
        """Put a FAILED or CANCELLED command back to PENDING, due now, with its attempts reset;
        409 COMMAND_NOT_RETRYABLE in any other state."""
        async with self.uow.statements() as connection:
            row = await connection.fetchrow(_RETRY, tenant_id, correlation_id, uuid7(), actor_id)
            if row is None:
                status = await connection.fetchval(_STATUS, tenant_id, correlation_id)
        if row is None:
            if status is None:
                raise _not_found()
            raise Conflict(
                f"Only a FAILED or CANCELLED command can be retried; this one is {status}.",
                code="COMMAND_NOT_RETRYABLE",
                details={"status": status},
            )
        return Row(row)

    async def cancel(self, tenant_id: str, correlation_id: str, actor_id: str) -> Row:
        """Cancel a PENDING command: CANCELLED, with one ``success: false`` outcome event;
        409 COMMAND_NOT_CANCELLABLE once a worker claimed it or it finished."""
        async with self.uow.statements() as connection:
            found = await connection.fetchrow(_NAME_AND_STATUS, tenant_id, correlation_id)
            if found is None:
                raise _not_found()
            # The name never changes, so reading it first races with nothing: the cancel itself
            # is still conditional on the status.
            row = await connection.fetchrow(
                _CANCEL,
                tenant_id,
                correlation_id,
                self.registry.event_for(found["command"]),
                uuid7(),
                actor_id,
            )
            if row is None:
                status = await connection.fetchval(_STATUS, tenant_id, correlation_id)
        if row is None:
            raise Conflict(
                f"Only a PENDING command can be cancelled; this one is {status}.",
                code="COMMAND_NOT_CANCELLABLE",
                details={"status": status},
            )
        return Row(row)
