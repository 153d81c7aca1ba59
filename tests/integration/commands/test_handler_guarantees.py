"""Slow, failing and crashing handlers end (SPEC 6 and 10): the lease is kept alive while a
handler runs, a handler past HANDLER_TIMEOUT_SECONDS has failed, every claim is an attempt, and
the attempt cap reached by any path ends the command FAILED with exactly one failure event."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from app.worker.dispatcher import OutboxWorker
from tests.conftest import make_settings, process_env
from tests.support.api import ADMIN_TOKEN
from tests.support.server import ServerProcess
from tests.support.waiting import eventually
from tests.support.workers import Standalone

TENANT = "acme"
LEASE = 0.6
MAX_ATTEMPTS = 3


def settings_for(database_url: str, **env: str) -> Settings:
    defaults = {
        "WORKER_LEASE_SECONDS": str(LEASE),
        "WORKER_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "WORKER_RETRY_BASE_SECONDS": "0.02",
        "WORKER_POLL_SECONDS": "0.1",
    }
    return make_settings(database_url, **{**defaults, **env})


@pytest.fixture
def settings_(fresh_database_url: str) -> Settings:
    return settings_for(fresh_database_url)


@pytest.fixture
async def client(settings_: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(app=create_app(settings_), base_url="http://testserver.local") as client:
        client.headers.update({"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": TENANT})
        yield client


def worker(settings: Settings) -> Standalone[OutboxWorker]:
    url = settings.database_url
    assert url is not None
    return Standalone(lambda shared: OutboxWorker(settings, shared), url)


async def post(client: httpx.AsyncClient, command: str, payload: dict | None = None) -> str:
    response = await client.post(
        "/commands", json={"command": command, "actor": {"userId": "u"}, "payload": payload or {}}
    )
    assert response.status_code == 202, response.text
    return response.json()["correlationId"]


async def status(client: httpx.AsyncClient, correlation_id: str) -> dict:
    return (await client.get(f"/commands/{correlation_id}")).json()


async def outcome_events(settings: Settings, correlation_id: str) -> list[dict]:
    import asyncpg

    assert settings.database_url is not None
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(settings.database_url))
    try:
        rows = await connection.fetch(
            "SELECT event, success FROM events WHERE correlation_id = $1 ORDER BY id",
            correlation_id,
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


async def test_a_handler_slower_than_its_lease_completes_once(
    client: httpx.AsyncClient, settings_: Settings
) -> None:
    """Dev.Sleep.v1 for three leases, with a second worker ready to take over expired leases."""
    correlation_id = await post(client, "Dev.Sleep.v1", {"seconds": 3 * LEASE})
    first, second = worker(settings_), worker(settings_)
    await first.start()
    await eventually(lambda: status(client, correlation_id), lambda s: s["status"] == "PROCESSING")
    await second.start()
    try:
        done = await eventually(lambda: status(client, correlation_id), lambda s: s["status"] == "COMPLETED")
    finally:
        await first.stop()
        await second.stop()

    events = await outcome_events(settings_, correlation_id)
    assert done["attempts"] == 1
    assert [(e["event"], e["success"]) for e in events] == [("Dev.SleepCompleted.v1", True)]


async def test_an_always_failing_handler_ends_failed_after_the_cap_with_one_event(
    client: httpx.AsyncClient, settings_: Settings
) -> None:
    correlation_id = await post(client, "Dev.Fail.v1")
    running = worker(settings_)
    await running.start()
    try:
        done = await eventually(lambda: status(client, correlation_id), lambda s: s["status"] == "FAILED")
    finally:
        await running.stop()

    events = await outcome_events(settings_, correlation_id)
    assert done["attempts"] == MAX_ATTEMPTS
    assert "always fails" in done["lastError"]
    assert [(e["event"], e["success"]) for e in events] == [("Dev.FailCompleted.v1", False)]


async def test_a_handler_past_its_timeout_has_failed(fresh_database_url: str) -> None:
    settings = settings_for(fresh_database_url, HANDLER_TIMEOUT_SECONDS="0.2", WORKER_MAX_ATTEMPTS="2")
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as client:
        client.headers.update({"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": TENANT})
        correlation_id = await post(client, "Dev.Sleep.v1", {"seconds": 30})
        running = worker(settings)
        await running.start()
        try:
            done = await eventually(lambda: status(client, correlation_id), lambda s: s["status"] == "FAILED")
        finally:
            await running.stop()

    assert done["attempts"] == 2
    assert "HANDLER_TIMEOUT_SECONDS" in done["lastError"]
    assert [e["success"] for e in await outcome_events(settings, correlation_id)] == [False]


async def test_a_command_that_kills_its_worker_every_time_ends_failed_after_the_cap(
    client: httpx.AsyncClient, settings_: Settings, fresh_database_url: str
) -> None:
    """Each worker process claims the command and is SIGKILLed while it runs; after the last
    attempt, the next worker's reclaim ends it FAILED, with one failure event."""
    correlation_id = await post(client, "Dev.Sleep.v1", {"seconds": 60})
    env = process_env(
        fresh_database_url,
        WORKER_LEASE_SECONDS=str(LEASE),
        WORKER_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        WORKER_POLL_SECONDS="0.1",
    )
    for attempt in range(1, MAX_ATTEMPTS + 1):
        doomed = ServerProcess(env, command=["worker"]).start(wait_for_health=False)
        try:
            await eventually(
                lambda: status(client, correlation_id),
                lambda s, n=attempt: s["status"] == "PROCESSING" and s["attempts"] == n,
                timeout=30,
            )
        finally:
            doomed.kill()  # SIGKILL, mid-handler

    survivor = worker(settings_)
    await survivor.start()
    try:
        done = await eventually(
            lambda: status(client, correlation_id), lambda s: s["status"] == "FAILED", timeout=30
        )
    finally:
        await survivor.stop()

    events = await outcome_events(settings_, correlation_id)
    assert done["attempts"] == MAX_ATTEMPTS
    assert "lease expired" in done["lastError"]
    assert [(e["event"], e["success"]) for e in events] == [("Dev.SleepCompleted.v1", False)]
