"""Accepting commands into the outbox, in the request's own transaction, and reporting on them."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy.dialects.postgresql import insert as pg_insert
from uuid_utils.compat import uuid7

from app.db.commands import Command
from app.domain.commands.schemas import CommandIn
from app.lib.errors import Conflict, NotFound
from app.lib.uow import commit

__all__ = ["CommandService", "default_correlation_id"]


def default_correlation_id(request_correlation_id: str | None) -> str:
    """The request's Correlation-Id when it is a UUID, else a new one."""
    if request_correlation_id:
        try:
            return str(uuid.UUID(request_correlation_id))
        except ValueError:
            pass
    return str(uuid7())


class CommandRepository(SQLAlchemyAsyncRepository[Command]):
    model_type = Command


class CommandService(SQLAlchemyAsyncRepositoryService[Command, CommandRepository]):
    repository_type = CommandRepository

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = self.repository.session

    async def submit(self, tenant_id: str, data: CommandIn, request_correlation_id: str | None) -> Command:
        """Write the command to the outbox (PENDING); a trigger wakes the workers at commit."""
        correlation_id = data.correlation_id or default_correlation_id(request_correlation_id)
        now = datetime.datetime.now(datetime.UTC)
        row = (
            await self.session.scalars(
                pg_insert(Command)
                .values(
                    id=uuid7(),
                    tenant_id=tenant_id,
                    correlation_id=correlation_id,
                    command=data.command,
                    actor={"userId": data.actor.user_id},
                    context=data.context,
                    payload=data.payload,
                    status="PENDING",
                    attempts=0,
                    available_at=now,
                    request_correlation_id=request_correlation_id,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(constraint="uq_commands_tenant_correlation")
                .returning(Command)
            )
        ).one_or_none()
        if row is None:
            await self.session.rollback()
            raise Conflict(
                f"A command with correlationId {correlation_id!r} already exists in this tenant.",
                code="DUPLICATE_CORRELATION_ID",
            )
        await commit(self.session)
        return row

    async def get(self, tenant_id: str, correlation_id: str) -> Command:
        row = await self.repository.get_one_or_none(
            Command.tenant_id == tenant_id, Command.correlation_id == correlation_id
        )
        if row is None:
            raise NotFound("No command with this correlationId.")
        return row
