"""The tenant-wide audit trail behind ``GET /audit``: every script's entries and the operations on
commands, filtered and paged.

A script's own trail is ``ScriptService.list_audit``; the rows are written in the transaction of
each change, by ``ScriptService`` and, for RETRY and CANCEL, by ``CommandService``.
"""

from __future__ import annotations

from typing import Unpack

from app.db.scripts import AuditEntry
from app.domain.scripts.repositories import AuditFilters, AuditRepository
from app.lib.pagination import PageParams
from app.lib.service import Service

__all__ = ["AuditService"]


class AuditService(Service[AuditEntry, AuditRepository]):
    """The tenant-wide audit trail, filtered by actor, action and a createdAt window."""

    repository_type = AuditRepository

    async def list_trail(
        self, tenant_id: str, page: PageParams, **filters: Unpack[AuditFilters]
    ) -> list[AuditEntry]:
        return await self.repository.newest_first(tenant_id, page, **filters)
