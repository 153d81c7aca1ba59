"""All SQL of custom endpoints: the quota of endpoints per tenant, the insert that inserts
nothing when the tenant's (method, route) is taken, the delete, and the lookup of a /hooks
request's endpoint with the state of its script. (A script's endpoints by page are the base
repository's ``newest_first``.)"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import delete, select

from app.db.scripts import Script
from app.db.triggers import Endpoint
from app.lib.repository import Quota, Repository

__all__ = ["ENDPOINTS_PER_TENANT", "EndpointRepository"]


ENDPOINTS_PER_TENANT = Quota(
    "endpoints",
    "custom endpoints per tenant",
    Endpoint,
    lambda tenant_id: (Endpoint.tenant_id == tenant_id,),
)


class EndpointRepository(Repository[Endpoint]):
    model_type = Endpoint

    async def insert_unless_taken(self, now: datetime.datetime, **values: Any) -> Endpoint | None:
        """The new endpoint; None when the tenant has one of this method and route already."""
        return await self.insert_returning(
            now, on_conflict={"constraint": "uq_endpoints_tenant_method_route"}, **values
        )

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
