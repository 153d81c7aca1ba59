"""The authoring rules: scripts, immutable versions, publishing, version diffs and the audit trail.

Every public method is one unit of work: the change and its audit row commit together or not
at all. Write paths use single statements with ``RETURNING`` instead of read-after-write.
"""

from __future__ import annotations

import datetime
import uuid
from functools import cached_property
from typing import Any, Unpack

import msgspec
from msgspec import UNSET
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from app.db.scripts import AuditEntry, Script, ScriptVersion
from app.domain.events.repositories import append_event
from app.domain.events.schemas import ScriptArchivedPayload, ScriptPublishedPayload, VersionCreatedPayload
from app.domain.incoming_events.flow_control import cancel_for_script
from app.domain.scripts import diff, repositories
from app.domain.scripts.graph import validate_graph
from app.domain.scripts.repositories import (
    AuditRepository,
    ScriptFilters,
    ScriptRepository,
    VersionRepository,
)
from app.domain.scripts.schemas import ScriptCreate, ScriptUpdate, VersionCreate, VersionDiff
from app.lib.correlation import current_correlation_id
from app.lib.db import Row, constraint_name
from app.lib.errors import Conflict, NotFound, PreconditionFailed
from app.lib.etag import make_etag, matches
from app.lib.pagination import Keyset, PageParams
from app.lib.principals import Principal
from app.lib.required import required
from app.lib.service import Service
from app.lib.uow import driver_connection

__all__ = ["ScriptService", "ensure_script", "script_etag"]

