"""All SQL of scripts, versions and their audit trail.

The hottest paths (reading one script, creating one) are plain statements straight to the
asyncpg driver (see ``app.lib.db.statements``): no ORM objects, no BEGIN/COMMIT round trips, and
the audit row and lifecycle event of a creation are data-modifying CTEs of the same statement,
so they commit with it. The rest works on the session's transaction through advanced-alchemy's
repositories.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, TypedDict, Unpack

from advanced_alchemy.filters import SearchFilter
from sqlalchemy import and_, or_, select, update

from app.db.scripts import AuditEntry, Script, ScriptVersion
from app.lib.db import Row
from app.lib.pagination import PageParams
from app.lib.repository import NewestFirstFilters, Repository
from app.lib.uow import UnitOfWork

__all__ = [
    "AuditFilters",
    "AuditRepository",
    "ScriptFilters",
    "ScriptRepository",
    "VersionRepository",
    "create_row",
    "get_detail_row",
]

SCRIPT_COLUMNS = (
    "id, tenant_id, name, slug, description, status, active_version_id, latest_version, labels, "
    "intents, language_codes, embedding_key, created_by_id, updated_by_id, created_at, updated_at"
)

# A script and its active version (columns prefixed ``v_``), or no row. The graph comes as its JSON
# text: it goes out as stored, not decoded into objects to be encoded again (graphs grow large).
GET_DETAIL = f"""
SELECT {", ".join(f"s.{c.strip()}" for c in SCRIPT_COLUMNS.split(","))},
       v.id AS v_id, v.tenant_id AS v_tenant_id, v.script_id AS v_script_id, v.version AS v_version,
       v.graph_json::text AS v_graph_json, v.variables_def AS v_variables_def, v.changelog AS v_changelog,
       v.is_published AS v_is_published, v.created_by_id AS v_created_by_id, v.created_at AS v_created_at
FROM scripts s LEFT JOIN script_versions v ON v.id = s.active_version_id
WHERE s.id = $1 AND s.tenant_id = $2
"""

# Creates a DRAFT script, its CREATE audit entry and its Script.Created event; no row when the
# tenant already has the slug. Parameters: $1 id, $2 tenant, $3 name, $4 slug, $5 description,
# $6 labels, $7 intents, $8 language codes, $9 embedding key, $10 actor, $11 now,
# $12 audit id, $13 correlation id.
CREATE_SCRIPT = f"""
WITH created AS (
    INSERT INTO scripts (id, tenant_id, name, slug, description, status, latest_version, labels, intents,
                         language_codes, embedding_key, created_by_id, updated_by_id, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, 'DRAFT', 0, $6, $7, $8, $9, $10, $10, $11, $11)
    ON CONFLICT ON CONSTRAINT uq_scripts_tenant_slug DO NOTHING
    RETURNING {SCRIPT_COLUMNS}
), audit AS (
    INSERT INTO audit_log (id, tenant_id, script_id, action, actor_id, created_at, updated_at)
    SELECT $12, tenant_id, id, 'CREATE', $10, $11, $11 FROM created
), event AS (
    INSERT INTO events (tenant_id, event, correlation_id, success, payload)
    SELECT tenant_id, 'Script.Created', $13, true,
           jsonb_build_object('scriptId', id, 'slug', slug, 'name', name, 'actorId', $10::text)
    FROM created
)
SELECT * FROM created
"""


async def get_detail_row(uow: UnitOfWork, script_id: uuid.UUID, tenant_id: str) -> Row | None:
    """The script and its active version (``v_*`` columns) in one statement, on the unit of
    work's statements (no ORM session)."""
    async with uow.statements() as connection:
        row = await connection.fetchrow(GET_DETAIL, script_id, tenant_id)
    return None if row is None else Row(row)


async def create_row(uow: UnitOfWork, *values: Any) -> Row | None:
    """``CREATE_SCRIPT`` with its parameters; None when the slug is taken."""
    async with uow.statements() as connection:
        row = await connection.fetchrow(CREATE_SCRIPT, *values)
    return None if row is None else Row(row)


class ScriptFilters(TypedDict, total=False):
    """What narrows the list of a tenant's scripts (None or empty narrows nothing)."""

    q: str | None  # in the name or the slug, case-insensitive
    status: str | None
    label: str | None  # one of the script's labels


class AuditFilters(NewestFirstFilters, total=False):
    """What narrows an audit trail (None narrows nothing)."""

    script_id: uuid.UUID | None
    actor_id: str | None
    action: str | None


