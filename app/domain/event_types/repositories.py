"""All SQL of event types: a tenant's registered names, read by page or by name, and the
registration that inserts nothing when the tenant has the name already. The built-in lifecycle
names have no rows; the service adds them."""

from __future__ import annotations

import datetime

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from uuid_utils.compat import uuid7

from app.db.triggers import EventType
from app.lib.pagination import Keyset, PageParams

__all__ = ["EventTypeRepository"]


class EventTypeRepository(SQLAlchemyAsyncRepository[EventType]):
    model_type = EventType

    async def page_of(self, tenant_id: str, page: PageParams) -> list[EventType]:
        """A page of the tenant's registered types, newest first."""
        return list(await self.get_many(Keyset(("created_at", "id"), page), EventType.tenant_id == tenant_id))

    async def is_registered(self, tenant_id: str, name: str) -> bool:
        return bool(
            await self.session.scalar(
                select(exists().where(EventType.tenant_id == tenant_id, EventType.name == name))
            )
        )

    async def insert_unless_taken(
        self,
        tenant_id: str,
        name: str,
        description: str | None,
        actor_id: str,
        now: datetime.datetime,
    ) -> EventType | None:
        """The new type; None when the tenant has one of this name already."""
        return (
            await self.session.scalars(
                pg_insert(EventType)
                .values(
                    id=uuid7(),
                    tenant_id=tenant_id,
                    name=name,
                    description=description,
                    created_by_id=actor_id,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(constraint="uq_event_types_tenant_name")
                .returning(EventType)
            )
        ).one_or_none()