# PATCH fields that are plain columns, in the order their diffs are reported.
_PATCHABLE = ("name", "slug", "description", "status", "labels", "intents", "language_codes", "embedding_key")
# Version numbers are 32-bit integers in the database; larger ones cannot exist.
_MAX_VERSION = 2**31 - 1
_CAMEL = {
    "language_codes": "languageCodes",
    "embedding_key": "embeddingKey",
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ScriptService(Service[Script, ScriptRepository]):
    repository_type = ScriptRepository

    @cached_property
    def versions(self) -> VersionRepository:
        return VersionRepository(session=self.session)

    @cached_property
    def audit(self) -> AuditRepository:
        return AuditRepository(session=self.session)

    # ---- reads -------------------------------------------------------------------------------

    async def get_detail_row(self, tenant_id: str, script_id: uuid.UUID) -> Row:
        """The script and its active version in one statement (the hot read of the editor)."""
        return required(await repositories.get_detail_row(self.uow, script_id, tenant_id), _script_not_found)

    async def get_detail(self, tenant_id: str, script_id: uuid.UUID) -> tuple[Script, ScriptVersion | None]:
        return required(await self.repository.get_with_active(script_id, tenant_id), _script_not_found)

    async def list_scripts(
        self, tenant_id: str, page: PageParams, **filters: Unpack[ScriptFilters]
    ) -> list[Script]:
        return await self.repository.page_of(tenant_id, page, **filters)

    async def list_versions(
        self, tenant_id: str, script_id: uuid.UUID, page: PageParams
    ) -> list[ScriptVersion]:
        await self._ensure_script(tenant_id, script_id)
        return list(
            await self.versions.get_many(
                Keyset(("version",), page),
                ScriptVersion.script_id == script_id,
                ScriptVersion.tenant_id == tenant_id,
            )
        )

    async def get_version(self, tenant_id: str, script_id: uuid.UUID, version: int) -> ScriptVersion:
        if not 1 <= version <= _MAX_VERSION:  # no such version can exist (and the column is int4)
            raise NotFound(f"Version {version} of this script does not exist.")
        found = await self.versions.get_one_or_none(
            ScriptVersion.script_id == script_id,
            ScriptVersion.version == version,
            ScriptVersion.tenant_id == tenant_id,
        )
        if found is None:
            raise NotFound(f"Version {version} of this script does not exist.")
        return found

    async def diff_versions(
        self, tenant_id: str, script_id: uuid.UUID, from_version: int, to_version: int
    ) -> VersionDiff:
        # One round trip for both versions; the outer join still tells a missing script apart.
        wanted = {n for n in (from_version, to_version) if 1 <= n <= _MAX_VERSION}
        found = required(await self.versions.pair(script_id, tenant_id, wanted), _script_not_found)
        for number in (from_version, to_version):
            if number not in found:
                raise NotFound(f"Version {number} of this script does not exist.")
        return diff.compare(found[from_version], found[to_version])

    async def list_audit(
        self, tenant_id: str, script_id: uuid.UUID, page: PageParams, *, action: str | None = None
    ) -> list[AuditEntry]:
        await self._ensure_script(tenant_id, script_id)
        return await self.audit.newest_first(tenant_id, page, script_id=script_id, action=action)

    # ---- writes ------------------------------------------------------------------------------

    async def create_script(self, tenant_id: str, actor: Principal, data: ScriptCreate) -> Row:
        """The script, its CREATE audit entry and its Script.Created event, in one statement."""
        now = _now()
        row = await repositories.create_row(
            self.uow,
            uuid7(),
            tenant_id,
            data.name,
            data.slug,
            data.description,
            data.labels,
            data.intents,
            data.language_codes,
            data.embedding_key,
            actor.id,
            now,
            uuid7(),
            current_correlation_id(),
        )
        if row is None:
            raise _slug_taken(data.slug)
        return row

    async def update_script(
        self,
        tenant_id: str,
        actor: Principal,
        script_id: uuid.UUID,
        data: ScriptUpdate,
        if_match: list[str] | None = None,
    ) -> tuple[Script, ScriptVersion | None]:
        script = await self._lock_script(tenant_id, script_id)
        # Compared under the row lock: of two editors holding the same ETag, exactly one wins.
        if if_match is not None and not matches(if_match, script_etag(script)):
            raise PreconditionFailed(
                "The script changed since you read it (If-Match does not match its ETag); reload and retry."
            )
        diff: dict[str, dict[str, Any]] = {}
        for field in _PATCHABLE:
            new = getattr(data, field)
            if new is UNSET:
                continue
            old = getattr(script, field)
            if field in ("labels", "intents", "language_codes"):
                old = list(old)
            if new != old:
                diff[_CAMEL.get(field, field)] = {"from": old, "to": new}
                setattr(script, field, new)
        if "status" in diff and script.status == "PUBLISHED" and script.active_version_id is None:
            raise Conflict("A script without a published version cannot be PUBLISHED; publish a version.")
        if diff:
            now = _now()
            script.updated_by_id = actor.id
            script.updated_at = now
            action = "ARCHIVE" if diff.get("status", {}).get("to") == "ARCHIVED" else "UPDATE"
            note = data.note if data.note is not UNSET else None
            try:
                await self.session.flush()
            except sa_exc.IntegrityError as error:
                if constraint_name(error) == "uq_scripts_tenant_slug":
                    raise _slug_taken(str(data.slug)) from None
                raise
            await self.audit.record(
                script.tenant_id, script.id, actor.id, action, diff=diff, note=note, now=now
            )
            if action == "ARCHIVE":
                # Archived scripts start nothing: their pending debounced runs are cancelled.
                await cancel_for_script(await driver_connection(self.session), tenant_id, script.id, now)
                await append_event(
                    self.session,
                    tenant_id=tenant_id,
                    event="Script.Archived",
                    payload=msgspec.to_builtins(
                        ScriptArchivedPayload(script_id=str(script.id), actor_id=actor.id)
                    ),
                )
            await self.uow.commit()
        else:
            await self.uow.commit()  # nothing changed: ends the unit of work, releasing the lock
        return await self.get_detail(tenant_id, script_id)

    async def create_version(
        self, tenant_id: str, actor: Principal, script_id: uuid.UUID, data: VersionCreate
    ) -> ScriptVersion:
        validate_graph(data.graph_json)
        now = _now()
        # The row lock taken by this UPDATE serialises concurrent creators: numbers never repeat.
        number = await self.repository.next_version_number(script_id, tenant_id, actor.id, now)
        if number is None:
            if await self.repository.status_of(script_id, tenant_id) is None:
                raise _script_not_found()
            raise Conflict("The script is archived and takes no new versions.", code="SCRIPT_ARCHIVED")
        version = await self.versions.insert(
            now,
            tenant_id=tenant_id,
            script_id=script_id,
            version=number,
            graph_json=data.graph_json,
            variables_def=data.variables_def,
            changelog=data.changelog,
            is_published=False,
            created_by_id=actor.id,
        )
        await self.audit.record(
            tenant_id, script_id, actor.id, "CREATE", version=number, note=data.note, now=now
        )
        await append_event(
            self.session,
            tenant_id=tenant_id,
            event="Version.Created",
            payload=msgspec.to_builtins(
                VersionCreatedPayload(
                    script_id=str(script_id), version_id=str(version.id), version=number, actor_id=actor.id
                )
            ),
        )
        await self.uow.commit()
        return version

    async def publish(
        self, tenant_id: str, actor: Principal, script_id: uuid.UUID, version_number: int
    ) -> tuple[Script, ScriptVersion]:
        if not 1 <= version_number <= _MAX_VERSION:
            raise NotFound(f"Version {version_number} of this script does not exist.")
        script = await self._lock_script(tenant_id, script_id)
        candidates = await self.versions.number_or_id(script_id, version_number, script.active_version_id)
        target = next((v for v in candidates if v.version == version_number), None)
        active = next((v for v in candidates if v.id == script.active_version_id), None)
        if target is None:
            raise NotFound(f"Version {version_number} of this script does not exist.")
        if active is not None and active.id == target.id:
            # Already the active version: nothing changes. Committing the empty transaction
            # releases the row lock and, unlike a rollback, keeps the loaded rows usable.
            await self.uow.commit()
            return script, target
        if script.status == "ARCHIVED":
            raise Conflict("The script is archived; restore it before publishing.", code="SCRIPT_ARCHIVED")
        now = _now()
        action = "ROLLBACK" if active is not None and target.version < active.version else "PUBLISH"
        target.is_published = True
        script.active_version_id = target.id
        if script.status == "DRAFT":
            script.status = "PUBLISHED"
        script.updated_by_id = actor.id
        script.updated_at = now
        await self.session.flush()
        await self.audit.record(
            script.tenant_id, script.id, actor.id, action, version=target.version, now=now
        )
        await append_event(
            self.session,
            tenant_id=tenant_id,
            event="Script.Published",
            payload=msgspec.to_builtins(
                ScriptPublishedPayload(
                    script_id=str(script.id),
                    version_id=str(target.id),
                    version=target.version,
                    rollback=action == "ROLLBACK",
                    actor_id=actor.id,
                )
            ),
        )
        await self.uow.commit()
        return script, target

    # ---- helpers -----------------------------------------------------------------------------

    async def _ensure_script(self, tenant_id: str, script_id: uuid.UUID) -> None:
        if not await self.repository.exists(script_id, tenant_id):
            raise _script_not_found()

    async def _lock_script(self, tenant_id: str, script_id: uuid.UUID) -> Script:
        return required(await self.repository.lock(script_id, tenant_id), _script_not_found)


async def ensure_script(session: AsyncSession, tenant_id: str, script_id: uuid.UUID) -> None:
    """404 unless the tenant has this script (for the areas that attach things to scripts)."""
    if not await ScriptRepository(session=session).exists(script_id, tenant_id):
        raise _script_not_found()


def script_etag(script: Script) -> str:
    """Every change to a script (metadata, status, a new or published version) moves updated_at."""
    return make_etag(
        script.id, script.updated_at.isoformat(), script.latest_version, script.active_version_id
    )


def _script_not_found() -> NotFound:
    return NotFound("No script with this id.")


def _slug_taken(slug: str) -> Conflict:
    return Conflict(f"The slug {slug!r} is already used by another script of this tenant.", code="SLUG_TAKEN")
