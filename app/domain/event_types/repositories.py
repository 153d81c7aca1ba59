"""All SQL of event types: whether a tenant registered a name, and the registration that
inserts nothing when the tenant has the name already (a page of them is the base repository's
``newest_first``). The built-in lifecycle names have no rows; the service adds them."""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import exists, select

from app.db.triggers import EventType
from app.lib.repository import Repository

__all__ = ["EventTypeRepository"]


class EventTypeRepository(Repository[EventType]):
    model_type = EventType

    async def is_registered(self, tenant_id: str, name: str) -> bool:
        return bool(
            await self.session.scalar(
                select(exists().where(EventType.tenant_id == tenant_id, EventType.name == name))
            )
        )

    async def insert_unless_taken(self, now: datetime.datetime, **values: Any) -> EventType | None:
        """The new type; None when the tenant has one of this name already."""
        return await self.insert_returning(
            now, on_conflict={"constraint": "uq_event_types_tenant_name"}, **values
        )
