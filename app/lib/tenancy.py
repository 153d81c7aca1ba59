"""The tenant every tenant-scoped request acts for, from the ``x-tenant-id`` header, and the rule
that a principal acts only in the tenants it was granted (403 ``TENANT_FORBIDDEN``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request
from litestar.params import HeaderParameter, QueryParameter

from app.lib.errors import TenantForbidden, TenantMismatch, TenantRequired, ValidationFailed
from app.lib.principals import Principal

__all__ = [
    "TENANT_PATTERN",
    "ensure_granted",
    "ensure_same_tenant",
    "provide_tenant_id",
    "validate_tenant_id",
]

TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_TENANT_RE = re.compile(TENANT_PATTERN)


def validate_tenant_id(value: str | None, *, field: str = "x-tenant-id") -> str:
    if value is None or value == "":
        raise TenantRequired("The x-tenant-id header is required.")
    if not _TENANT_RE.match(value):
        raise ValidationFailed(
            "The tenant id must be 1-64 characters of letters, digits, '_', '.' or '-'.",
            details=[{"field": field, "message": f"must match {TENANT_PATTERN}", "source": "header"}],
        )
    return value


def ensure_granted(principal: Principal | None, tenant_id: str) -> str:
    """A principal acts only in the tenants it was granted; a role never widens them."""
    if principal is None or not principal.may_act_in(tenant_id):
        raise TenantForbidden(f"This token is not granted the tenant {tenant_id!r}.")
    return tenant_id


async def provide_tenant_id(
    request: Request[Any, Any, Any],
    x_tenant_id: Annotated[
        str | None,
        HeaderParameter(
            name="x-tenant-id",
            required=True,
            description="The tenant the request acts for.",
        ),
    ] = None,
    tenant_claim: Annotated[
        str | None,
        QueryParameter(
            name="tenantId",
            description="Optional; when given it must equal x-tenant-id (403 TENANT_MISMATCH otherwise).",
            max_length=64,
        ),
    ] = None,
) -> str:
    tenant_id = ensure_granted(request.scope.get("user"), validate_tenant_id(x_tenant_id))
    ensure_same_tenant(tenant_id, tenant_claim)
    return tenant_id


def ensure_same_tenant(tenant_id: str, claimed: str | None) -> None:
    """A tenantId given in a body or query must name the header's tenant."""
    if claimed is not None and claimed != tenant_id:
        raise TenantMismatch("tenantId does not match the x-tenant-id header.")
