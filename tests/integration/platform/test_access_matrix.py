"""Tenancy is a security boundary, route by route (SPEC 3.1).

Two matrices, both generated from the app's own tables so that a new route cannot be forgotten:
- every tenant-scoped operation, called with a token granted only another tenant (bob's token,
  admin of bob-co, naming alice-co): 403 TENANT_FORBIDDEN, nothing of alice's read or changed;
- every operation x every role: allowed or 403 FORBIDDEN exactly as ``app.lib.access.ACCESS``
  says, and a refused call changes nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar, get

from app.config import Settings
from app.lib.access import ACCESS, access_of, check_every_route_has_access
from app.lib.auth import PUBLIC_OPT
from app.lib.principals import ROLES
from tests.support.api import (
    ADMIN_TOKEN,
    ALICE_TENANT,
    ALICE_TOKEN,
    BOB_TENANT,
    BOB_TOKEN,
    ROLE_TOKENS,
    Api,
    assert_error,
    new_tenant,
)
from tests.support.isolation import ROWS, Row, a_values, fill, leaked, populate, snapshot

# Operations a foreign token reaches without naming a tenant it was not granted: the probes, the
# operator's metrics, and custom endpoints (public unless authRequired, which
# test_signed_endpoints.py covers).
NOT_TENANT_SCOPED = {("GET", "/health"), ("GET", "/health/ready"), ("GET", "/metrics")}
HOOKS = "/hooks/{tenant_id}/{route}"
TENANT_ROWS = [row for row in ROWS if row.route != HOOKS]


@pytest.fixture(scope="module")
async def alice(http: httpx.AsyncClient) -> tuple[Api, dict[str, Any]]:
    """alice-co, with one of everything, made by alice's own token (granted alice-co only)."""
    api = Api(http, ALICE_TENANT, ALICE_TOKEN)
    return api, await populate(api)


def test_the_access_table_names_every_operation_the_app_serves(app: Litestar) -> None:
    served = {
        (method, route.path_format)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method not in ("OPTIONS", "HEAD") and not route.path_format.startswith("/schema")
    }

    assert served - set(ACCESS) == set(), "add a row to app.lib.access.ACCESS for each new operation"
    assert set(ACCESS) - served == set(), "ACCESS rows for operations the app no longer serves"


def test_the_tenant_matrix_covers_every_tenant_scoped_operation() -> None:
    tenant_scoped = {key for key, access in ACCESS.items() if not access.public} - NOT_TENANT_SCOPED
    covered = {(row.method, row.route) for row in TENANT_ROWS} | {("GET", "/events/stream")}

    assert tenant_scoped - covered == set()


@pytest.mark.parametrize("row", TENANT_ROWS, ids=str)
async def test_a_token_not_granted_the_tenant_is_forbidden_and_changes_nothing(
    alice: tuple[Api, dict[str, Any]], row: Row
) -> None:
    api_alice, ids = alice
    before = await snapshot(api_alice, ids)
    secrets = a_values(before)
    bob = api_alice.as_(tenant=ALICE_TENANT, token=BOB_TOKEN)

    response = await bob.request(
        row.method, row.url(ids), json=fill(row.body, ids), params=fill(row.params, ids)
    )

    assert_error(response, 403, "TENANT_FORBIDDEN")
    assert not leaked(response.text, secrets)
    assert await snapshot(api_alice, ids) == before


async def test_the_same_token_works_in_its_own_tenant(http: httpx.AsyncClient) -> None:
    """The control for the matrix above: bob's token is fine in bob-co."""
    bob = Api(http, BOB_TENANT, BOB_TOKEN)

    created = await bob.post("/scripts", json={"name": "Bob's", "slug": f"bobs-{uuid.uuid4().hex[:6]}"})

    assert created.status_code == 201, created.text
    assert created.json()["createdById"] == "bob"


@pytest.mark.parametrize("where", ["header", "query"])
async def test_the_event_stream_refuses_a_tenant_the_token_is_not_granted(
    alice: tuple[Api, dict[str, Any]], http: httpx.AsyncClient, where: str
) -> None:
    _, ids = alice
    params = {"correlationId": ids["correlation_id"], "since": "0"}
    headers = {"Authorization": f"Bearer {BOB_TOKEN}"}
    if where == "header":
        headers["x-tenant-id"] = ALICE_TENANT
    else:
        params["tenantId"] = ALICE_TENANT

    response = await http.get("/events/stream", params=params, headers=headers)

    assert_error(response, 403, "TENANT_FORBIDDEN")
    assert ids["correlation_id"] not in response.text