class ScriptRepository(Repository[Script]):
    model_type = Script

    async def page_of(
        self, tenant_id: str, page: PageParams, **filters: Unpack[ScriptFilters]
    ) -> list[Script]:
        """A page of the tenant's scripts, newest first."""
        conditions: list[Any] = []
        if q := filters.get("q"):
            conditions.append(
                SearchFilter(field_name={"name", "slug"}, value=q, ignore_case=True, escape_wildcards=True)
            )
        if label := filters.get("label"):
            conditions.append(Script.labels.contains([label]))
        return await self.newest_first(tenant_id, page, *conditions, status=filters.get("status"))

    async def get_with_active(
        self, script_id: uuid.UUID, tenant_id: str
    ) -> tuple[Script, ScriptVersion | None] | None:
        row = (
            await self.session.execute(
                select(Script, ScriptVersion)
                .outerjoin(ScriptVersion, ScriptVersion.id == Script.active_version_id)
                .where(Script.id == script_id, Script.tenant_id == tenant_id)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def exists(self, script_id: uuid.UUID, tenant_id: str) -> bool:
        found = await self.session.scalar(
            select(Script.id).where(Script.id == script_id, Script.tenant_id == tenant_id)
        )
        return found is not None

    async def status_of(self, script_id: uuid.UUID, tenant_id: str) -> str | None:
        return await self.session.scalar(
            select(Script.status).where(Script.id == script_id, Script.tenant_id == tenant_id)
        )

    async def lock(self, script_id: uuid.UUID, tenant_id: str) -> Script | None:
        return await self.session.scalar(
            select(Script).where(Script.id == script_id, Script.tenant_id == tenant_id).with_for_update()
        )

    async def next_version_number(
        self, script_id: uuid.UUID, tenant_id: str, actor_id: str, now: datetime.datetime
    ) -> int | None:
        """The script's next version number, taken under the script's row lock (so concurrent
        creators never repeat one); None when no such script exists or it is archived."""
        return (
            await self.session.execute(
                update(Script)
                .where(Script.id == script_id, Script.tenant_id == tenant_id, Script.status != "ARCHIVED")
                .values(latest_version=Script.latest_version + 1, updated_at=now, updated_by_id=actor_id)
                .returning(Script.latest_version)
            )
        ).scalar_one_or_none()


class VersionRepository(Repository[ScriptVersion]):
    model_type = ScriptVersion

    async def insert(self, now: datetime.datetime, **values: Any) -> ScriptVersion:
        version = await self.insert_returning(now, **values)
        assert version is not None  # without ON CONFLICT the insert returns its row or raises
        return version

    async def pair(
        self, script_id: uuid.UUID, tenant_id: str, numbers: set[int]
    ) -> dict[int, ScriptVersion] | None:
        """The versions of ``numbers`` that exist, by number, in one round trip; None when the
        script does not exist (the outer join tells it apart from missing versions)."""
        rows = (
            await self.session.execute(
                select(Script.id, ScriptVersion)
                .outerjoin(
                    ScriptVersion,
                    and_(ScriptVersion.script_id == Script.id, ScriptVersion.version.in_(numbers)),
                )
                .where(Script.id == script_id, Script.tenant_id == tenant_id)
            )
        ).all()
        if not rows:
            return None
        return {version.version: version for _, version in rows if version is not None}

    async def number_or_id(
        self, script_id: uuid.UUID, number: int, version_id: uuid.UUID | None
    ) -> list[ScriptVersion]:
        """The script's version ``number`` and the version with ``version_id`` (the active one)."""
        found = await self.session.scalars(
            select(ScriptVersion).where(
                ScriptVersion.script_id == script_id,
                or_(ScriptVersion.version == number, ScriptVersion.id == version_id),
            )
        )
        return list(found.all())


class AuditRepository(Repository[AuditEntry]):
    """Pages of an audit trail are ``newest_first`` with ``AuditFilters``: every combination is
    an index scan in page order with no sort, as a script's trail has (script_id[, action],
    created_at DESC, id DESC) indexes and the tenant's (tenant_id[, actor_id][, action],
    created_at DESC, id DESC) ones; the window and the cursor are ranges on their created_at."""

    model_type = AuditEntry

    async def record(
        self,
        tenant_id: str,
        script_id: uuid.UUID,
        actor_id: str,
        action: str,
        *,
        now: datetime.datetime,
        version: int | None = None,
        diff: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> None:
        """An audit row of a change to a script, in the change's transaction."""
        await self.insert_returning(
            now,
            returning=AuditEntry.id,
            tenant_id=tenant_id,
            script_id=script_id,
            version=version,
            action=action,
            actor_id=actor_id,
            diff_json=diff,
            note=note,
        )
