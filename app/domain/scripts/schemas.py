"""Wire shapes of scripts, versions, audit entries and version diffs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app.db.scripts import Script, ScriptVersion
from app.lib.schema import CamelStruct, Out, TenantClaim, TenantResourceOut, Timestamp

__all__ = [
    "AuditEntryOut",
    "EdgeChange",
    "EdgesDiff",
    "NodeChange",
    "NodesDiff",
    "PublishResult",
    "ScriptCreate",
    "ScriptDetail",
    "ScriptOut",
    "ScriptUpdate",
    "ValueChange",
    "VariablesDiff",
    "VersionCreate",
    "VersionDiff",
    "VersionOut",
    "VersionSummary",
]

ScriptStatus = Literal["DRAFT", "PUBLISHED", "ARCHIVED"]
ScriptAuditAction = Literal["CREATE", "UPDATE", "PUBLISH", "ROLLBACK", "ARCHIVE"]
# The tenant's trail also records operations on commands (``POST /commands/{id}/retry|cancel``).
AuditAction = Literal["CREATE", "UPDATE", "PUBLISH", "ROLLBACK", "ARCHIVE", "RETRY", "CANCEL"]
Slug = Annotated[str, Meta(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", min_length=1, max_length=100)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Tag = Annotated[str, Meta(min_length=1, max_length=100)]
Tags = Annotated[list[Tag], Meta(max_length=100)]
Text = Annotated[str, Meta(max_length=10_000)]
Note = Annotated[str, Meta(max_length=2_000)]
EmbeddingKey = Annotated[str, Meta(max_length=200)]


class ScriptCreate(CamelStruct):
    name: Name
    slug: Slug
    description: Text | None = None
    labels: Tags = msgspec.field(default_factory=list)
    intents: Tags = msgspec.field(default_factory=list)
    language_codes: Tags = msgspec.field(default_factory=list)
    embedding_key: EmbeddingKey | None = None
    tenant_id: TenantClaim | None = None


class ScriptUpdate(CamelStruct):
    """Absent fields stay as they are; ``null`` clears a nullable field."""

    name: Name | UnsetType = UNSET
    slug: Slug | UnsetType = UNSET
    description: Text | UnsetType | None = UNSET
    status: ScriptStatus | UnsetType = UNSET
    labels: Tags | UnsetType = UNSET
    intents: Tags | UnsetType = UNSET
    language_codes: Tags | UnsetType = UNSET
    embedding_key: EmbeddingKey | UnsetType | None = UNSET
    note: Note | UnsetType | None = UNSET
    tenant_id: TenantClaim | UnsetType | None = UNSET


class VersionCreate(CamelStruct):
    graph_json: dict[str, Any]
    variables_def: dict[str, Any] | list[Any] | None = None
    changelog: Text | None = None
    note: Note | None = None
    tenant_id: TenantClaim | None = None


class ScriptOut(TenantResourceOut):
    name: str
    slug: str
    description: str | None
    status: ScriptStatus
    active_version_id: UUID | None
    latest_version: int
    labels: list[str]
    intents: list[str]
    language_codes: list[str]
    embedding_key: str | None
    created_by_id: str
    updated_by_id: str
    created_at: Timestamp
    updated_at: Timestamp


def _graph(value: Any) -> Any:
    """A graph read as JSON text goes out as those bytes (``msgspec.Raw``); a decoded one as is."""
    return msgspec.Raw(value.encode()) if isinstance(value, str) else value


class VersionOut(TenantResourceOut):
    script_id: UUID
    version: int
    graph_json: dict[str, Any]
    variables_def: dict[str, Any] | list[Any] | None
    changelog: str | None
    is_published: bool
    created_by_id: str
    created_at: Timestamp

    converters: ClassVar[dict[str, Callable[[Any], Any]]] = {"graph_json": _graph}


class ScriptDetail(ScriptOut):
    """A script with its active (published) version in full, or null."""

    active_version: VersionOut | None = None

    @classmethod
    def of_row(cls, row: Any) -> ScriptDetail:
        """From a ``GET_DETAIL`` row: the script's columns, and its active version's as ``v_*``."""
        active = VersionOut.of(row, prefix="v_") if row.v_id is not None else None
        return cls.of(row, active_version=active)

    @classmethod
    def of_pair(cls, script: Script, active: ScriptVersion | None) -> ScriptDetail:
        return cls.of(script, active_version=VersionOut.of(active) if active is not None else None)


class VersionSummary(Out):
    id: UUID
    version: int
    is_published: bool
    created_at: Timestamp
    changelog: str | None


class AuditEntryOut(Out):
    """An audit entry: about a script (``scriptId``, and ``version`` when one is concerned) or,
    for RETRY and CANCEL, about a command (``correlationId``); the other is null."""

    id: UUID
    tenant_id: str
    script_id: UUID | None
    correlation_id: str | None
    version: int | None
    action: AuditAction
    actor_id: str
    diff_json: dict[str, Any] | None
    note: str | None
    created_at: Timestamp


# ---- version diff (built by app.domain.scripts.diff) ------------------------------------------


class ValueChange(CamelStruct):
    """One value before and after; ``null`` also stands for a key absent on that side."""

    from_: Any = msgspec.field(name="from")
    to: Any


class NodeChange(CamelStruct):
    id: str
    changes: dict[str, ValueChange]


class EdgeChange(CamelStruct):
    """An edge present in both versions under the same key, with other keys that differ."""

    source: Any
    target: Any
    id: Any
    changes: dict[str, ValueChange]


class NodesDiff(CamelStruct):
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[NodeChange]


class EdgesDiff(CamelStruct):
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[EdgeChange]


class VariablesDiff(CamelStruct):
    """Key by key when both manifests are objects; otherwise ``replaced`` holds the whole values."""

    added: dict[str, Any]
    removed: dict[str, Any]
    changed: dict[str, ValueChange]
    replaced: ValueChange | None


class VersionDiff(CamelStruct):
    script_id: UUID
    from_version: int
    to_version: int
    nodes: NodesDiff
    edges: EdgesDiff
    variables_def: VariablesDiff
    graph_fields: dict[str, ValueChange]


PublishResult = ScriptDetail
