"""Rejected means unchanged (SPEC 10): every request answered 4xx leaves every table as it was.

The cases are generated from the app's own OpenAPI document, so a new write route is covered
without anyone adding it here: every POST, PUT, PATCH and DELETE is called with malformed JSON
(when it takes a body), with ids that do not exist, by a role that may not call it, with a token
not granted the tenant, and without a tenant. On top of those, the 4xx answers handlers produce
themselves (taken slug, missing version, steps that do not fit the graph, a finished run, a
refused execution report, ...). Before and after each call, every row of the tenant in every table
is read; they must be equal.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from app.lib.access import access_of
from app.lib.db import asyncpg_connect_kwargs
from tests.support.api import ALICE_TOKEN, ROLE_TOKENS, Api, new_tenant
from tests.support.isolation import STEP, populate

WRITE_METHODS = ("post", "put", "patch", "delete")
OWN = "<own tenant>"
TENANT = new_tenant()
# Tables whose rows change with time on their own (heartbeats, cursors) or hold no tenant data.
NOT_TENANT_TABLES = {"alembic_version", "worker_heartbeats", "worker_cursors", "server_secrets"}


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str  # already filled in
    body: Any = None
    raw: bytes | None = None
    token: str | None = None  # None: the tenant's admin
    tenant: str | None = OWN  # OWN: the tenant under test; None: no x-tenant-id at all
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.name}]"


def write_operations(app: Litestar) -> list[tuple[str, str, bool]]:
    """(METHOD, path template, takes a body) of every write operation but /hooks (public)."""
    spec = app.openapi_schema.to_schema()
    operations = []
    for path, item in spec["paths"].items():
        for method in WRITE_METHODS:
            if method in item and not path.startswith("/hooks/"):
                operations.append((method.upper(), path, "requestBody" in item[method]))
    return sorted(operations)


def fill(path: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)


def unknown_ids(ids: dict[str, Any]) -> dict[str, Any]:
    """The same names, none of them existing: ids, a subject, a version and a correlation id."""
    unknown: dict[str, Any] = {k: uuid.uuid4() for k in ids if k.endswith("_id")}
    unknown.update(subject="nobody", version=99, from_version=98, to_version=99, correlation_id="no-such")
    return unknown


def generated_cases(app: Litestar, ids: dict[str, Any]) -> list[Case]:
    cases: list[Case] = []
    for method, template, has_body in write_operations(app):
        path = fill(template, ids)
        access = access_of(method, template)
        assert access is not None, template
        assert not access.public, template
        if has_body:
            cases.append(Case("malformed-json", method, path, raw=b'{"name": "x",', headers=_JSON))
        if "{" in template:
            cases.append(Case("unknown-ids", method, fill(template, unknown_ids(ids)), body={}))
        denied = next(
            (r for r in ("viewer", "operator", "runner", "editor") if r not in (access.roles or ())), None
        )
        if denied is not None:
            cases.append(Case(f"role-{denied}", method, path, body={}, token=ROLE_TOKENS[denied]))
        cases.append(Case("tenant-not-granted", method, path, body={}, token=ALICE_TOKEN))
        cases.append(Case("no-tenant", method, path, body={}, tenant=None))
    return cases


def handler_cases(ids: dict[str, Any]) -> list[Case]:
    """4xx answers the handlers themselves produce, on the tenant's real rows."""
    script, run, finished = ids["script_id"], ids["run_id"], ids["finished_run_id"]
    return [
        Case("slug-taken", "POST", "/scripts", {"name": "Again", "slug": "isolated"}),
        Case(
            "slug-taken-with-key",
            "POST",
            "/scripts",
            {"name": "Again", "slug": "isolated"},
            headers={"Idempotency-Key": f"refused-{uuid.uuid4()}"},
        ),
        Case("graph-invalid", "POST", f"/scripts/{script}/versions", {"graphJson": {"nodes": [{"id": 1}]}}),
        Case("stale-if-match", "PATCH", f"/scripts/{script}", {"name": "X"}, headers={"If-Match": '"stale"'}),
        Case("version-not-found", "POST", "/runs", {"scriptId": str(script), "version": 99}),
        Case("node-not-in-version", "POST", f"/runs/{run}/steps", [{**STEP, "nodeId": "nowhere"}]),
        Case("run-finished", "POST", f"/runs/{finished}/vars", [{"key": "k", "strVal": "v"}]),
        Case("finish-differently", "POST", f"/runs/{finished}/finish", {"status": "SUCCEEDED"}),
        Case(
            "report-steps-refused",
            "PUT",
            f"/scripts/{script}/runs/triggered/{ids['bare_event_id']}",
            {"version": 1, "steps": [{**STEP, "nodeId": "nowhere"}]},
        ),
        Case("duplicate-correlation", "POST", "/commands", _command(ids["correlation_id"])),
        # PENDING (or, once a worker ran it, COMPLETED): either way not retryable.
        Case("command-not-retryable", "POST", f"/commands/{ids['correlation_id']}/retry"),
        Case(
            "subscription-exists",
            "POST",
            f"/subjects/{ids['subject']}/subscriptions/triggers",
            {"eventName": ids["event_name"], "scriptId": str(script)},
        ),
        Case("event-type-exists", "POST", "/event-types", {"name": ids["event_name"]}),
        Case(
            "flow-control-invalid",
            "POST",
            "/subjects/other-device/subscriptions/triggers",
            {
                "eventName": ids["event_name"],
                "scriptId": str(script),
                "flowControl": {"debounceSeconds": 60, "maxDelaySeconds": 30},
            },
        ),
        Case(
            "route-taken",
            "POST",
            f"/scripts/{script}/endpoints",
            {"method": "POST", "route": ids["endpoint_route"], "authRequired": False},
        ),
        Case("cron-invalid", "POST", f"/scripts/{script}/schedules", {"cron": "every minute"}),
        Case("tenant-mismatch", "POST", "/scripts", {"name": "M", "slug": "m-1", "tenantId": "someone-else"}),
        Case(
            "idempotency-key-invalid",
            "POST",
            "/scripts",
            {"name": "K", "slug": "k-1"},
            headers={"Idempotency-Key": "\t"},
        ),
    ]


