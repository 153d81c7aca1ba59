"""The operation table of the tenant-boundary tests: one call of every operation with tenant
A's ids, what a stranger must get, and tenant A's data to compare before and after.

``tests/integration/platform/test_isolation_matrix.py`` calls each row from another tenant (404, never A's
data); ``tests/integration/platform/test_access_matrix.py`` calls each row with a token not granted A's
tenant (403 TENANT_FORBIDDEN). Both check that the rows name every operation the app serves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.api import Api
from tests.support.runs import GRAPH

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
    # commands, and the operator's retry and cancel (A's command must stay as it is)
    Row("GET", "/commands/{correlation_id}"),
    Row("POST", "/commands/{correlation_id}/retry"),
    Row("POST", "/commands/{correlation_id}/cancel"),
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
    Row("GET", "/commands", params={"command": "Contacts.UpsertAndLink.v1"}, status=200),
    Row("GET", "/commands", params={"cursor": "{commands_cursor}"}, status=200),
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
    Row("GET", "/events/incoming/{event_id}"),
    Row("GET", "/events/incoming", params={"subject": "{subject}"}, status=200),
    Row("GET", "/events/incoming", params={"cursor": "{incoming_cursor}"}, status=200),
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
    # a stream ticket of the caller's own tenant: nothing of A's in it
    Row("POST", "/events/stream-tickets", status=201),
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


async def populate(api: Api) -> dict[str, Any]:
    """One of everything in the api's tenant: scripts, versions, a published one, runs with
    variables and steps, a finished run, two commands, audit entries, and a cursor into each list.
    Returns the ids the rows' placeholders name."""
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
    commands = [
        await api.post(
            "/commands",
            json={"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u"}, "payload": {"s": SECRET}},
        )
        for _ in range(2)
    ]
    assert all(c.status_code == 202 for c in commands), [c.text for c in commands]
    command = commands[0]

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
    assert (await api.post("/events", json={"eventName": event_name, "subject": subject})).status_code == 202
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
        "commands_cursor": await cursor("/commands"),
        "audit_cursor": await cursor("/audit"),
        "incoming_cursor": await cursor("/events/incoming"),
    }
    return ids


async def snapshot(api: Api, ids: dict[str, Any]) -> list[Any]:
    """Everything of A's that a foreign call could have changed."""
    paths = [
        f"/scripts/{ids['script_id']}/schedules",
        f"/scripts/{ids['script_id']}/endpoints",
        f"/subjects/{ids['subject']}/subscriptions/triggers",
        f"/events/{ids['event_id']}",
        f"/events/incoming/{ids['event_id']}",
        "/events/incoming",
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
    # A worker may run the command meanwhile; only a cancel could make it CANCELLED.
    return [r.json() for r in responses] + [
        {k: command[k] for k in ("correlationId", "command", "createdAt")},
        {"cancelled": command["status"] == "CANCELLED"},
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
