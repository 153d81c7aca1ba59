"""HTTP surface of scripts, versions, version diffs and the audit trail (``/scripts``, ``/audit``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from app.domain.scripts.audit import AuditService
from app.domain.scripts.schemas import (
    AuditAction,
    AuditEntryOut,
    ScriptAuditAction,
    ScriptCreate,
    ScriptDetail,
    ScriptOut,
    ScriptStatus,
    ScriptUpdate,
    VersionCreate,
    VersionDiff,
    VersionOut,
    VersionSummary,
)
from app.domain.scripts.services import ScriptService, script_etag
from app.lib.dependencies import CurrentActor, Paging, Tenant, Window
from app.lib.etag import IF_MATCH_PATTERN, parse_if_match
from app.lib.openapi import json_body
from app.lib.pagination import Page, build_page
from app.lib.principals import Principal
from app.lib.routes import action_route, create_route, list_route, read_route, update_route
from app.lib.service import provide_service
from app.lib.tenancy import ensure_same_tenant
from app.lib.timerange import provide_time_window

__all__ = ["AuditController", "ScriptController"]

Scripts = NamedDependency[ScriptService]
Audit = NamedDependency[AuditService]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description='The ETag you read, quoted; on mismatch 412 PRECONDITION_FAILED; "*" matches any.',
        max_length=1024,
        # Documented only: the service checks it and explains what is wrong (weak tags, quoting).
        schema_extra={"pattern": IF_MATCH_PATTERN},
    ),
]
ETAG_HEADER = [
    ResponseHeader(
        name="ETag",
        description="Strong entity tag of the script; send it back in If-Match to update safely.",
        value="",  # only its type is documented (a string); the handler sets the header
        documentation_only=True,
    )
]


async def provide_script_service(request: Request[Any, Any, Any], tenant_id: Tenant) -> ScriptService:
    """The script service on the request's session (which opens no connection until used).

    It takes ``tenant_id`` only to chain after it, and the hot handlers read the caller from
    ``request.user``: Litestar resolves a batch of several independent dependencies in a task
    group, a sizeable share of a short request's CPU time; chained, every batch holds one.
    """
    return ScriptService.for_request(request)


def _with_etag(detail: ScriptDetail, etag: str, status_code: int = HTTP_200_OK) -> Response[ScriptDetail]:
    return Response(content=detail, headers={"ETag": etag}, status_code=status_code)


ScriptCreateBody = Annotated[
    ScriptCreate,
    json_body(
        {
            "name": "Welcome call",
            "slug": "welcome-call",
            "description": "Greets new customers",
            "labels": ["onboarding"],
            "intents": ["greeting"],
            "languageCodes": ["en", "de"],
            "embeddingKey": None,
        }
    ),
]
ScriptUpdateBody = Annotated[
    ScriptUpdate,
    json_body(
        {
            "name": "Welcome call (v2)",
            "labels": ["onboarding", "vip"],
            "note": "renamed for the VIP campaign",
        },
        "Only the fields to change; null clears a nullable field.",
    ),
]
VersionCreateBody = Annotated[
    VersionCreate,
    json_body(
        {
            "graphJson": {
                "nodes": [
                    {"id": "start", "type": "say", "text": "Hello!"},
                    {"id": "ask", "type": "closedQuestion"},
                ],
                "edges": [{"source": "start", "target": "ask"}],
            },
            "variablesDef": {"customerName": {"type": "string"}},
            "changelog": "First draft",
            "note": "imported from the editor",
        }
    ),
]

VERSION_DIFF_DESCRIPTION = """\
What changed from version `from_version` to version `to_version` (either order; equal numbers
give an empty diff, and swapping them gives the exact inverse: added and removed swap, `from` and
`to` swap).

- `nodes`: identified by `id`. `added` and `removed` hold whole nodes; `changed` lists
  `{id, changes: {key: {from, to}}}` for each top-level key that differs. A key present on one
  side only is a change whose other side is `null` (so explicit `null` versus absent shows as
  `null` to `null`).
