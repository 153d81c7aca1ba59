"""All SQL of custom endpoints: a script's endpoints by page, the count the tenant's quota is
checked against, the insert that inserts nothing when the tenant's (method, route) is taken, the
delete, and the lookup of a /hooks request's endpoint with the state of its script."""

from __future__ import annotations

import uuid
from typing import Any

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from uuid_utils.compat import uuid7

from app.db.scripts import Script
from app.db.triggers import Endpoint
from app.lib.pagination import Keyset, PageParams

__all__ = ["EndpointRepository"]


class EndpointRepository(SQLAlchemyAsyncRepository[Endpoint]):
    model_type = Endpoint

    async def page_of(self, tenant_id: str, script_id: uuid.UUID, page: PageParams) -> list[Endpoint]:
        """A page of the script's endpoints, newest first."""
        return list(
            await self.get_many(
                Keyset(("created_at", "id"), page),
                Endpoint.tenant_id == tenant_id,
                Endpoint.script_id == script_id,
            )
        )

    @staticmethod
    def count_statement(tenant_id: str) -> Select[tuple[int]]:
        """The count of the tenant's endpoints (for ``app.lib.quotas.ensure_quota``)."""
        return select(func.count()).select_from(Endpoint).where(Endpoint.tenant_id == tenant_id)

    async def insert_unless_taken(self, **values: Any) -> Endpoint | None:
        """The new endpoint; None when the tenant has one of this method and route already."""
        return (
            await self.session.scalars(
                pg_insert(Endpoint)
                .values(id=uuid7(), **values)
                .on_conflict_do_nothing(constraint="uq_endpoints_tenant_method_route")
                .returning(Endpoint)
            )
        ).one_or_none()

    async def delete_of_script(self, endpoint_id: uuid.UUID, tenant_id: str, script_id: uuid.UUID) -> bool:
        """Delete the script's endpoint; False when the script has no such endpoint."""
        deleted = await self.session.scalar(
            delete(Endpoint)
            .where(
                Endpoint.id == endpoint_id, Endpoint.tenant_id == tenant_id, Endpoint.script_id == script_id
            )
            .returning(Endpoint.id)
        )
        return deleted is not None

    async def with_script(
        self, tenant_id: str, method: str, route: str
    ) -> tuple[Endpoint, uuid.UUID | None, str] | None:
        """The tenant's endpoint of (method, route) with its script's active version id and
        status; None when there is no such endpoint."""
        found = (
            await self.session.execute(
                select(Endpoint, Script.active_version_id, Script.status)
                .join(Script, Script.id == Endpoint.script_id)
                .where(Endpoint.tenant_id == tenant_id, Endpoint.method == method, Endpoint.route == route)
            )
        ).one_or_none()
        return None if found is None else (found[0], found[1], found[2])
