"""Per-tenant rate limits per route family: POST /commands, POST /events, /hooks/… and every other
write (429 with Retry-After); TENANT_LIMITS; one limit across API processes sharing Redis."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.server.core import create_app
from tests.conftest import make_settings, process_env
from tests.support.api import ADMIN_TOKEN, Api, assert_error, new_tenant
from tests.support.server import ServerProcess
from tests.support.triggers import event_type, published_script

LIMIT = 3
COMMAND = {"command": "Billing.Charge.v1", "actor": {"userId": "u"}, "payload": {}}


@pytest.fixture(scope="module")
async def limited_client(database_url: str) -> AsyncIterator[AsyncTestClient]:
    """An app of its own (its own in-memory counters) with a limit of 3 per minute."""
    app = create_app(make_settings(database_url, RATE_LIMIT_PER_MINUTE=str(LIMIT)))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
def limited(limited_client: AsyncTestClient) -> Api:
    return Api(limited_client, new_tenant())


async def test_commands_beyond_the_limit_are_429_with_retry_after(limited: Api) -> None:
    accepted = [await limited.post("/commands", json=COMMAND) for _ in range(LIMIT)]

    refused = await limited.post("/commands", json=COMMAND)

    assert [r.status_code for r in accepted] == [202] * LIMIT
    assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert accepted[-1].headers["RateLimit-Remaining"] == "0"


async def test_events_beyond_the_limit_are_429(limited: Api) -> None:
    name = await event_type(limited)
    body = {"eventName": name, "subject": "s"}
    for _ in range(LIMIT):
        assert (await limited.post("/events", json=body)).status_code == 202

    refused = await limited.post("/events", json=body)

    assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert "Retry-After" in refused.headers


async def test_hooks_beyond_the_limit_are_429_per_tenant_of_the_path(limited: Api) -> None:
    script_id = await published_script(limited)
    created = await limited.post(
        f"/scripts/{script_id}/endpoints", json={"method": "POST", "route": "ping", "authRequired": False}
    )
    assert created.status_code == 201
    url = f"/hooks/{limited.tenant}/ping"
    for _ in range(LIMIT):
        assert (await limited.http.post(url)).status_code == 202

    refused = await limited.http.post(url, headers={"x-tenant-id": new_tenant()})

    assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
    assert "Retry-After" in refused.headers


async def test_the_limit_is_per_tenant(limited: Api) -> None:
    for _ in range(LIMIT + 1):
        await limited.post("/commands", json=COMMAND)

    other = await limited.as_(tenant=new_tenant()).post("/commands", json=COMMAND)

    assert other.status_code == 202


async def test_each_limited_route_counts_separately_and_others_are_not_limited(limited: Api) -> None:
    for _ in range(LIMIT + 1):
        await limited.post("/commands", json=COMMAND)

    event = await limited.post("/events", json={"eventName": "Script.Created", "subject": "s"})
    reads = [await limited.get("/scripts") for _ in range(LIMIT + 1)]

    assert event.status_code == 202
    assert {r.status_code for r in reads} == {200}


async def test_the_default_limit_is_generous(api: Api) -> None:
    responses = [await api.post("/commands", json=COMMAND) for _ in range(20)]

    assert {r.status_code for r in responses} == {202}
    assert int(responses[-1].headers["RateLimit-Limit"]) == 6000


def redis_url() -> str | None:
    """The machine's Redis, when one answers on 127.0.0.1:6379."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            if connection.recv(16).startswith(b"+PONG"):
                return "redis://127.0.0.1:6379/0"
    except OSError:
        pass
    return None


REDIS = redis_url()
needs_redis = pytest.mark.skipif(REDIS is None, reason="no Redis answers on 127.0.0.1:6379")


@needs_redis
async def test_two_api_processes_sharing_redis_hold_one_limit_together(
    database_url: str, processes: list[ServerProcess]
) -> None:
    env = process_env(
        database_url, RATE_LIMIT_STORE_URL=str(REDIS), RATE_LIMIT_COMMANDS_PER_MINUTE=str(LIMIT)
    )
    first, second = ServerProcess(env).start(), ServerProcess(env).start()
    processes += [first, second]
    tenant = new_tenant()
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": tenant}

    answers = []
    for server in (first, second, first, second, first):
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=10) as client:
            answers.append(await client.post("/commands", json=COMMAND))

    assert [r.status_code for r in answers[:LIMIT]] == [202] * LIMIT
    assert answers[1].headers["RateLimit-Remaining"] == str(LIMIT - 2)
    for refused in answers[LIMIT:]:
        assert_error(refused, 429, "RATE_LIMIT_EXCEEDED")
        assert 1 <= int(refused.headers["Retry-After"]) <= 60


async def test_writes_count_as_their_own_family_and_tenant_limits_override(database_url: str) -> None:
    tenant, vip = new_tenant(), new_tenant()
    settings = make_settings(
        database_url,
        RATE_LIMIT_WRITES_PER_MINUTE="2",
        TENANT_LIMITS=json.dumps({vip: {"writes": 4}}),
    )
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as client:
        plain = [
            await Api(client, tenant).post("/scripts", json={"name": "S", "slug": f"s-{i}"}) for i in range(3)
        ]
        favoured = [
            await Api(client, vip).post("/scripts", json={"name": "S", "slug": f"s-{i}"}) for i in range(5)
        ]
        reads = [await Api(client, tenant).get("/scripts") for _ in range(3)]
        command = await Api(client, tenant).post("/commands", json=COMMAND)

    assert [r.status_code for r in plain] == [201, 201, 429]
    assert [r.status_code for r in favoured] == [201, 201, 201, 201, 429]
    assert favoured[0].headers["RateLimit-Limit"] == "4"
    assert {r.status_code for r in reads} == {200}
    assert command.status_code == 202


@needs_redis
async def test_an_unreachable_shared_store_lets_requests_through(database_url: str) -> None:
    settings = make_settings(
        database_url, RATE_LIMIT_STORE_URL="redis://127.0.0.1:1/0", RATE_LIMIT_COMMANDS_PER_MINUTE="1"
    )
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as client:
        answers = [await Api(client, new_tenant()).post("/commands", json=COMMAND) for _ in range(2)]

    assert [r.status_code for r in answers] == [202, 202]
