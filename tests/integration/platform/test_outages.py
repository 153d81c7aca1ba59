"""Shutdown and outages: SIGTERM during a burst loses nothing; a database outage gives fast 503s,
then everything resumes by itself."""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest

from app.config import Settings
from app.db.embedded import EmbeddedPostgres
from app.db.engine import upgrade_database
from app.lib.db import asyncpg_connect_kwargs
from tests.conftest import process_env
from tests.support.api import ADMIN_TOKEN, assert_error
from tests.support.server import ServerProcess
from tests.support.sse import EventStream
from tests.support.waiting import eventually

HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": "acme"}
COMMAND = {"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u"}, "payload": {}}


async def test_sigterm_during_a_burst_of_commands_loses_none(
    processes: list[ServerProcess], fresh_database_url: str
) -> None:
    env = process_env(
        fresh_database_url,
        WORKER_ENABLED="true",
        WORKER_FAKE_DELAY_MS="100-300",
        WORKER_BATCH_SIZE="20",
        SHUTDOWN_GRACE_SECONDS="0.2",
    )
    api = ServerProcess(env).start()
    processes.append(api)
    total = 200
    async with httpx.AsyncClient(base_url=api.url, headers=HEADERS, timeout=30) as client:
        for start in range(0, total, 50):
            responses = await asyncio.gather(
                *(
                    client.post("/commands", json={**COMMAND, "correlationId": f"b-{i}"})
                    for i in range(start, start + 50)
                )
            )
            assert {r.status_code for r in responses} == {202}

    connection = await asyncpg.connect(**asyncpg_connect_kwargs(fresh_database_url))
    try:

        async def counts() -> dict[str, int]:
            rows = await connection.fetch("SELECT status, count(*) AS n FROM commands GROUP BY status")
            return {r["status"]: r["n"] for r in rows}

        await eventually(counts, lambda c: c.get("COMPLETED", 0) > 0 and c.get("PROCESSING", 0) > 0)
        api.signal(signal.SIGTERM)
        assert api.process is not None
        await asyncio.to_thread(api.process.wait, 30)
        after_stop = await counts()

        worker = ServerProcess(process_env(fresh_database_url), command=["worker"]).start(
            wait_for_health=False
        )
        processes.append(worker)
        final = await eventually(counts, lambda c: c.get("COMPLETED", 0) == total, timeout=60)
        events = await connection.fetch(
            "SELECT correlation_id, count(*) AS n FROM events WHERE event = 'Contacts.Upserted.v1' GROUP BY 1"
        )
    finally:
        await connection.close()

    assert after_stop.get("PROCESSING", 0) == 0, "in-flight commands are finished or handed back"
    assert sum(after_stop.values()) == total
    assert final == {"COMPLETED": total}
    assert len(events) == total
    assert {r["n"] for r in events} == {1}


@pytest.fixture
async def own_postgres() -> AsyncIterator[tuple[Path, str]]:
    """A PostgreSQL cluster this test may stop and start."""
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-outage-"))
    await anyio.to_thread.run_sync(folder.chmod, 0o755)  # the server may run as another user
    pgdata = folder / "pgdata"
    server = await anyio.to_thread.run_sync(EmbeddedPostgres.ensure_started, pgdata)
    url = server.url()
    await anyio.to_thread.run_sync(upgrade_database, Settings(database_url=url))
    try:
        yield pgdata, url
    finally:
        await anyio.to_thread.run_sync(EmbeddedPostgres.stop, pgdata)
        shutil.rmtree(folder, ignore_errors=True)


async def test_database_outage_gives_fast_503s_then_recovers_without_restart(
    processes: list[ServerProcess], own_postgres: tuple[Path, str]
) -> None:
    pgdata, url = own_postgres
    api = ServerProcess(process_env(url, WORKER_ENABLED="true", WORKER_POLL_SECONDS="0.2")).start()
    processes.append(api)
    async with httpx.AsyncClient(base_url=api.url, headers=HEADERS, timeout=15) as client:
        assert (await client.get("/health/ready")).status_code == 200
        assert (await client.post("/scripts", json={"name": "Before", "slug": "before"})).status_code == 201

        async with EventStream(api.url, headers=HEADERS) as stream:
            await stream.next(timeout=5, pings=True)
            await anyio.to_thread.run_sync(EmbeddedPostgres.stop, pgdata)

            not_ready = await eventually(lambda: client.get("/health/ready"), lambda r: r.status_code == 503)
            started = time.monotonic()
            during = await client.get("/scripts")
            answered_in = time.monotonic() - started
            ping_during_outage = await stream.next(timeout=5, pings=True)

            await anyio.to_thread.run_sync(EmbeddedPostgres.ensure_started, pgdata)
            await eventually(lambda: client.get("/health/ready"), lambda r: r.status_code == 200, timeout=30)
            listed = await eventually(
                lambda: client.get("/scripts"), lambda r: r.status_code == 200, timeout=30
            )
            accepted = (await client.post("/commands", json=COMMAND)).json()
            completion = await stream.next(timeout=20)

    body = assert_error(not_ready, 503, "UNAVAILABLE")
    assert body["details"]["checks"]["database"].startswith("unavailable")
    assert_error(during, 503, "UNAVAILABLE")
    assert answered_in < 3
    assert "Traceback" not in during.text
    assert ping_during_outage.event == "ping"
    assert [s["slug"] for s in listed.json()["items"]] == ["before"]
    assert completion.event == "Contacts.Upserted.v1"
    assert accepted["correlationId"] in completion.data
