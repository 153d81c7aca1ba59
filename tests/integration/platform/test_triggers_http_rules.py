"""The cross-cutting HTTP rules on every trigger route: bearer token, tenant, tenantId claims."""

from __future__ import annotations

import uuid

import pytest

from tests.support.api import ADMIN_TOKEN, Api, assert_error, new_tenant

ID = str(uuid.uuid4())
ROUTES = [
    ("GET", "/event-types", None),
    ("POST", "/event-types", {"name": "X_Y"}),
    ("GET", "/subjects/s/subscriptions/triggers", None),
    ("POST", "/subjects/s/subscriptions/triggers", {"eventName": "Run.Started", "scriptId": ID}),
    ("DELETE", f"/subjects/s/subscriptions/triggers/{ID}", None),
    ("GET", "/internal/subjects/s/subscriptions/triggers", None),
    ("POST", "/events", {"eventName": "Run.Started", "subject": "s"}),
    ("GET", f"/events/{ID}", None),
    ("PUT", f"/scripts/{ID}/runs/triggered/{ID}", {"version": 1, "steps": []}),
    (
        "PUT",
        f"/scripts/{ID}/runs/scheduled/{ID}",
        {"version": 1, "steps": [], "plannedAt": "2026-01-01T00:00:00Z"},
    ),
    ("POST", f"/scripts/{ID}/schedules", {"cron": "* * * * *"}),
    ("GET", f"/scripts/{ID}/schedules", None),
    ("GET", f"/schedules/{ID}", None),
    ("PATCH", f"/schedules/{ID}", {"active": False}),
    ("DELETE", f"/schedules/{ID}", None),
    ("POST", f"/scripts/{ID}/endpoints", {"method": "GET", "route": "x"}),
    ("GET", f"/scripts/{ID}/endpoints", None),
    ("DELETE", f"/scripts/{ID}/endpoints/{ID}", None),
]
IDS = [f"{method} {path.replace(ID, '{id}')}" for method, path, _ in ROUTES]
WITH_BODY = [(m, p, b) for m, p, b in ROUTES if b is not None and m in ("POST", "PUT", "PATCH")]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=IDS)
async def test_every_trigger_route_needs_a_bearer_token(
    api: Api, method: str, path: str, body: object
) -> None:
    response = await api.http.request(method, path, json=body, headers={"x-tenant-id": api.tenant})

    assert_error(response, 401, "UNAUTHORIZED")


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=IDS)
async def test_every_trigger_route_needs_a_tenant(api: Api, method: str, path: str, body: object) -> None:
    response = await api.http.request(
        method, path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert_error(response, 400, "TENANT_REQUIRED")


@pytest.mark.parametrize(
    ("method", "path", "body"), WITH_BODY, ids=[f"{m} {p.replace(ID, '{id}')}" for m, p, _ in WITH_BODY]
)
async def test_a_body_tenant_id_must_match_the_header(api: Api, method: str, path: str, body: dict) -> None:
    response = await api.request(method, path, json={**body, "tenantId": new_tenant()})

    assert_error(response, 403, "TENANT_MISMATCH")