- `edges`: identified by `(source, target, id)`, `id` null when absent. Edges sharing a key
  are compared as a multiset: identical ones cancel, the rest pair up in graph order; pairs
  with differing other keys are `changed`, the unpaired are `added` or `removed`.
- `variablesDef`: key by key (`added`, `removed`, `changed`) when both are objects; otherwise
  `replaced: {from, to}` when they differ.
- `graphFields`: other top-level `graphJson` keys (layout, ...) that differ, as `{key: {from, to}}`.

Values compare as JSON (`true` is not `1`). Lists are sorted by node id or edge key; every field
is always present.
"""


class ScriptController(Controller):
    path = "/scripts"
    tags = ["Scripts"]
    dependencies = {"scripts": Provide(provide_script_service)}

    @create_route(
        "Create a script",
        "Creates a DRAFT script with latestVersion 0 and logs a CREATE audit entry.",
        response_headers=ETAG_HEADER,
    )
    async def create_script(
        self,
        request: Request[Principal, Any, Any],
        scripts: Scripts,
        tenant_id: Tenant,
        data: ScriptCreateBody,
    ) -> Response[ScriptDetail]:
        ensure_same_tenant(tenant_id, data.tenant_id)
        script = await scripts.create_script(tenant_id, request.user, data)
        return _with_etag(ScriptDetail.of_pair(script, None), script_etag(script), HTTP_201_CREATED)

    @list_route(
        "List scripts",
        "Newest first. `q` matches name or slug, case-insensitive; `label` must be one of "
        "the script's labels.",
    )
    async def list_scripts(
        self,
        scripts: Scripts,
        tenant_id: Tenant,
        page: Paging,
        q: Annotated[
            str | None, QueryParameter(description="Substring of name or slug.", max_length=200)
        ] = None,
        status: Annotated[
            ScriptStatus | None, QueryParameter(description="Only scripts in this status.")
        ] = None,
        label: Annotated[
            str | None, QueryParameter(description="Only scripts with this label.", max_length=100)
        ] = None,
    ) -> Page[ScriptOut]:
        rows = await scripts.list_scripts(tenant_id, page, q=q, status=status, label=label)
        return build_page(rows, page, lambda s: (s.created_at, s.id), ScriptOut.of)

    @read_route("/{script_id:uuid}", "Get a script with its active version", response_headers=ETAG_HEADER)
    async def get_script(
        self, scripts: Scripts, tenant_id: Tenant, script_id: FromPath[UUID]
    ) -> Response[ScriptDetail]:
        row = await scripts.get_detail_row(tenant_id, script_id)
        return _with_etag(ScriptDetail.of_row(row), script_etag(row))

    @update_route(
        "/{script_id:uuid}",
        "Change a script's metadata or status",
        "Absent fields are unchanged. Logs UPDATE with diffJson {field: {from, to}}, or "
        "ARCHIVE when the status becomes ARCHIVED. A request that changes nothing logs nothing.",
        also=(409, 412),
        response_headers=ETAG_HEADER,
    )
    async def update_script(
        self,
        scripts: Scripts,
        tenant_id: Tenant,
        actor: CurrentActor,
        script_id: FromPath[UUID],
        data: ScriptUpdateBody,
        if_match: IfMatch = None,
    ) -> Response[ScriptDetail]:
        ensure_same_tenant(tenant_id, data.tenant_id or None)
        expected = parse_if_match(if_match) if if_match is not None else None
        script, active = await scripts.update_script(tenant_id, actor, script_id, data, expected)
        return _with_etag(ScriptDetail.of_pair(script, active), script_etag(script))

    @create_route(
        "Save a new immutable version",
        "Numbers the version latestVersion + 1 (safe under concurrency) and logs CREATE. "
        "An archived script takes no new versions (409 SCRIPT_ARCHIVED).",
        path="/{script_id:uuid}/versions",
        also=(404, 422),
    )
    async def create_version(
        self,
        scripts: Scripts,
        tenant_id: Tenant,
        actor: CurrentActor,
        script_id: FromPath[UUID],
        data: VersionCreateBody,
    ) -> VersionOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return VersionOut.of(await scripts.create_version(tenant_id, actor, script_id, data))

    @list_route(
        "List a script's versions", "Newest version first.", path="/{script_id:uuid}/versions", also=(404,)
    )
    async def list_versions(
        self, scripts: Scripts, tenant_id: Tenant, page: Paging, script_id: FromPath[UUID]
    ) -> Page[VersionSummary]:
        rows = await scripts.list_versions(tenant_id, script_id, page)
        return build_page(rows, page, lambda v: (v.version,), VersionSummary.of)

    @read_route("/{script_id:uuid}/versions/{version:int}", "Get one version with its graph")
    async def get_version(
        self, scripts: Scripts, tenant_id: Tenant, script_id: FromPath[UUID], version: FromPath[int]
    ) -> VersionOut:
        return VersionOut.of(await scripts.get_version(tenant_id, script_id, version))

    @read_route(
        "/{script_id:uuid}/versions/{from_version:int}/diff/{to_version:int}",
        "Compare two versions",
        VERSION_DIFF_DESCRIPTION,
    )
    async def diff_versions(
        self,
        scripts: Scripts,
        tenant_id: Tenant,
        script_id: FromPath[UUID],
        from_version: FromPath[int],
        to_version: FromPath[int],
    ) -> VersionDiff:
        return await scripts.diff_versions(tenant_id, script_id, from_version, to_version)

    @action_route(
        "/{script_id:uuid}/versions/{version:int}/publish",
        "Publish a version",
        "Makes the version the script's active version (a DRAFT script becomes PUBLISHED) "
        "and logs PUBLISH, or ROLLBACK when it is older than the active one. Publishing the active "
        "version again changes nothing.",
        response_headers=ETAG_HEADER,
    )
    async def publish_version(
        self,
        scripts: Scripts,
        tenant_id: Tenant,
        actor: CurrentActor,
        script_id: FromPath[UUID],
        version: FromPath[int],
    ) -> Response[ScriptDetail]:
        script, active = await scripts.publish(tenant_id, actor, script_id, version)
        return _with_etag(ScriptDetail.of_pair(script, active), script_etag(script))

    @list_route("A script's audit trail", "Newest first.", path="/{script_id:uuid}/audit", also=(404,))
    async def list_audit(
        self,
        scripts: Scripts,
        tenant_id: Tenant,
        page: Paging,
        script_id: FromPath[UUID],
        action: Annotated[
            ScriptAuditAction | None, QueryParameter(description="Only entries of this action.")
        ] = None,
    ) -> Page[AuditEntryOut]:
        rows = await scripts.list_audit(tenant_id, script_id, page, action=action)
        return build_page(rows, page, lambda a: (a.created_at, a.id), AuditEntryOut.of)


class AuditController(Controller):
    path = "/audit"
    tags = ["Scripts"]
    dependencies = {
        "audit": Provide(provide_service(AuditService)),
        "window": Provide(provide_time_window),
    }

    @list_route(
        "The tenant's audit trail",
        "Every audit entry of every script of the tenant, newest first, in the same pages as "
        "a script's own trail, and the operations on its commands: RETRY and CANCEL entries name the "
        "command by `correlationId` (their `scriptId` is null). Filters combine (AND): `actorId`, "
        "`action`, and a `createdAt` window `from` (inclusive) to `to` (exclusive), both RFC 3339 with "
        "a UTC offset. Times are stored with microseconds and shown truncated to milliseconds, so an "
        "entry's own `createdAt` used as `from` includes it and used as `to` excludes it. `from` after "
        "`to` is a 400.",
    )
    async def list_trail(
        self,
        audit: Audit,
        tenant_id: Tenant,
        page: Paging,
        window: Window,
        actor_id: Annotated[
            str | None,
            QueryParameter(
                name="actorId", description="Only entries by this actor.", min_length=1, max_length=128
            ),
        ] = None,
        action: Annotated[
            AuditAction | None, QueryParameter(description="Only entries of this action.")
        ] = None,
    ) -> Page[AuditEntryOut]:
        rows = await audit.list_trail(tenant_id, page, actor_id=actor_id, action=action, window=window)
        return build_page(rows, page, lambda a: (a.created_at, a.id), AuditEntryOut.of)
