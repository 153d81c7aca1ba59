"""The tenant-wide audit trail behind ``GET /audit``: every script's entries and the operations on
commands, filtered and paged.

A script's own trail is ``ScriptService.list_audit``; the rows are written in the transaction of
each change, by ``ScriptService`` and, for RETRY and CANCEL, by ``CommandService``.
"""

from __future__ import annotations

from typing import Any

from advanced_alchemy.filters import CollectionFilter

from app.db.scripts import AuditEntry
from app.domain.scripts.repositories import AuditRepository
from app.lib.pagination import Keyset, PageParams
from app.lib.service import Service
from app.lib.timerange import TimeWindow

__all__ = ["AuditService"]


class AuditService(Service[AuditEntry, AuditRepository]):
    """The tenant-wide audit trail, filtered by actor, action and a createdAt window.

    Every combination is an index scan in page order with no sort: (tenant_id[, actor_id]
    [, action], created_at DESC, id DESC) indexes exist for each, and the window and the cursor
    are ranges on their created_at.
    """

    repository_type = AuditRepository

    async def list_trail(
        self,
        tenant_id: str,
        page: PageParams,
        *,
        actor_id: str | None = None,
        action: str | None = None,
        window: TimeWindow | None = None,
    ) -> list[AuditEntry]:
        filters: list[Any] = [Keyset(("created_at", "id"), page)]
        if actor_id is not None:
            filters.append(CollectionFilter(field_name="actor_id", values=[actor_id]))
        if action is not None:
            filters.append(CollectionFilter(field_name="action", values=[action]))
        if window is not None:
            filters.extend(window.filters("created_at"))
        return list(await self.repository.get_many(*filters, AuditEntry.tenant_id == tenant_id))
