"""Stream tickets (SPEC 3.1): a short-lived token that opens ``/events/stream`` for one actor in
one tenant, and nothing else; minted by any API process, accepted by every other."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import process_env
from tests.support.api import (
    ADMIN_TOKEN,
    ALICE_TENANT,
    ALICE_TOKEN,
    ROLE_TOKENS,
    Api,
    assert_error,
    new_tenant,
)
from tests.support.server import ServerProcess
from tests.support.sse import EventStream, data
from tests.support.tickets import forged, ticket_key

COMMAND = {"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u-1"}, "payload": {}}


async def ticket_for(api: Api) -> dict[str, str]:
    response = await api.post("/events/stream-tickets")
    assert response.status_code == 201, response.text
    return response.json()


async def test_any_role_may_mint_a_short_lived_ticket_for_its_tenant(http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    before = datetime.datetime.now(datetime.UTC)

    tickets = [await ticket_for(Api(http, tenant, token)) for token in ROLE_TOKENS.values()]

    for ticket in tickets:
        expires_at = datetime.datetime.fromisoformat(ticket["expiresAt"])
        assert before < expires_at <= before + datetime.timedelta(seconds=301)
        assert ADMIN_TOKEN not in ticket["ticket"]


async def test_a_ticket_cannot_be_minted_for_a_tenant_not_granted(http: httpx.AsyncClient) -> None:
    response = await Api(http, new_tenant(), ALICE_TOKEN).post("/events/stream-tickets")

    assert_error(response, 403, "TENANT_FORBIDDEN")


async def test_a_ticket_opens_nothing_but_the_stream(http: httpx.AsyncClient) -> None:
    tenant = new_tenant()
    ticket = (await ticket_for(Api(http, tenant)))["ticket"]

    reads = await Api(http, tenant, ticket).get("/scripts")
    writes = await Api(http, tenant, ticket).post("/commands", json=COMMAND)
    minted = await Api(http, tenant, ticket).post("/events/stream-tickets")

    for response in (reads, writes, minted):
        assert_error(response, 401, "UNAUTHORIZED")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_a_ticket_is_refused_for_another_tenant(http: httpx.AsyncClient) -> None:
    ticket = (await ticket_for(Api(http, new_tenant())))["ticket"]

    response = await http.get("/events/stream", params={"tenantId": new_tenant(), "access_token": ticket})

    assert_error(response, 403, "TENANT_FORBIDDEN")


async def test_an_expired_or_forged_ticket_is_refused(http: httpx.AsyncClient, database_url: str) -> None:
    tenant = new_tenant()
    await ticket_for(Api(http, tenant))  # the deployment's ticket key exists from here on
    key = await ticket_key(database_url)

    expired = forged(key, tenant=tenant, expires_in=-1)
    other_key = forged(b"k" * 32, tenant=tenant, expires_in=60)
    for ticket in (expired, other_key):
        response = await http.get("/events/stream", params={"tenantId": tenant, "access_token": ticket})

        assert_error(response, 401, "UNAUTHORIZED")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert ticket not in response.text


@pytest.fixture(scope="module")
def second_server(database_url: str) -> Iterator[ServerProcess]:
    """Another API process on the same database, without a worker."""
    server = ServerProcess(process_env(database_url, WORKER_ENABLED="false")).start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_ticket_minted_on_one_process_opens_the_stream_on_another(
    live_server: ServerProcess, second_server: ServerProcess
) -> None:
    tenant = ALICE_TENANT
    async with httpx.AsyncClient(base_url=second_server.url, timeout=10) as client:
        minted = await client.post(
            "/events/stream-tickets",
            headers={"Authorization": f"Bearer {ALICE_TOKEN}", "x-tenant-id": tenant},
        )
        assert minted.status_code == 201, minted.text
        ticket = minted.json()["ticket"]

        async with EventStream(
            live_server.url, params={"tenantId": tenant, "access_token": ticket}
        ) as stream:
            posted = await client.post(
                "/commands",
                json=COMMAND,
                headers={"Authorization": f"Bearer {ALICE_TOKEN}", "x-tenant-id": tenant},
            )
            assert posted.status_code == 202, posted.text
            correlation_id = posted.json()["correlationId"]
            frames = await stream.until(
                lambda seen: any(data(f).get("correlationId") == correlation_id for f in seen), timeout=20
            )

    completion = next(f for f in frames if data(f).get("correlationId") == correlation_id)
    assert completion.event == "Contacts.Upserted.v1"
    assert data(completion)["tenantId"] == tenant


async def test_a_ticket_in_a_cookie_opens_the_stream(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        minted = await client.post(
            "/events/stream-tickets",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": tenant},
        )
    ticket = minted.json()["ticket"]

    async with EventStream(
        live_server.url, params={"tenantId": tenant}, headers={"Cookie": f"access_token={ticket}"}
    ) as stream:
        ping = await stream.next(timeout=10, pings=True)

    assert stream.response is not None
    assert stream.response.status_code == 200
    assert ping.event == "ping"
