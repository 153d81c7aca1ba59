"""Wire shapes of custom endpoints and the runs their hooks start."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from uuid import UUID

from msgspec import Meta

from app.lib.schema import CamelStruct, TenantClaim, TenantResourceOut, Timestamp

ROUTE_PATTERN = r"^[a-z0-9][a-z0-9/_-]*$"
Route = Annotated[
    str,
    Meta(
        pattern=ROUTE_PATTERN,
        max_length=200,
        description="Without a leading slash; lowercase letters, digits, '/', '_' and '-'.",
    ),
]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

SigningSecret = Annotated[
    str,
    Meta(
        min_length=32,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description="Write-only (never returned): requests must then carry a Scriptworks-Signature made "
        "with it. 32-256 printable characters.",
    ),
]


class EndpointCreate(CamelStruct):
    method: HttpMethod
    route: Route
    auth_required: bool = True
    signing_secret: SigningSecret | None = None
    tenant_id: TenantClaim | None = None


class EndpointOut(TenantResourceOut):
    script_id: UUID
    method: HttpMethod
    route: str
    auth_required: bool
    signature_required: bool
    url_path: str
    created_by_id: str
    created_at: Timestamp

    @classmethod
    def of(cls, row: Any, /, **values: Any) -> EndpointOut:
        return super().of(
            row,
            signature_required=row.signing_secret is not None,
            url_path=f"/hooks/{row.tenant_id}/{row.route}",
            **values,
        )


class HookAccepted(CamelStruct):
    run_id: uuid.UUID
