"""The rules of event types: the built-in lifecycle names plus the names a tenant registers."""

from __future__ import annotations

import datetime
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.triggers import EventType
from app.domain.event_types.repositories import EventTypeRepository
from app.domain.event_types.schemas import EventTypeCreate, EventTypeOut
from app.domain.events.schemas import LIFECYCLE_EVENTS
from app.lib.errors import Conflict, NotFound
from app.lib.pagination import PageParams, decode_cursor
from app.lib.principals import Principal
from app.lib.service import Service

__all__ = ["EventTypeService", "ensure_event_name"]

# Built-in names sort after every registered type (as if created first), in SPEC order.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_BUILT_IN_KEYS = {
    name: (_EPOCH, uuid.UUID(int=len(LIFECYCLE_EVENTS) - index))
    for index, name in enumerate(LIFECYCLE_EVENTS)
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def ensure_event_name(session: AsyncSession, tenant_id: str, name: str) -> None:
    """Built-in lifecycle names and the tenant's registered names are known; others are 404."""
    if name in LIFECYCLE_EVENTS:
        return
    if not await EventTypeRepository(session=session).is_registered(tenant_id, name):
        raise NotFound(
            f"No event type named {name!r}: register it with POST /event-types.",
            details=[{"field": "eventName", "message": "unknown event type"}],
        )


class EventTypeService(Service[EventType, EventTypeRepository]):
    repository_type = EventTypeRepository

    async def list_event_types(
        self, tenant_id: str, page: PageParams
    ) -> list[tuple[tuple[datetime.datetime, uuid.UUID], EventTypeOut]]:
        """Registered types newest first, then the built-in names: one keyset over both."""
        registered = await self.repository.newest_first(tenant_id, page)
        after = decode_cursor(page.cursor, 2) if page.cursor is not None else None
        items = [((row.created_at, row.id), EventTypeOut.of(row, built_in=False)) for row in registered]
        items += [
            (key, EventTypeOut.built_in_named(name))
            for name, key in _BUILT_IN_KEYS.items()
            if after is None or key < after
        ]
        items.sort(key=lambda item: item[0], reverse=True)
        return items[: page.limit + 1]

    async def create_event_type(self, tenant_id: str, actor: Principal, data: EventTypeCreate) -> EventType:
        if data.name in LIFECYCLE_EVENTS:
            raise _event_type_exists(data.name)
        row = await self.repository.insert_unless_taken(
            _now(), tenant_id=tenant_id, name=data.name, description=data.description, created_by_id=actor.id
        )
        if row is None:
            raise _event_type_exists(data.name)
        await self.uow.commit()
        return row


def _event_type_exists(name: str) -> Conflict:
    return Conflict(f"The event type {name!r} exists already.", code="EVENT_TYPE_EXISTS")
