"""Live delivery does not wait on unrelated work (SPEC 6 and 10): with a write transaction held
open on the same PostgreSQL server (in this database, or in another one) while commands flow at
50 a second, every completion reaches the stream within a second, in order, none skipped, and
lifecycle hooks still start."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest

from app.lib.db import asyncpg_connect_kwargs
from tests.support.api import ADMIN_TOKEN, Api, new_tenant
from tests.support.database import scratch_database
from tests.support.server import ServerProcess
from tests.support.sse import EventStream
from tests.support.triggers import published_script, runs_of, subscribe
from tests.support.waiting import eventually

RATE = 50  # commands a second
COMMANDS = 50
DEADLINE = 1.0  # seconds from posting to delivery


@pytest.fixture(scope="module")
def other_database_url(server_url: str) -> Iterator[str]:
    with scratch_database(server_url, prefix="scriptworks_unrelated") as url:
        yield url


@pytest.fixture(params=["same database", "another database"])
async def open_transaction(
    request: pytest.FixtureRequest, database_url: str, other_database_url: str
) -> AsyncIterator[None]:
    """A session idle in a transaction that holds a transaction id, for the whole test."""
    url = database_url if request.param == "same database" else other_database_url
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS unrelated_work (n integer)")
        await connection.execute("BEGIN")
        await connection.execute("INSERT INTO unrelated_work VALUES (1)")
        assert await connection.fetchval("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
        yield
    finally:
        await connection.execute("ROLLBACK")
        await connection.close()


def headers(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": tenant}


async def test_completions_reach_the_stream_within_a_second_despite_an_open_transaction(
    live_server: ServerProcess, open_transaction: None
) -> None:
    tenant = new_tenant()
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    ids: list[int] = []

    async with (
        EventStream(live_server.url, headers=headers(tenant)) as stream,
        httpx.AsyncClient(base_url=live_server.url, headers=headers(tenant), timeout=10) as client,
    ):
        await stream.next(timeout=5, pings=True)  # subscribed

        async def post_at_a_steady_rate() -> None:
            start = time.perf_counter()
            for i in range(COMMANDS):
                await asyncio.sleep(max(0.0, start + i / RATE - time.perf_counter()))  # pacing the load
                correlation_id = str(uuid.uuid4())
                sent[correlation_id] = time.perf_counter()
                body = {
                    "command": "Billing.Charge.v1",
                    "correlationId": correlation_id,
                    "actor": {"userId": "u"},
                }
                assert (await client.post("/commands", json=body)).status_code == 202

        async def read_completions() -> None:
            while len(arrived) < COMMANDS:
                frame = await stream.next(timeout=COMMANDS / RATE + 5)
                arrived[json.loads(frame.data)["correlationId"]] = time.perf_counter()
                ids.append(int(frame.id))

        await asyncio.gather(post_at_a_steady_rate(), read_completions())

    late = {c: round(arrived[c] - sent[c], 3) for c in sent if arrived[c] - sent[c] > DEADLINE}
    assert set(arrived) == set(sent)
    assert late == {}
    assert ids == sorted(ids)
    assert len(set(ids)) == COMMANDS


async def test_lifecycle_hooks_start_despite_an_open_transaction(
    live_server: ServerProcess, open_transaction: None
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as http:
        api = Api(http, new_tenant())
        started = await published_script(api)
        hook = await published_script(api)
        await subscribe(api, started, "Run.Started", hook)

        response = await api.post("/runs", json={"scriptId": started, "version": 1})
        assert response.status_code == 201
        hook_runs = await eventually(
            lambda: runs_of(api, scriptId=hook, triggerType="LIFECYCLE_HOOK"),
            lambda runs: len(runs) == 1,
            timeout=5,
        )

    assert hook_runs[0]["eventData"]["subject"] == started
