"""Tenant isolation, route by route: tenant B calls every route with tenant A's ids and cursors
and gets 404 (or an empty list), never A's data, and A's data is unchanged afterwards.

The table is keyed by the OpenAPI operation (method and path template), and a test checks that
it names every operation the app serves: a new route fails that test until it has a row here
or, when it takes no tenant-owned id, a place in ``NO_TENANT_IDS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from litestar import Litestar

from tests.conftest import ADMIN_TOKEN, Api, assert_error, new_tenant
from tests.support.runs import GRAPH
from tests.support.server import ServerProcess
from tests.support.sse import EventStream

SECRET = "zz-secret-of-tenant-a"


@dataclass(frozen=True)
class Row:
    """One call of an operation with tenant A's ids, and what tenant B must get."""

    method: str
    route: str  # the OpenAPI path template; placeholders are filled with A's ids
    body: Any = None
    params: dict[str, str] = field(default_factory=dict)
    status: int = 404
    empty: bool = True  # a 200 list of B's must be empty (built-in event types are not)

    def url(self, ids: dict[str, Any]) -> str:
        return self.route.format(**ids)

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.method} {self.route}{'?' + query if query else ''}"


STEP = {"nodeId": "greet", "stepType": "say", "executedAt": "2026-01-01T00:00:00.000Z"}
ROWS: list[Row] = [
    # scripts, versions, publish, audit, diff
    Row("POST", "/scripts", {"name": "Mine", "slug": "isolated"}, status=201),  # A's slug is free in B
    Row("GET", "/scripts/{script_id}"),
    Row("PATCH", "/scripts/{script_id}", {"name": "Hijacked"}),
    Row("PATCH", "/scripts/{script_id}", {"status": "ARCHIVED"}),
    Row("POST", "/scripts/{script_id}/versions", {"graphJson": GRAPH}),
    Row("GET", "/scripts/{script_id}/versions"),
    Row("GET", "/scripts/{script_id}/versions/{version}"),
    Row("POST", "/scripts/{script_id}/versions/{version}/publish"),
    Row("GET", "/scripts/{script_id}/versions/{from_version}/diff/{to_version}"),
    Row("GET", "/scripts/{script_id}/audit"),
    # runs, vars, steps, finish
    Row("POST", "/runs", {"scriptId": "{script_id}", "version": 1}),
    Row("GET", "/runs/{run_id}"),
    Row("POST", "/runs/{run_id}/vars", [{"key": "stolen", "strVal": "x"}]),
    Row("POST", "/runs/{run_id}/steps", [STEP]),
    Row("POST", "/runs/{run_id}/finish", {"status": "CANCELLED"}),
    # commands
    Row("GET", "/commands/{correlation_id}"),
    Row(
        "POST",
        "/commands",
        {
            "command": "Contacts.UpsertAndLink.v1",
            "correlationId": "{correlation_id}",
            "actor": {"userId": "u"},
        },
        status=202,
    ),
    # lists filtered by A's ids, or paged with A's cursors: B's own (empty) lists
    Row("GET", "/scripts", params={"q": SECRET}, status=200),
    Row("GET", "/scripts", params={"label": SECRET}, status=200),
    Row("GET", "/scripts", params={"cursor": "{scripts_cursor}"}, status=200),
    Row("GET", "/runs", params={"scriptId": "{script_id}"}, status=200),
    Row("GET", "/runs", params={"cursor": "{runs_cursor}"}, status=200),
    Row("GET", "/audit", params={"actorId": "alice"}, status=200),
    Row("GET", "/audit", params={"cursor": "{audit_cursor}"}, status=200),
    # triggers: event types, subscriptions (external and internal), incoming events
    Row("POST", "/event-types", {"name": "{event_name}"}, status=201),  # A's name is free in B
    Row("GET", "/event-types", status=200, empty=False),
    Row("GET", "/subjects/{subject}/subscriptions/triggers", status=200),
    Row(
        "POST",
        "/subjects/{subject}/subscriptions/triggers",
        {"eventName": "{event_name}", "scriptId": "{script_id}"},
    ),
    Row("DELETE", "/subjects/{subject}/subscriptions/triggers/{subscription_id}"),
    Row("GET", "/internal/subjects/{subject}/subscriptions/triggers", status=200),
    Row(
        "POST",
        "/internal/subjects/{subject}/subscriptions/triggers",
        {"eventName": "{event_name}", "scriptId": "{script_id}"},
    ),
    Row("DELETE", "/internal/subjects/{subject}/subscriptions/triggers/{subscription_id}"),
    Row(
        "POST",
        "/events",
        {"eventName": "{event_name}", "subject": "{subject}", "sourceEventId": "{source_id}"},
    ),
    Row("GET", "/events/{event_id}"),
    # execution reports
    Row("PUT", "/scripts/{script_id}/runs/triggered/{event_id}", {"version": 1, "steps": [STEP]}),
    Row(
        "PUT",
        "/scripts/{script_id}/runs/scheduled/{schedule_id}",
        {"version": 1, "plannedAt": "2026-01-01T00:00:00.000Z", "steps": [STEP]},
    ),
    # schedules
    Row("POST", "/scripts/{script_id}/schedules", {"cron": "0 * * * *", "timezone": "UTC", "active": False}),
    Row("GET", "/scripts/{script_id}/schedules"),
    Row("GET", "/schedules/{schedule_id}"),
    Row("PATCH", "/schedules/{schedule_id}", {"active": False}),
    Row("DELETE", "/schedules/{schedule_id}"),
    # custom endpoints, and /hooks addressed in the caller's own tenant with A's route
    Row(
        "POST", "/scripts/{script_id}/endpoints", {"method": "POST", "route": "stolen", "authRequired": False}
    ),
    Row("GET", "/scripts/{script_id}/endpoints"),
    Row("DELETE", "/scripts/{script_id}/endpoints/{endpoint_id}"),
    *(
        Row(method, "/hooks/{tenant_id}/{route}", {"x": 1})
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE")
    ),
]
# Operations without a tenant-owned id in their path: probes, metrics, and B's own lists (whose
# filters by A's ids are rows above). The event stream has its own tests below.
NO_TENANT_IDS = {
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/events/stream"),
}