_JSON = {"Content-Type": "application/json"}


def _command(correlation_id: str) -> dict[str, Any]:
    return {"command": "Contacts.UpsertAndLink.v1", "correlationId": correlation_id, "actor": {"userId": "u"}}


@pytest.fixture(scope="module")
async def alice_data(http: httpx.AsyncClient) -> dict[str, Any]:
    api = Api(http, TENANT, ROLE_TOKENS["admin"])
    ids = await populate(api)
    finished = await api.post("/runs", json={"scriptId": ids["script_id"], "version": 1})
    finished_id = finished.json()["id"]
    assert (await api.post(f"/runs/{finished_id}/finish", json={"status": "FAILED"})).status_code == 200
    # An incoming event that started no run: a report on it would create the run.
    assert (await api.post("/event-types", json={"name": "UNHEARD_EVENT"})).status_code == 201
    bare = await api.post("/events", json={"eventName": "UNHEARD_EVENT", "subject": "nobody-listens"})
    assert bare.status_code == 202, bare.text
    return {**ids, "finished_run_id": finished_id, "bare_event_id": bare.json()["eventId"]}


@pytest.fixture(scope="module")
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    yield connection
    await connection.close()


async def every_row(db: asyncpg.Connection, tenant: str) -> dict[str, list[str]]:
    """Every row of the tenant in every table that has tenant rows, as sorted JSON texts."""
    tables = [
        row["table_name"]
        for row in await db.fetch(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'tenant_id' ORDER BY table_name"
        )
        if row["table_name"] not in NOT_TENANT_TABLES
    ]
    assert {"scripts", "runs", "events", "commands", "audit_log", "idempotency_keys"} <= set(tables)
    snapshot: dict[str, list[str]] = {}
    for table in tables:
        # An event's xid is its delivery position, stamped by the sequencer once the event has
        # committed (at any moment, by any reader): bookkeeping, not a change a request made.
        rows = await db.fetch(
            f"SELECT (to_jsonb(t) - 'xid')::text AS row FROM \"{table}\" AS t WHERE tenant_id = $1", tenant
        )
        snapshot[table] = sorted(row["row"] for row in rows)
    return snapshot


def test_the_generated_cases_cover_every_write_operation(app: Litestar) -> None:
    fake_ids = {k: uuid.uuid4() for k in ("script_id", "run_id", "schedule_id", "endpoint_id", "event_id")}
    fake_ids.update(
        subject="s", version=1, from_version=1, to_version=2, correlation_id="c", subscription_id=uuid.uuid4()
    )
    covered = {(c.method, c.path) for c in generated_cases(app, fake_ids)}

    assert len(write_operations(app)) >= 20
    for method, template, _ in write_operations(app):
        assert (method, fill(template, fake_ids)) in covered


async def call(http: httpx.AsyncClient, case: Case) -> httpx.Response:
    headers = {"Authorization": f"Bearer {case.token or ROLE_TOKENS['admin']}", **case.headers}
    if case.tenant is not None:
        headers["x-tenant-id"] = TENANT if case.tenant == OWN else case.tenant
    if case.raw is not None:
        return await http.request(case.method, case.path, content=case.raw, headers=headers)
    return await http.request(case.method, case.path, json=case.body, headers=headers)


async def test_every_rejected_write_leaves_every_table_unchanged(
    app: Litestar, http: httpx.AsyncClient, alice_data: dict[str, Any], db: asyncpg.Connection
) -> None:
    cases = generated_cases(app, alice_data) + handler_cases(alice_data)
    changed: list[str] = []
    not_rejected: list[str] = []
    for case in cases:
        before = await every_row(db, TENANT)
        response = await call(http, case)
        if not 400 <= response.status_code < 500:
            not_rejected.append(f"{case}: {response.status_code} {response.text[:200]}")
            continue
        after = await every_row(db, TENANT)
        if case.name == "slug-taken-with-key":
            # The one row a refused request may leave: its stored answer, for the retry.
            added = set(after.pop("idempotency_keys")) - set(before.pop("idempotency_keys"))
            if len(added) != 1:
                changed.append(f"{case}: {response.status_code} stored {len(added)} answers")
        if after != before:
            diff = {t: (len(before[t]), len(after[t])) for t in before if before[t] != after[t]}
            changed.append(f"{case}: {response.status_code} changed {diff}")

    assert not_rejected == [], "every case is built to be refused"
    assert changed == []
    assert len(cases) > 100
