"""GET /events/stream against a real server process, read by a real streaming client."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from app.config import Settings
from app.domain.events.repositories import append_event
from tests.support.api import ADMIN_TOKEN, assert_error, new_tenant
from tests.support.server import ServerProcess
from tests.support.sse import EventStream, data

COMMAND = {"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u-1"}, "payload": {"email": "a@b.c"}}


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": tenant}


async def post_command(server: ServerProcess, tenant: str, **fields: object) -> str:
    async with httpx.AsyncClient(base_url=server.url, headers=auth(tenant), timeout=10) as client:
        response = await client.post("/commands", json={**COMMAND, **fields})
    assert response.status_code == 202, response.text
    return response.json()["correlationId"]


async def test_stream_has_sse_headers_and_pings(live_server: ServerProcess) -> None:
    async with EventStream(live_server.url, headers=auth(new_tenant())) as stream:
        ping = await stream.next(timeout=5, pings=True)

    assert stream.response is not None
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert stream.response.headers["cache-control"] in ("no-cache", "no-store")
    assert stream.response.headers["x-accel-buffering"] == "no"
    assert ping.event == "ping"
    assert ping.data.endswith("Z")


async def test_completion_reaches_a_subscribed_client(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    async with EventStream(live_server.url, headers=auth(tenant)) as stream:
        await stream.next(timeout=5, pings=True)  # the stream is open and subscribed
        correlation_id = await post_command(live_server, tenant)
        event = await stream.next()

    body = data(event)
    assert event.event == "Contacts.Upserted.v1"
    assert event.id == str(body["id"])
    assert body["correlationId"] == correlation_id
    assert body["tenantId"] == tenant
    assert body["success"] is True
    assert body["payload"]["contacts"][0]["role"] == "applicant"
    assert body["payload"]["contacts"][0]["contactId"].startswith("cnt_")
    assert set(body) == {"id", "event", "correlationId", "tenantId", "success", "payload", "occurredAt"}


async def test_other_commands_echo_their_payload(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    async with EventStream(live_server.url, headers=auth(tenant)) as stream:
        await stream.next(timeout=5, pings=True)
        await post_command(live_server, tenant, command="Billing.Charge.v2", payload={"amount": 5})
        event = await stream.next()

    assert event.event == "Billing.ChargeCompleted.v1"
    assert data(event)["payload"] == {"amount": 5}


async def test_late_subscriber_with_correlation_id_still_gets_the_completion(
    live_server: ServerProcess,
) -> None:
    tenant = new_tenant()
    correlation_id = await post_command(live_server, tenant)
    async with httpx.AsyncClient(base_url=live_server.url, headers=auth(tenant), timeout=10) as client:
        for _ in range(200):
            if (await client.get(f"/commands/{correlation_id}")).json()["status"] == "COMPLETED":
                break
            await asyncio.sleep(0.02)
        assert (await client.get(f"/commands/{correlation_id}")).json()["status"] == "COMPLETED"

    async with EventStream(
        live_server.url, params={"correlationId": correlation_id}, headers=auth(tenant)
    ) as stream:
        event = await stream.next()

    assert data(event)["correlationId"] == correlation_id
    assert event.event == "Contacts.Upserted.v1"


async def test_browser_style_access_token_and_tenant_in_the_query(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    params = {"tenantId": tenant, "access_token": ADMIN_TOKEN}
    async with EventStream(live_server.url, params=params) as stream:
        await stream.next(timeout=5, pings=True)
        correlation_id = await post_command(live_server, tenant)
        event = await stream.next()

    assert data(event)["correlationId"] == correlation_id


async def test_access_token_cookie_is_accepted(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    headers = {"Cookie": f"access_token={ADMIN_TOKEN}"}
    async with EventStream(live_server.url, params={"tenantId": tenant}, headers=headers) as stream:
        ping = await stream.next(timeout=5, pings=True)

    assert ping.event == "ping"


@pytest.mark.parametrize(
    ("params", "headers", "status", "code"),
    [
        ({"tenantId": "acme"}, {}, 401, "UNAUTHORIZED"),
        ({"tenantId": "acme", "access_token": "wrong"}, {}, 401, "UNAUTHORIZED"),
        ({"access_token": ADMIN_TOKEN}, {}, 400, "TENANT_REQUIRED"),
        ({"access_token": ADMIN_TOKEN, "tenantId": "a b"}, {}, 400, "VALIDATION_ERROR"),
        ({"access_token": ADMIN_TOKEN, "tenantId": "other"}, {"x-tenant-id": "acme"}, 403, "TENANT_MISMATCH"),
        ({"access_token": ADMIN_TOKEN, "tenantId": "acme", "since": "abc"}, {}, 400, "VALIDATION_ERROR"),
    ],
)
async def test_refused_streams_answer_json_errors(
    live_server: ServerProcess, params: dict, headers: dict, status: int, code: str
) -> None:
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as client:
        response = await client.get("/events/stream", params=params, headers=headers)

    assert_error(response, status, code)


async def test_stream_only_carries_the_tenants_events(live_server: ServerProcess) -> None:
    mine, theirs = new_tenant(), new_tenant()
    async with EventStream(live_server.url, headers=auth(mine)) as stream:
        await stream.next(timeout=5, pings=True)
        await post_command(live_server, theirs)
        own = await post_command(live_server, mine)
        event = await stream.next()

    assert data(event)["correlationId"] == own
    assert data(event)["tenantId"] == mine


async def test_event_name_filter(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    params = {"event": "Billing.ChargeCompleted.v1,Other.Thing.v1"}
    async with EventStream(live_server.url, params=params, headers=auth(tenant)) as stream:
        await stream.next(timeout=5, pings=True)
        await post_command(live_server, tenant)  # Contacts.Upserted.v1: filtered out
        wanted = await post_command(live_server, tenant, command="Billing.Charge.v1")
        event = await stream.next()

    assert event.event == "Billing.ChargeCompleted.v1"
    assert data(event)["correlationId"] == wanted


async def test_lifecycle_events_follow_the_script(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    async with (
        EventStream(live_server.url, headers=auth(tenant)) as stream,
        httpx.AsyncClient(base_url=live_server.url, headers=auth(tenant), timeout=10) as client,
    ):
        await stream.next(timeout=5, pings=True)
        script = (await client.post("/scripts", json={"name": "Life", "slug": "life"})).json()
        await client.post(f"/scripts/{script['id']}/versions", json={"graphJson": {"nodes": [], "edges": []}})
        await client.post(f"/scripts/{script['id']}/versions/1/publish")
        await client.patch(f"/scripts/{script['id']}", json={"status": "ARCHIVED"})
        events = await stream.until(lambda frames: len(frames) == 4)

    assert [e.event for e in events] == [
        "Script.Created",
        "Version.Created",
        "Script.Published",
        "Script.Archived",
    ]
    assert {data(e)["payload"]["scriptId"] for e in events} == {script["id"]}
    assert data(events[1])["payload"]["version"] == 1


async def test_reconnect_with_last_event_id_gets_every_later_event_once(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    async with httpx.AsyncClient(base_url=live_server.url, headers=auth(tenant), timeout=30) as client:
        async with EventStream(live_server.url, headers=auth(tenant)) as stream:
            await stream.next(timeout=5, pings=True)
            await asyncio.gather(
                *(client.post("/scripts", json={"name": f"S{i}", "slug": f"s-{i}"}) for i in range(40))
            )
            first_part = await stream.until(lambda frames: len(frames) == 10)
        # Meanwhile more events commit, from concurrent transactions.
        await asyncio.gather(
            *(client.post("/scripts", json={"name": f"T{i}", "slug": f"t-{i}"}) for i in range(40))
        )
        last_id = first_part[-1].id
        async with EventStream(live_server.url, headers={**auth(tenant), "Last-Event-ID": last_id}) as stream:
            rest = await stream.until(lambda frames: len(frames) == 70)

    slugs = [data(e)["payload"]["slug"] for e in (*first_part, *rest)]
    assert len(slugs) == len(set(slugs)) == 80
    assert set(slugs) == {f"s-{i}" for i in range(40)} | {f"t-{i}" for i in range(40)}


async def test_since_query_replays_like_last_event_id(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    first = await post_command(live_server, tenant, correlationId=f"c-{uuid.uuid4().hex[:6]}")
    async with EventStream(live_server.url, params={"correlationId": first}, headers=auth(tenant)) as stream:
        first_event = await stream.next()
    second = await post_command(live_server, tenant)

    async with EventStream(live_server.url, params={"since": first_event.id}, headers=auth(tenant)) as stream:
        replayed = await stream.next()

    assert data(replayed)["correlationId"] == second


async def test_cursor_outside_the_retained_history_gets_resync_then_everything_retained(
    live_server: ServerProcess,
) -> None:
    tenant = new_tenant()
    correlation_id = await post_command(live_server, tenant)
    async with EventStream(
        live_server.url, params={"correlationId": correlation_id}, headers=auth(tenant)
    ) as s:
        completion = await s.next()

    async with EventStream(live_server.url, headers={**auth(tenant), "Last-Event-ID": "999999999"}) as stream:
        resync = await stream.next()
        replayed = await stream.next()

    assert resync.event == "resync"
    assert (replayed.id, data(replayed)["correlationId"]) == (completion.id, correlation_id)


async def test_an_event_committed_late_with_a_lower_id_is_delivered_once_it_commits(
    live_server: ServerProcess, settings: Settings
) -> None:
    tenant = new_tenant()
    engine = create_async_engine(settings.database_url)
    try:
        async with EventStream(live_server.url, headers=auth(tenant)) as stream:
            await stream.next(timeout=5, pings=True)
            async with AsyncSession(engine) as held:
                # This transaction takes its event id first and commits last.
                await append_event(
                    held, tenant_id=tenant, event="Held.Event.v1", payload={}, correlation_id="held"
                )
                later = await post_command(live_server, tenant)
                async with httpx.AsyncClient(base_url=live_server.url, headers=auth(tenant)) as client:
                    for _ in range(500):
                        if (await client.get(f"/commands/{later}")).json()["status"] == "COMPLETED":
                            break
                        await asyncio.sleep(0.01)
                await held.commit()
            frames = await stream.until(lambda f: len(f) == 2)
    finally:
        await engine.dispose()

    # Delivered in the order they became visible: the held event after the later one, although
    # its id is lower; neither is skipped.
    later_event, held_event = frames
    assert held_event.event == "Held.Event.v1"
    assert data(later_event)["correlationId"] == later
    assert int(held_event.id) < int(later_event.id)

    # A client that saw only the first frame resumes with the held event; one that saw both
    # resumes with nothing missed and nothing repeated.
    async with EventStream(
        live_server.url, headers={**auth(tenant), "Last-Event-ID": later_event.id}
    ) as stream:
        assert (await stream.next()).id == held_event.id
    async with EventStream(
        live_server.url, headers={**auth(tenant), "Last-Event-ID": held_event.id}
    ) as stream:
        assert (await stream.next(timeout=5, pings=True)).event == "ping"


async def test_run_lifecycle_events_reach_the_stream(live_server: ServerProcess) -> None:
    tenant = new_tenant()
    async with (
        EventStream(
            live_server.url, params={"event": "Run.Started,Run.Finished"}, headers=auth(tenant)
        ) as stream,
        httpx.AsyncClient(base_url=live_server.url, headers=auth(tenant), timeout=10) as client,
    ):
        await stream.next(timeout=5, pings=True)
        script = (await client.post("/scripts", json={"name": "R", "slug": "r"})).json()
        await client.post(f"/scripts/{script['id']}/versions", json={"graphJson": {"nodes": [], "edges": []}})
        run = (await client.post("/runs", json={"scriptId": script["id"], "version": 1})).json()
        await client.post(f"/runs/{run['runId']}/finish", json={"status": "SUCCEEDED"})
        started, finished = await stream.until(lambda frames: len(frames) == 2)

    assert (started.event, finished.event) == ("Run.Started", "Run.Finished")
    assert data(started)["payload"] == {
        "runId": run["runId"],
        "scriptId": script["id"],
        "version": 1,
        "triggerType": "API_RUN",
    }
    assert data(finished)["payload"]["status"] == "SUCCEEDED"
