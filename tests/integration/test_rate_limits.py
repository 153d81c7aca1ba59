"""Per-tenant rate limits on POST /commands, POST /events and /hooks/… (429 with Retry-After)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.stores.file import FileStore
from litestar.testing import AsyncTestClient

from app.server.core import create_app
from tests.conftest import Api, assert_error, make_settings, new_tenant
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


async def test_a_shared_store_counts_across_apps(database_url: str, tmp_path: Path) -> None:
    """With a ``rate_limit`` store other than the in-process one, Litestar's store-backed
    counting applies: two apps (think two API processes) share one limit."""
    store = FileStore(tmp_path / "rate-limits")
    apps = [create_app(make_settings(database_url, RATE_LIMIT_PER_MINUTE=str(LIMIT))) for _ in range(2)]
    for app in apps:
        app.stores.register("rate_limit", store, allow_override=True)
    tenant = new_tenant()
    async with (
        AsyncTestClient(app=apps[0], base_url="http://testserver.local") as first,
        AsyncTestClient(app=apps[1], base_url="http://testserver.local") as second,
    ):
        answers = [
            await Api(client, tenant).post("/commands", json=COMMAND)
            for client in (first, second, first, second)
        ]

    assert [r.status_code for r in answers[:LIMIT]] == [202] * LIMIT
    assert answers[1].headers["RateLimit-Remaining"] == str(LIMIT - 2)
    assert_error(answers[LIMIT], 429, "RATE_LIMIT_EXCEEDED")
    assert 1 <= int(answers[LIMIT].headers["Retry-After"]) <= 60
