"""Who may call what: SPEC 3.1's role table, in one place, for every route.

``ACCESS`` maps each operation (method and path template, as in ``openapi.yaml``) to the roles
that may call it. The authentication middleware enforces it (``enforce``) as soon as it knows
the caller, before any other work; routes it does not authenticate must be public here.
``check_every_route_has_access`` runs when the app is built, so a route added without a row (or
excluded from authentication without being public) stops the app from starting (and fails the
suite). Roles never widen tenants: the tenant a request names is checked against the principal's
grants separately (``app.lib.tenancy``), on every tenant-scoped route.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.lib.errors import Forbidden
from app.lib.principals import ROLES, Principal

if TYPE_CHECKING:
    from litestar import Litestar
    from litestar.types import Scope

__all__ = ["ACCESS", "Access", "access_of", "check_every_route_has_access", "enforce"]


@dataclass(frozen=True, slots=True)
class Access:
    """The roles an operation needs (any one of them); ``None``: no authentication at all."""

    roles: frozenset[str] | None
    # /metrics is not tenant-scoped: an admin may read it only when granted every tenant.
    admin_of_every_tenant: bool = False

    @property
    def public(self) -> bool:
        return self.roles is None

    def allows(self, principal: Principal) -> bool:
        if self.roles is None or principal.has_any(self.roles):
            return True
        return self.admin_of_every_tenant and principal.is_admin and principal.every_tenant

    def describe(self) -> str:
        needed = sorted(self.roles or ())
        if self.admin_of_every_tenant:
            needed.append("admin of every tenant (@*)")
        return " or ".join(needed)


PUBLIC = Access(None)
READ = Access(ROLES)  # every role may read its tenants
EDIT = Access(frozenset({"admin", "editor"}))
RUN = Access(frozenset({"admin", "runner", "service"}))
COMMANDS = Access(frozenset({"admin", "editor", "service"}))
ADMIN = Access(frozenset({"admin"}))
INTERNAL = Access(frozenset({"admin", "service"}))
OPERATOR = Access(frozenset({"operator"}), admin_of_every_tenant=True)

_HOOK = "/hooks/{tenant_id}/{route}"
_EXTERNAL = "/subjects/{subject}/subscriptions/triggers"
_INTERNAL = "/internal/subjects/{subject}/subscriptions/triggers"

ACCESS: dict[tuple[str, str], Access] = {
    # operations
    ("GET", "/health"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/metrics"): OPERATOR,
    # scripts, versions, publishing, audit
    ("GET", "/scripts"): READ,
    ("POST", "/scripts"): EDIT,
    ("GET", "/scripts/{script_id}"): READ,
    ("PATCH", "/scripts/{script_id}"): EDIT,
    ("GET", "/scripts/{script_id}/versions"): READ,
    ("POST", "/scripts/{script_id}/versions"): EDIT,
    ("GET", "/scripts/{script_id}/versions/{version}"): READ,
    ("POST", "/scripts/{script_id}/versions/{version}/publish"): EDIT,
    ("GET", "/scripts/{script_id}/versions/{from_version}/diff/{to_version}"): READ,
    ("GET", "/scripts/{script_id}/audit"): READ,
    ("GET", "/audit"): READ,
    # runs and what runners report
    ("GET", "/runs"): READ,
    ("POST", "/runs"): RUN,
    ("GET", "/runs/{run_id}"): READ,
    ("POST", "/runs/{run_id}/vars"): RUN,
    ("POST", "/runs/{run_id}/steps"): RUN,
    ("POST", "/runs/{run_id}/finish"): RUN,
    ("PUT", "/scripts/{script_id}/runs/triggered/{event_id}"): RUN,
    ("PUT", "/scripts/{script_id}/runs/scheduled/{schedule_id}"): RUN,
    # commands and live events
    ("GET", "/commands"): READ,
    ("POST", "/commands"): COMMANDS,
    ("GET", "/commands/{correlation_id}"): READ,
    ("POST", "/commands/{correlation_id}/retry"): COMMANDS,
    ("POST", "/commands/{correlation_id}/cancel"): COMMANDS,
    ("GET", "/events/stream"): READ,
    ("POST", "/events/stream-tickets"): READ,
    # triggers
    ("GET", "/event-types"): READ,
    ("POST", "/event-types"): ADMIN,
    ("GET", _EXTERNAL): READ,
    ("POST", _EXTERNAL): ADMIN,
    ("DELETE", _EXTERNAL + "/{subscription_id}"): ADMIN,
    ("GET", _INTERNAL): READ,
    ("POST", _INTERNAL): INTERNAL,
    ("DELETE", _INTERNAL + "/{subscription_id}"): INTERNAL,
    ("POST", "/events"): RUN,
    ("GET", "/events/{event_id}"): READ,
    ("GET", "/events/incoming"): READ,
    ("GET", "/events/incoming/{event_id}"): READ,
    ("GET", "/scripts/{script_id}/schedules"): READ,
    ("POST", "/scripts/{script_id}/schedules"): EDIT,
    ("GET", "/schedules/{schedule_id}"): READ,
    ("PATCH", "/schedules/{schedule_id}"): EDIT,
    ("DELETE", "/schedules/{schedule_id}"): EDIT,
    ("GET", "/scripts/{script_id}/endpoints"): READ,
    ("POST", "/scripts/{script_id}/endpoints"): EDIT,
    ("DELETE", "/scripts/{script_id}/endpoints/{endpoint_id}"): EDIT,
    # custom endpoints are called by third parties; an authRequired endpoint checks the
    # caller itself (a principal granted the endpoint's tenant, any role)
    **{(method, _HOOK): PUBLIC for method in ("GET", "POST", "PUT", "PATCH", "DELETE")},
}
# The API documentation (Scalar, Swagger, openapi.json/yaml) is public.
DOCS_PREFIX = "/schema"
_AUTOMATIC = frozenset({"OPTIONS", "HEAD"})  # CORS preflight, answered by Litestar itself


def access_of(method: str, path_template: str) -> Access | None:
    if path_template == DOCS_PREFIX or path_template.startswith(DOCS_PREFIX + "/"):
        return PUBLIC
    return ACCESS.get((method, path_template))


def _operation(scope: Scope) -> tuple[str, str]:
    return scope["method"], scope.get("path_template", scope["path"])


def allowed(scope: Scope) -> bool:
    """Whether the request's principal may call its route (the guard's decision, without raising)."""
    access = access_of(*_operation(scope))
    principal = scope.get("user")
    return access is not None and (access.public or (principal is not None and access.allows(principal)))


def enforce(scope: Scope, principal: Principal) -> None:
    """403 FORBIDDEN unless one of the principal's roles may call the request's route.

    Called by the authentication middleware, not as a Litestar guard: Litestar copies the route
    handler for every guard call, a few percent of a short request's CPU.
    """
    method, template = _operation(scope)
    if method in _AUTOMATIC:
        return
    access = access_of(method, template)
    if access is None:  # unreachable once check_every_route_has_access passed
        raise Forbidden("This operation has no access rule.")
    if not access.public and not access.allows(principal):
        raise Forbidden(f"This operation needs the role {access.describe()}.")


def check_every_route_has_access(app: Litestar, unauthenticated_opt: str) -> None:
    """Every operation the app serves has a row in ``ACCESS``, and every route handler the
    authentication middleware skips (``opt[unauthenticated_opt]``) is public there: nothing else
    would check its roles (called when the app is built)."""
    missing = sorted(
        f"{method} {route.path_format}"
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method not in _AUTOMATIC and access_of(method, route.path_format) is None
    )
    if missing:
        raise RuntimeError(f"routes without an access rule in app.lib.access.ACCESS: {', '.join(missing)}")
    unguarded = sorted(
        f"{method} {route.path_format}"
        for route in app.routes
        for handler in getattr(route, "route_handlers", ())
        if handler.opt.get(unauthenticated_opt)
        for method in getattr(handler, "http_methods", ())
        if method not in _AUTOMATIC and access_of(method, route.path_format) is not PUBLIC
    )
    if unguarded:
        raise RuntimeError(
            f"routes skipped by authentication but not public in ACCESS: {', '.join(unguarded)}"
        )
