"""Tenant isolation, route by route: tenant B calls every route with tenant A's ids and cursors
and gets 404 (or an empty list), never A's data, and A's data is unchanged afterwards.

The table (``tests/support/isolation.py``) is keyed by the OpenAPI operation (method and path
template), and a test checks that it names every operation the app serves: a new route fails that
test until it has a row there or, when it takes no tenant-owned id, a place in ``NO_TENANT_IDS``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.support.api import ADMIN_TOKEN, Api, assert_error, new_tenant
from tests.support.isolation import (
    NO_TENANT_IDS,
    ROWS,
    Row,
    a_values,
    fill,
    leaked,
    populate,
    snapshot,
)
from tests.support.server import ServerProcess
from tests.support.sse import EventStream


@pytest.fixture(scope="module")
async def tenant_a(http: httpx.AsyncClient) -> tuple[Api, dict[str, Any]]:
    api = Api(http, new_tenant())
    return api, await populate(api)


@pytest.mark.parametrize("row", ROWS, ids=str)
async def test_foreign_ids_are_not_found_and_change_nothing(
    tenant_a: tuple[Api, dict[str, Any]], other_api: Api, row: Row
) -> None:
    api_a, ids = tenant_a
    before = await snapshot(api_a, ids)
    secrets = a_values(before)
    assert len(secrets) > 10

    # /hooks names its tenant in the path: B calls its own namespace with A's route.
    ids = {**ids, "tenant_id": other_api.tenant, "route": ids["endpoint_route"]}

    response = await other_api.request(
        row.method, row.url(ids), json=fill(row.body, ids), params=fill(row.params, ids)
    )

    assert response.status_code == row.status, response.text
    if row.status == 404:
        assert_error(response, 404, "NOT_FOUND")
    if row.status == 200 and row.empty:
        assert response.json()["items"] == []
    # A 202 for a command names its correlation id, which B chose: B's own command, not A's.
    assert not leaked(response.text, secrets - {ids["correlation_id"]} if row.status == 202 else secrets)
    assert await snapshot(api_a, ids) == before


async def test_the_same_correlation_id_in_another_tenant_is_another_command(
    tenant_a: tuple[Api, dict[str, Any]], other_api: Api
) -> None:
    api_a, _ = tenant_a
    body = {"command": "Billing.Charge.v1", "correlationId": "shared-corr-1", "actor": {"userId": "u"}}
    assert (await api_a.post("/commands", json=body)).status_code in (202, 409)

    mine = await other_api.post("/commands", json=body)
    status = (await other_api.get("/commands/shared-corr-1")).json()

    assert mine.status_code == 202
    assert status["tenantId"] == other_api.tenant


async def test_an_idempotency_key_of_another_tenant_replays_nothing(api: Api, other_api: Api) -> None:
    body = {"name": "Same", "slug": "same"}
    first = await api.post("/scripts", json=body, headers={"Idempotency-Key": "key-1"})

    second = await other_api.post("/scripts", json=body, headers={"Idempotency-Key": "key-1"})

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second.headers
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["tenantId"] == other_api.tenant


def test_every_operation_of_the_app_has_an_isolation_row(app: Litestar) -> None:
    served = {
        (method.upper(), path)
        for path, item in app.openapi_schema.to_schema()["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    covered = {(row.method, row.route) for row in ROWS} | NO_TENANT_IDS

    assert served - covered == set(), "add an isolation row for each new operation"
    assert covered - served == set(), "rows for operations the app no longer serves"


# ---- the event stream, on a real server ---------------------------------------------------------


def stream_headers(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": tenant}


@pytest.mark.parametrize(
    "params",
    [
        {"correlationId": "{correlation_id}"},
        {"correlationId": "{correlation_id}", "since": "0"},
        {"since": "0"},
        {"event": "Script.Created,Run.Started,Contacts.Upserted.v1", "since": "0"},
    ],
    ids=["correlation", "correlation-since-0", "since-0", "events-since-0"],
)
async def test_event_stream_of_another_tenant_delivers_none_of_its_events(
    tenant_a: tuple[Api, dict[str, Any]], live_server: ServerProcess, params: dict[str, str]
) -> None:
    api_a, ids = tenant_a
    secrets = a_values(await snapshot(api_a, ids))
    stranger = new_tenant()

    async with EventStream(live_server.url, params=fill(params, ids), headers=stream_headers(stranger)) as s:
        # Replay happens before live streaming, and pings come every 0.25 s: after two pings the
        # replay of everything this tenant may see is over.
        seen = []
        pings = 0
        while pings < 2:
            frame = await s.next(timeout=10, pings=True)
            if frame.event == "ping":
                pings += 1
            else:
                seen.append(frame)

    assert seen == []
    assert not any(value in frame.data for frame in seen for value in secrets)


async def test_event_stream_refuses_a_tenant_id_query_naming_another_tenant(
    tenant_a: tuple[Api, dict[str, Any]], live_server: ServerProcess
) -> None:
    api_a, ids = tenant_a
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        response = await client.get(
            "/events/stream",
            params={"tenantId": api_a.tenant, "correlationId": ids["correlation_id"], "since": "0"},
            headers=stream_headers(new_tenant()),
        )

    assert_error(response, 403, "TENANT_MISMATCH")
    assert ids["correlation_id"] not in response.text


async def test_tenant_a_does_see_its_own_events_on_the_same_stream(
    tenant_a: tuple[Api, dict[str, Any]], live_server: ServerProcess
) -> None:
    """The control for the tests above: the same request from A does deliver."""
    api_a, ids = tenant_a
    params = {"correlationId": ids["correlation_id"], "since": "0"}
    async with EventStream(live_server.url, params=params, headers=stream_headers(api_a.tenant)) as stream:
        frame = await stream.next(timeout=20)

    assert json.loads(frame.data)["correlationId"] == ids["correlation_id"]
