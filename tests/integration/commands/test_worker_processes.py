"""API and worker as separate processes on one database: the seed flow, fan-out across
processes, and shutdown with open streams. (A worker killed mid-batch: test_faults.py.)"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.conftest import process_env
from tests.support.api import ADMIN_TOKEN
from tests.support.server import ServerProcess
from tests.support.sse import EventStream, data

TENANT = "acme"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": TENANT}
COMMAND = {"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u-1"}, "payload": {"email": "a@b.c"}}


def api_process(processes: list[ServerProcess], database_url: str, **env: str) -> ServerProcess:
    server = ServerProcess(process_env(database_url, WORKER_ENABLED="false", **env)).start()
    processes.append(server)
    return server


def worker_process(processes: list[ServerProcess], database_url: str, **env: str) -> ServerProcess:
    worker = ServerProcess(process_env(database_url, **env), command=["worker"]).start(wait_for_health=False)
    processes.append(worker)
    return worker


async def command_status(server: ServerProcess, correlation_id: str) -> dict:
    async with httpx.AsyncClient(base_url=server.url, headers=HEADERS, timeout=10) as client:
        return (await client.get(f"/commands/{correlation_id}")).json()


async def test_seed_flow_command_pending_then_worker_then_sse_completion(
    processes: list[ServerProcess], fresh_database_url: str
) -> None:
    api = api_process(processes, fresh_database_url)
    async with httpx.AsyncClient(base_url=api.url, headers=HEADERS, timeout=10) as client:
        accepted = (await client.post("/commands", json=COMMAND)).json()
    correlation_id = accepted["correlationId"]
    assert accepted["status"] == "PENDING"
    assert (await command_status(api, correlation_id))["status"] == "PENDING"

    async with EventStream(api.url, params={"correlationId": correlation_id}, headers=HEADERS) as stream:
        await stream.next(timeout=5, pings=True)
        worker_process(processes, fresh_database_url)
        event = await stream.next(timeout=20)

    assert event.event == "Contacts.Upserted.v1"
    assert data(event)["correlationId"] == correlation_id
    assert data(event)["success"] is True
    assert data(event)["payload"]["contacts"][0]["contactId"].startswith("cnt_")
    status = await command_status(api, correlation_id)
    assert (status["status"], status["attempts"]) == ("COMPLETED", 1)


async def test_clients_of_two_api_processes_receive_an_event_published_by_a_worker(
    processes: list[ServerProcess], fresh_database_url: str
) -> None:
    first = api_process(processes, fresh_database_url)
    second = api_process(processes, fresh_database_url)
    worker_process(processes, fresh_database_url)

    async with EventStream(first.url, headers=HEADERS) as a, EventStream(second.url, headers=HEADERS) as b:
        await a.next(timeout=5, pings=True)
        await b.next(timeout=5, pings=True)
        async with httpx.AsyncClient(base_url=first.url, headers=HEADERS, timeout=10) as client:
            correlation_id = (await client.post("/commands", json=COMMAND)).json()["correlationId"]
        seen_a, seen_b = await asyncio.gather(a.next(timeout=20), b.next(timeout=20))

    assert data(seen_a)["correlationId"] == data(seen_b)["correlationId"] == correlation_id
    assert seen_a.id == seen_b.id


async def test_sigterm_closes_open_streams_with_a_final_event(
    processes: list[ServerProcess], fresh_database_url: str
) -> None:
    api = api_process(processes, fresh_database_url)
    async with EventStream(api.url, headers=HEADERS) as stream:
        await stream.next(timeout=5, pings=True)
        started = time.monotonic()
        api.signal(signal.SIGTERM)
        final = await stream.next(timeout=10)

    assert final.event == "shutdown"
    assert api.process is not None
    assert await asyncio.to_thread(api.process.wait, 15) is not None
    assert time.monotonic() - started < 10
