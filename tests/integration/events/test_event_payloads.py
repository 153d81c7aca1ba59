"""The events this product writes carry exactly the payloads openapi.yaml documents for them
(``app.domain.events.schemas``), whether Python or SQL writes them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from app.domain.events.schemas import LIFECYCLE_PAYLOADS, CommandFailurePayload
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from tests.conftest import make_settings
from tests.support.api import Api, new_tenant

GRAPH = {"nodes": [{"id": "greet", "type": "say", "text": "Hello"}], "edges": []}


@pytest.fixture
async def quiet_http(fresh_database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A database of the test's own, which no worker drains: a command stays PENDING to be cancelled."""
    app = create_app(make_settings(fresh_database_url))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


async def test_every_lifecycle_and_failure_event_has_its_documented_payload(
    quiet_http: httpx.AsyncClient, fresh_database_url: str
) -> None:
    api = Api(quiet_http, new_tenant())
    script = await api.create_script()
    await api.create_version(script["id"], GRAPH)
    await api.create_version(script["id"], GRAPH)
    await api.publish(script["id"], 2)
    await api.publish(script["id"], 1)  # a rollback
    run = (await api.post("/runs", json={"scriptId": script["id"], "version": 1})).json()
    assert (await api.post(f"/runs/{run['id']}/finish", json={"status": "SUCCEEDED"})).status_code == 200
    assert (await api.patch(f"/scripts/{script['id']}", json={"status": "ARCHIVED"})).status_code == 200
    command = (
        await api.post("/commands", json={"command": "Dev.Sleep.v1", "actor": {"userId": "u-1"}})
    ).json()
    assert (await api.post(f"/commands/{command['correlationId']}/cancel")).status_code == 200

    connection = await asyncpg.connect(**asyncpg_connect_kwargs(fresh_database_url))
    try:
        rows = await connection.fetch(
            "SELECT event, success, payload::text AS payload FROM events WHERE tenant_id = $1 ORDER BY id",
            api.tenant,
        )
    finally:
        await connection.close()

    kinds = []
    for row in rows:
        documented = LIFECYCLE_PAYLOADS[row["event"]] if row["success"] else CommandFailurePayload
        msgspec.json.decode(row["payload"], type=documented)  # exactly these fields, these types
        kinds.append(row["event"] if row["success"] else "failure")
    assert sorted(set(kinds)) == sorted([*LIFECYCLE_PAYLOADS, "failure"])
