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
from typing import Any, Unpack

import msgspec
from uuid_utils.compat import uuid7

from app.db.commands import Command
from app.domain.commands.handlers import HandlerRegistry, default_registry
from app.domain.commands.repositories import (
    CANCEL,
    NAME_AND_STATUS,
    RETRY,
    STATUS,
    SUBMIT,
    CommandFilters,
    CommandRepository,
)
from app.domain.commands.schemas import CommandIn
from app.lib.db import Row
from app.lib.errors import Conflict, NotFound
from app.lib.pagination import PageParams
from app.lib.required import required
from app.lib.service import Service

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


_default_registry = default_registry()


def _not_found() -> NotFound:
    return NotFound("No command with this correlationId.")


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
                SUBMIT,
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
        return required(await self.repository.with_outcome_of(tenant_id, correlation_id), _not_found)

    async def list_commands(
        self, tenant_id: str, page: PageParams, **filters: Unpack[CommandFilters]
    ) -> Sequence[Any]:
        """A page of the tenant's commands with their outcomes, newest first."""
        return await self.repository.page_with_outcomes(tenant_id, page, **filters)

    async def retry(self, tenant_id: str, correlation_id: str, actor_id: str) -> Row:
        """Put a FAILED or CANCELLED command back to PENDING, due now, with its attempts reset;
        409 COMMAND_NOT_RETRYABLE in any other state."""
        async with self.uow.statements() as connection:
            row = await connection.fetchrow(RETRY, tenant_id, correlation_id, uuid7(), actor_id)
            if row is None:
                status = await connection.fetchval(STATUS, tenant_id, correlation_id)
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
            found = await connection.fetchrow(NAME_AND_STATUS, tenant_id, correlation_id)
            if found is None:
                raise _not_found()
            # The name never changes, so reading it first races with nothing: the cancel itself
            # is still conditional on the status.
            row = await connection.fetchrow(
                CANCEL,
                tenant_id,
                correlation_id,
                self.registry.event_for(found["command"]),
                uuid7(),
                actor_id,
            )
            if row is None:
                status = await connection.fetchval(STATUS, tenant_id, correlation_id)
        if row is None:
            raise Conflict(
                f"Only a PENDING command can be cancelled; this one is {status}.",
                code="COMMAND_NOT_CANCELLABLE",
                details={"status": status},
            )
        return Row(row)
