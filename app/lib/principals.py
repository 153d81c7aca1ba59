"""Who is calling: an actor id, the roles it holds and the tenants it may act in (SPEC 3.1).

A principal comes from a static token (``AUTH_TOKENS``), a verified JWT, a stream ticket or, in
development mode, any token at all. Roles never widen the tenants: every check of a tenant-scoped
request asks ``may_act_in`` first.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ALL_TENANTS", "DEV_PRINCIPAL", "ROLES", "Principal"]

ROLES = frozenset({"admin", "editor", "runner", "service", "viewer", "operator"})
ALL_TENANTS = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    """The id written to createdById/updatedById/actorId/submittedById, the roles held, and the
    tenants granted (``None``: every tenant, ``@*``)."""

    id: str
    roles: frozenset[str]
    tenants: frozenset[str] | None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def every_tenant(self) -> bool:
        return self.tenants is None

    def may_act_in(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants

    def has_any(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)


# Development mode (no AUTH_TOKENS, no JWT): any non-empty token is this admin of every tenant.
DEV_PRINCIPAL = Principal(id="dev", roles=frozenset({"admin"}), tenants=None)