def fill(value: Any, ids: dict[str, Any]) -> Any:
    """The row's body or params with A's ids in place of the placeholders."""
    if isinstance(value, str):
        return value.format(**ids) if "{" in value else value
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value


@pytest.fixture(scope="module")
async def tenant_a(http: httpx.AsyncClient) -> tuple[Api, dict[str, Any]]:
    """Tenant A with one of everything: scripts, versions, a published one, runs with variables
    and steps, a finished run, a command, audit entries, and a cursor into each list."""
    api = Api(http, new_tenant())
    script = await api.create_script("isolated", name=SECRET, labels=[SECRET], description=SECRET)
    other = await api.create_script("isolated-too")
    await api.create_version(script["id"], GRAPH, changelog=SECRET)
    await api.create_version(script["id"], GRAPH, variablesDef={"secret": SECRET})
    await api.publish(script["id"], 1)
    await api.create_version(other["id"], GRAPH)
    runs = []
    for _ in range(2):
        response = await api.post("/runs", json={"scriptId": script["id"], "version": 1})
        assert response.status_code == 201, response.text
        runs.append(response.json())
    run = runs[0]
    assert (
        await api.post(f"/runs/{run['id']}/vars", json=[{"key": "k", "strVal": SECRET}])
    ).status_code == 200
    assert (await api.post(f"/runs/{run['id']}/steps", json=[STEP])).status_code == 201
    assert (await api.post(f"/runs/{runs[1]['id']}/finish", json={"status": "FAILED"})).status_code == 200
    command = await api.post(
        "/commands",
        json={"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u"}, "payload": {"s": SECRET}},
    )
    assert command.status_code == 202, command.text

    async def cursor(path: str) -> str:
        page = (await api.get(path, params={"limit": 1})).json()
        assert page["nextCursor"], page
        return page["nextCursor"]

    event_name = "A_SECRET_EVENT"
    assert (
        await api.post("/event-types", json={"name": event_name, "description": SECRET})
    ).status_code == 201
    subject = "device-a-1"
    subscription = await api.post(
        f"/subjects/{subject}/subscriptions/triggers",
        json={"eventName": event_name, "scriptId": script["id"]},
    )
    assert subscription.status_code == 201, subscription.text
    incoming = await api.post(
        "/events",
        json={
            "eventName": event_name,
            "subject": subject,
            "payload": {"s": SECRET},
            "sourceEventId": "src-a-1",
        },
    )
    assert incoming.status_code == 202, incoming.text
    schedule = await api.post(
        f"/scripts/{script['id']}/schedules", json={"cron": "0 3 * * *", "timezone": "UTC", "active": False}
    )
    assert schedule.status_code == 201, schedule.text
    endpoint = await api.post(
        f"/scripts/{script['id']}/endpoints",
        json={"method": "POST", "route": "a/secret-route", "authRequired": False},
    )
    assert endpoint.status_code == 201, endpoint.text

    ids = {
        "event_name": event_name,
        "subject": subject,
        "subscription_id": subscription.json()["id"],
        "event_id": incoming.json()["eventId"],
        "source_id": "src-a-1",
        "schedule_id": schedule.json()["id"],
        "endpoint_id": endpoint.json()["id"],
        "endpoint_route": "a/secret-route",
        "script_id": script["id"],
        "version": 1,
        "from_version": 1,
        "to_version": 2,
        "run_id": run["id"],
        "correlation_id": command.json()["correlationId"],
        "scripts_cursor": await cursor("/scripts"),
        "runs_cursor": await cursor("/runs"),
        "audit_cursor": await cursor("/audit"),
    }
    return api, ids


async def snapshot(api: Api, ids: dict[str, Any]) -> list[Any]:
    """Everything of A's that a foreign call could have changed."""
    paths = [
        f"/scripts/{ids['script_id']}/schedules",
        f"/scripts/{ids['script_id']}/endpoints",
        f"/subjects/{ids['subject']}/subscriptions/triggers",
        f"/events/{ids['event_id']}",
        f"/schedules/{ids['schedule_id']}",
        f"/scripts/{ids['script_id']}",
        f"/scripts/{ids['script_id']}/versions",
        f"/scripts/{ids['script_id']}/audit",
        f"/runs/{ids['run_id']}",
        "/runs",
        "/scripts",
        "/audit",
    ]
    responses = [await api.get(path, params={"limit": 200}) for path in paths]
    assert all(r.status_code == 200 for r in responses)
    command = (await api.get(f"/commands/{ids['correlation_id']}")).json()
    return [r.json() for r in responses] + [
        {k: command[k] for k in ("correlationId", "command", "createdAt")}
    ]


def leaked(text: str, secrets: set[str]) -> list[str]:
    return sorted(value for value in secrets if value in text)


def a_values(before: list[Any]) -> set[str]:
    """Every id and secret of A's: uuids and the marker text, as they appear in A's own data."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in (
                    "id",
                    "scriptId",
                    "runId",
                    "activeVersionId",
                    "correlationId",
                    "eventId",
                ) and isinstance(item, str):
                    found.add(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and SECRET in value:
            found.add(SECRET)

    walk(before)
    return found


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
