"""Wire shapes of commands."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from app.lib.schema import CamelStruct, Timestamp, timestamp, timestamp_or_none

__all__ = ["CommandAccepted", "CommandIn", "CommandOutcome", "CommandStatus", "CommandStatusOut"]

CommandName = Annotated[
    str,
    Meta(
        pattern=r"^[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)+\.v[1-9][0-9]*$",
        max_length=200,
        description="Domain.Verb.vN, e.g. Contacts.UpsertAndLink.v1",
    ),
]
CorrelationId = Annotated[str, Meta(pattern=r"^[\x21-\x7e]{1,128}$")]
CommandStatus = Literal["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"]


class CommandActor(CamelStruct):
    user_id: Annotated[str, Meta(min_length=1, max_length=128)]


class CommandIn(CamelStruct):
    command: CommandName
    actor: CommandActor
    correlation_id: CorrelationId | None = None
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    tenant_id: Annotated[str, Meta(max_length=64)] | None = None


class CommandAccepted(CamelStruct):
    correlation_id: str
    status: Literal["PENDING"]


class CommandOutcome(CamelStruct):
    """The event that ended a command: the worker's (success true or false) or a cancel's (false)."""

    id: int
    event: str
    success: bool
    payload: dict[str, Any]
    occurred_at: Timestamp


class CommandStatusOut(CamelStruct):
    correlation_id: str
    tenant_id: str
    command: str
    status: CommandStatus
    actor: CommandActor
    submitted_by_id: str | None
    attempts: int
    last_error: str | None
    created_at: Timestamp
    updated_at: Timestamp
    completed_at: Timestamp | None
    next_attempt_at: Timestamp | None
    # Null until the command is finished; after a retry, the outcome of the latest run.
    outcome: CommandOutcome | None

    @classmethod
    def of(cls, row: Any) -> CommandStatusOut:
        """From a command row; its outcome event, when the row has one, in ``outcome_*`` columns."""
        outcome_id = getattr(row, "outcome_id", None)
        return cls(
            correlation_id=row.correlation_id,
            tenant_id=row.tenant_id,
            command=row.command,
            status=row.status,
            actor=CommandActor(user_id=row.actor.get("userId", "")),
            submitted_by_id=row.submitted_by_id,
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=timestamp(row.created_at),
            updated_at=timestamp(row.updated_at),
            completed_at=timestamp_or_none(row.completed_at),
            next_attempt_at=timestamp(row.available_at) if row.status == "PENDING" else None,
            outcome=None
            if outcome_id is None
            else CommandOutcome(
                id=outcome_id,
                event=row.outcome_event,
                success=row.outcome_success,
                payload=row.outcome_payload,
                occurred_at=timestamp(row.outcome_occurred_at),
            ),
        )
