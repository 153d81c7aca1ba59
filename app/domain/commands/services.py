"""Accepting commands into the outbox, in the request's own transaction, and reporting on them."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from uuid_utils.compat import uuid7

from app.db.commands import Command
from app.domain.commands.schemas import CommandIn
from app.lib.db import statements
from app.lib.errors import Conflict, NotFound

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


class CommandRepository(SQLAlchemyAsyncRepository[Command]):
    model_type = Command


class CommandService(SQLAlchemyAsyncRepositoryService[Command, CommandRepository]):
    repository_type = CommandRepository

    def __init__(self, *, statement_pool: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = self.repository.session
        self.statement_pool = statement_pool

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
        async with statements(self.session, self.statement_pool) as connection:
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

    async def get(self, tenant_id: str, correlation_id: str) -> Command:
        row = await self.repository.get_one_or_none(
            Command.tenant_id == tenant_id, Command.correlation_id == correlation_id
        )
        if row is None:
            raise NotFound("No command with this correlationId.")
        return row