async def test_a_token_in_the_query_is_not_accepted_outside_the_stream(
    alice: tuple[Api, dict[str, Any]], http: httpx.AsyncClient
) -> None:
    response = await http.get(
        "/scripts", params={"access_token": ALICE_TOKEN}, headers={"x-tenant-id": ALICE_TENANT}
    )

    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# ---- every operation x every role ---------------------------------------------------------------


def _placeholder_values(tenant: str) -> dict[str, Any]:
    """Ids that exist nowhere: an allowed call answers 404 (or 400/422), never 403."""
    return {
        "script_id": uuid.uuid4(),
        "run_id": uuid.uuid4(),
        "schedule_id": uuid.uuid4(),
        "endpoint_id": uuid.uuid4(),
        "event_id": uuid.uuid4(),
        "subscription_id": uuid.uuid4(),
        "correlation_id": "no-such-command",
        "subject": "device-1",
        "version": 1,
        "from_version": 1,
        "to_version": 2,
        "tenant_id": tenant,
        "route": "nothing",
    }


ROLE_CASES = [
    (method, path, role)
    for (method, path), access in sorted(ACCESS.items())
    if not access.public
    for role in sorted(ROLES)
]


@pytest.mark.parametrize(("method", "path", "role"), ROLE_CASES, ids=lambda v: str(v))
async def test_each_role_may_call_exactly_what_the_access_table_allows(
    http: httpx.AsyncClient, settings: Settings, method: str, path: str, role: str
) -> None:
    tenant = new_tenant()
    caller = Api(http, tenant, ROLE_TOKENS[role])
    access = access_of(method, path)
    assert access is not None
    params = {}
    if path == "/events/stream":
        params = {"since": "not-an-event-id"}  # allowed: a 400 before any frame, not an endless stream

    response = await caller.request(
        method, path.format(**_placeholder_values(tenant)), json={}, params=params
    )

    if access.allows(settings.auth_tokens[ROLE_TOKENS[role]]):
        assert response.status_code not in (401, 403), response.text
    else:
        assert_error(response, 403, "FORBIDDEN")
        admin = Api(http, tenant, ADMIN_TOKEN)
        for listing in ("/scripts", "/runs", "/audit"):
            assert (await admin.get(listing)).json()["items"] == [], "a refused call changed nothing"


async def test_metrics_are_for_operators_and_admins_of_every_tenant(http: httpx.AsyncClient) -> None:
    operator = await http.get("/metrics", headers={"Authorization": f"Bearer {ROLE_TOKENS['operator']}"})
    admin_of_all = await http.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    admin_of_one = await http.get("/metrics", headers={"Authorization": f"Bearer {ALICE_TOKEN}"})

    assert operator.status_code == admin_of_all.status_code == 200
    assert_error(admin_of_one, 403, "FORBIDDEN")


async def test_a_role_never_widens_the_tenants(http: httpx.AsyncClient) -> None:
    """bob is admin and service of bob-co: neither role reaches alice-co, even for internal routes."""
    bob = Api(http, ALICE_TENANT, BOB_TOKEN)

    internal = await bob.post(
        "/internal/subjects/device-1/subscriptions/triggers",
        json={"eventName": "Script.Created", "scriptId": str(uuid.uuid4())},
    )

    assert_error(internal, 403, "TENANT_FORBIDDEN")


def test_a_route_skipped_by_authentication_must_be_public_or_the_app_refuses_to_start() -> None:
    @get("/health", opt={PUBLIC_OPT: True})  # public in ACCESS: fine
    async def health() -> None: ...

    @get("/metrics", opt={PUBLIC_OPT: True})  # operator-only in ACCESS: nothing would check it
    async def metrics() -> None: ...

    check_every_route_has_access(Litestar([health]), PUBLIC_OPT)
    with pytest.raises(
        RuntimeError, match="skipped by authentication but not public in ACCESS: GET /metrics"
    ):
        check_every_route_has_access(Litestar([health, metrics]), PUBLIC_OPT)
