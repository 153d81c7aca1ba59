"""The outbox worker in-process, on a database of its own: retries, failure, leases, shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.domain.commands.handlers import ClaimedCommand, CommandResult, HandlerRegistry, Success
from app.domain.commands.outbox import Outbox
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from app.worker.dispatcher import OutboxWorker
from tests.conftest import make_settings
from tests.support.api import ADMIN_TOKEN
from tests.support.waiting import eventually
from tests.support.workers import Standalone

TENANT = "acme"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": TENANT}


@pytest.fixture
def worker_settings(fresh_database_url: str) -> Settings:
    return make_settings(
        fresh_database_url,
        WORKER_MAX_ATTEMPTS="3",
        WORKER_RETRY_BASE_SECONDS="0.05",
        WORKER_POLL_SECONDS="0.2",
    )


@pytest.fixture
async def client(worker_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(app=create_app(worker_settings), base_url="http://testserver.local") as client:
        client.headers.update(HEADERS)
        yield client


def new_worker(settings: Settings, registry: HandlerRegistry | None = None) -> Standalone[OutboxWorker]:
    assert settings.database_url is not None
    url = settings.database_url
    return Standalone(lambda shared: OutboxWorker(settings, shared, registry), url)


async def status_of(client: httpx.AsyncClient, correlation_id: str) -> dict[str, Any]:
    return (await client.get(f"/commands/{correlation_id}")).json()


async def events_of(settings: Settings, correlation_id: str) -> list[dict[str, Any]]:
    import asyncpg

    assert settings.database_url is not None
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(settings.database_url))
    try:
        rows = await connection.fetch(
            "SELECT event, success, payload::text FROM events WHERE correlation_id = $1 ORDER BY id",
            correlation_id,
        )
    finally:
        await connection.close()
    return [dict(r) for r in rows]


async def post(client: httpx.AsyncClient, correlation_id: str, command: str = "Billing.Charge.v1") -> None:
    body = {
        "command": command,
        "actor": {"userId": "u"},
        "payload": {"n": 1},
        "correlationId": correlation_id,
    }
    assert (await client.post("/commands", json=body)).status_code == 202


async def test_worker_completes_a_command_with_one_event(
    client: httpx.AsyncClient, worker_settings: Settings
) -> None:
    worker = new_worker(worker_settings)
    await worker.start()
    try:
        await post(client, "one")
        status = await eventually(lambda: status_of(client, "one"), lambda s: s["status"] == "COMPLETED")
    finally:
        await worker.stop()

    assert status["attempts"] == 1
    assert status["completedAt"] is not None
    assert [e["event"] for e in await events_of(worker_settings, "one")] == ["Billing.ChargeCompleted.v1"]


async def test_failing_handler_is_retried_with_backoff_then_failed_with_an_event(
    client: httpx.AsyncClient, worker_settings: Settings
) -> None:
    calls: list[int] = []

    async def broken(command: ClaimedCommand) -> CommandResult:
        calls.append(command.attempts)
        raise RuntimeError("CRM is down")

    registry = HandlerRegistry()
    registry.register("Crm.Sync.v1", broken, event="Crm.Synced.v1")
    worker = new_worker(worker_settings, registry)
    await worker.start()
    try:
        await post(client, "doomed", command="Crm.Sync.v1")
        status = await eventually(lambda: status_of(client, "doomed"), lambda s: s["status"] == "FAILED")
    finally:
        await worker.stop()

    assert calls == [1, 2, 3]
    assert status["attempts"] == 3
    assert status["lastError"] == "RuntimeError: CRM is down"
    events = await events_of(worker_settings, "doomed")
    assert [(e["event"], e["success"]) for e in events] == [("Crm.Synced.v1", False)]
    assert '"error": "RuntimeError: CRM is down"' in events[0]["payload"]


async def test_a_retry_waits_for_its_backoff(client: httpx.AsyncClient, fresh_database_url: str) -> None:
    settings = make_settings(fresh_database_url, WORKER_RETRY_BASE_SECONDS="0.5", WORKER_POLL_SECONDS="0.1")
    registry = HandlerRegistry()

    async def fails_first(command: ClaimedCommand) -> CommandResult:
        if command.attempts == 1:
            raise ValueError("transient")
        return CommandResult(event="Crm.Synced.v1", payload={"ok": True})

    registry.register("Crm.Sync.v1", fails_first)
    worker = new_worker(settings, registry)
    await worker.start()
    try:
        await post(client, "flaky", command="Crm.Sync.v1")
        waiting = await eventually(
            lambda: status_of(client, "flaky"), lambda s: s["status"] == "PENDING" and s["attempts"] == 1
        )
        done = await eventually(lambda: status_of(client, "flaky"), lambda s: s["status"] == "COMPLETED")
    finally:
        await worker.stop()

    assert waiting["lastError"] == "ValueError: transient"
    assert waiting["nextAttemptAt"] > waiting["updatedAt"]
    assert done["attempts"] == 2
    assert done["lastError"] is None
    assert [e["event"] for e in await events_of(settings, "flaky")] == ["Crm.Synced.v1"]


async def test_expired_lease_is_reclaimed_and_the_old_holder_cannot_complete(
    client: httpx.AsyncClient, worker_settings: Settings
) -> None:
    import asyncpg

    assert worker_settings.database_url is not None
    pool = await asyncpg.create_pool(**asyncpg_connect_kwargs(worker_settings.database_url))
    try:
        await post(client, "orphan")
        crashed = Outbox(pool)
        [claimed] = await crashed.claim(10, lease_seconds=0.2)  # a worker that claims, then dies
        assert (await status_of(client, "orphan"))["status"] == "PROCESSING"

        worker = new_worker(worker_settings)
        await worker.start()
        try:
            done = await eventually(lambda: status_of(client, "orphan"), lambda s: s["status"] == "COMPLETED")
        finally:
            await worker.stop()
        late = await crashed.record(
            [Success(claimed, "Billing.ChargeCompleted.v1", {"late": True})],
            [],
            max_attempts=3,
            retry_base_seconds=1,
            retry_max_seconds=1,
        )
    finally:
        await pool.close()

    assert done["attempts"] == 2
    assert late == 0
    assert len(await events_of(worker_settings, "orphan")) == 1


async def test_stop_hands_unfinished_commands_back_without_counting_the_attempt(
    client: httpx.AsyncClient, fresh_database_url: str
) -> None:
    slow = make_settings(fresh_database_url, WORKER_FAKE_DELAY_MS="5000", WORKER_POLL_SECONDS="0.1")
    worker = new_worker(slow)
    await worker.start()
    await post(client, "slow")
    await eventually(lambda: status_of(client, "slow"), lambda s: s["status"] == "PROCESSING")

    await worker.stop(grace_seconds=0.1)

    status = await status_of(client, "slow")
    assert (status["status"], status["attempts"]) == ("PENDING", 0)
    assert await events_of(slow, "slow") == []
