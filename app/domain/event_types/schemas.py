"""Wire shapes of event types."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from msgspec import Meta

from app.lib.schema import CamelStruct, Out, TenantClaim, TimestampOrNone

EVENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.]{0,99}$"
EventName = Annotated[
    str,
    Meta(
        pattern=EVENT_NAME_PATTERN,
        max_length=100,
        description="A built-in lifecycle name or one registered with POST /event-types.",
    ),
]


class EventTypeCreate(CamelStruct):
    name: EventName
    description: Annotated[str, Meta(max_length=2_000)] | None = None
    tenant_id: TenantClaim | None = None


class EventTypeOut(Out):
    """A registered event type, or a built-in lifecycle name (``builtIn``, no id, no creator)."""

    id: UUID | None
    name: str
    description: str | None
    built_in: bool
    created_by_id: str | None
    created_at: TimestampOrNone

    @classmethod
    def built_in_named(cls, name: str) -> EventTypeOut:
        return cls(
            id=None,
            name=name,
            description="Lifecycle event written by the API itself.",
            built_in=True,
            created_by_id=None,
            created_at=None,
        )
