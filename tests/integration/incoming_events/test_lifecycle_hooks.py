"""Lifecycle hooks, dispatched by the worker from the event store, on a database of their own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from app.worker.hooks import LifecycleHookDispatcher, dispatch_batch
from tests.conftest import make_settings
from tests.support.api import Api
from tests.support.runs import GRAPH
from tests.support.triggers import draft_script, published_script, runs_of, subscribe
from tests.support.waiting import eventually
from tests.support.workers import Standalone

TENANT = "acme"


@pytest.fixture
def hook_settings(fresh_database_url: str) -> Settings:
    return make_settings(fresh_database_url, WORKER_POLL_SECONDS="0.05")


@pytest.fixture
async def api(hook_settings: Settings) -> AsyncIterator[Api]:
    async with AsyncTestClient(app=create_app(hook_settings), base_url="http://testserver.local") as client:
        yield Api(client, TENANT)


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(fresh_database_url))
    yield connection
    await connection.close()


async def drain(connection: asyncpg.Connection) -> int:
    """Dispatch until every visible lifecycle event has been read; how many were read."""
    total = 0
    while (read := await dispatch_batch(connection)) != 0:
        total += read or 0
    return total


async def hook_runs(api: Api) -> list[dict[str, Any]]:
    return sorted(await runs_of(api, triggerType="LIFECYCLE_HOOK"), key=lambda r: r["startedAt"])


async def publish_new_version(api: Api, script_id: str) -> None:
    version = await api.create_version(script_id, GRAPH)
    await api.publish(script_id, version["version"])


async def test_publishing_a_script_starts_the_hook_subscribed_to_it(api: Api, db: asyncpg.Connection) -> None:
    hook = await published_script(api)
    subject = await draft_script(api)
    await subscribe(api, subject, "Script.Published", hook)

    await api.publish(subject, 1)
    before = await hook_runs(api)
    await drain(db)

    assert before == []  # nothing on the request path: the worker does it
    (run,) = await hook_runs(api)
    assert (run["scriptId"], run["version"], run["status"]) == (hook, 1, "RUNNING")
    assert run["eventData"]["eventName"] == "Script.Published"
    assert run["eventData"]["subject"] == subject
    assert run["eventData"]["payload"]["scriptId"] == subject
    assert run["eventData"]["hookDepth"] == 1
    event = (await api.get(f"/events/{run['triggeringEventId']}")).json()
    assert (event["eventName"], event["subject"]) == ("Script.Published", subject)
    assert event["lifecycleEventId"] == run["eventData"]["lifecycleEventId"]
    assert event["runs"] == [{"runId": run["id"], "scriptId": hook}]


async def test_every_lifecycle_name_can_start_hooks(api: Api, db: asyncpg.Connection) -> None:
    hook = await published_script(api)
    for name in (
        "Script.Created",
        "Version.Created",
        "Script.Published",
        "Script.Archived",
        "Run.Started",
        "Run.Finished",
    ):
        await subscribe(api, "*", name, hook)

    subject = (await api.create_script())["id"]
    await api.create_version(subject, GRAPH)
    await api.publish(subject, 1)
    run = (await api.post("/runs", json={"scriptId": subject, "version": 1})).json()
    await api.post(f"/runs/{run['id']}/finish", json={"status": "SUCCEEDED"})
    await api.patch(f"/scripts/{subject}", json={"status": "ARCHIVED"})
    await drain(db)

    names = [r["eventData"]["eventName"] for r in await hook_runs(api)]
    assert sorted(names) == sorted(
        [
            "Script.Created",
            "Version.Created",
            "Script.Published",
            "Run.Started",
            "Run.Finished",
            "Script.Archived",
        ]
    )


async def test_a_star_subscription_never_starts_its_script_for_its_own_events(
    api: Api, db: asyncpg.Connection
) -> None:
    hook = await published_script(api)
    other = await draft_script(api)
    await subscribe(api, "*", "Script.Published", hook)

    await publish_new_version(api, hook)  # the hook script's own event
    await api.publish(other, 1)
    await drain(db)

    (run,) = await hook_runs(api)
    assert run["eventData"]["subject"] == other


async def test_an_a_b_a_chain_stops(api: Api, db: asyncpg.Connection) -> None:
    a, b = await published_script(api), await published_script(api)
    await subscribe(api, b, "Run.Started", a)  # A runs when B starts
    await subscribe(api, a, "Run.Started", b)  # B runs when A starts

    await api.post("/runs", json={"scriptId": a, "version": 1})
    await drain(db)
    runs = await hook_runs(api)
    again = await drain(db)

    # B once and A once for the one manual run: B's second turn would repeat its run for the
    # same originating change.
    assert [(r["scriptId"], r["eventData"]["hookDepth"]) for r in runs] == [(b, 1), (a, 2)]
    assert again == 0
    assert len(await hook_runs(api)) == 2


async def test_one_change_starts_each_subscribed_script_at_most_once(
    api: Api, db: asyncpg.Connection
) -> None:
    """Four subscribers to Run.Started: one on '*', the others on the manual script and on each
    other in a chain. One manual run starts exactly one run of each, not one per link."""
    manual = await published_script(api)
    star, first, second, third = [await published_script(api) for _ in range(4)]
    await subscribe(api, "*", "Run.Started", star)
    await subscribe(api, manual, "Run.Started", first)
    await subscribe(api, first, "Run.Started", second)
    await subscribe(api, second, "Run.Started", third)

    started = await api.post("/runs", json={"scriptId": manual, "version": 1})
    await drain(db)
    runs = await hook_runs(api)

    assert started.status_code == 201
    assert sorted(r["scriptId"] for r in runs) == sorted([star, first, second, third])
    origins = {r["eventData"]["originEventId"] for r in runs}
    assert len(origins) == 1


async def test_two_changes_are_two_chains(api: Api, db: asyncpg.Connection) -> None:
    manual = await published_script(api)
    hook = await published_script(api)
    await subscribe(api, manual, "Run.Started", hook)

    for _ in range(2):
        assert (await api.post("/runs", json={"scriptId": manual, "version": 1})).status_code == 201
    await drain(db)

    assert len(await hook_runs(api)) == 2


async def test_a_script_without_an_active_version_is_skipped_and_recorded(
    api: Api, db: asyncpg.Connection
) -> None:
    hook = await draft_script(api)
    subject = await draft_script(api)
    await subscribe(api, subject, "Script.Published", hook)

    await api.publish(subject, 1)
    await drain(db)

    assert await hook_runs(api) == []
    events = await db.fetch("SELECT answer::text FROM incoming_events WHERE tenant_id = $1", TENANT)
    assert len(events) == 1
    assert f'"scriptId": "{hook}"' in events[0]["answer"]


async def test_a_subscription_does_not_fire_for_events_from_before_it_existed(
    api: Api, db: asyncpg.Connection
) -> None:
    hook = await published_script(api)
    subject = await draft_script(api)
    await api.publish(subject, 1)

    await subscribe(api, subject, "Script.Published", hook)
    await drain(db)

    assert await hook_runs(api) == []


async def test_concurrent_dispatchers_dispatch_each_event_once(
    api: Api, db: asyncpg.Connection, fresh_database_url: str
) -> None:
    hook = await published_script(api)
    await subscribe(api, "*", "Script.Published", hook)
    subjects = [await draft_script(api) for _ in range(6)]
    for subject in subjects:
        await api.publish(subject, 1)
    others = [await asyncpg.connect(**asyncpg_connect_kwargs(fresh_database_url)) for _ in range(3)]
    try:
        for _ in range(5):
            await asyncio.gather(*(dispatch_batch(c, limit=2) for c in [db, *others]))
        await drain(db)
    finally:
        for connection in others:
            await connection.close()

    runs = await hook_runs(api)
    assert sorted(r["eventData"]["subject"] for r in runs) == sorted(subjects)


async def test_the_cursor_survives_a_restart(
    api: Api, db: asyncpg.Connection, fresh_database_url: str
) -> None:
    hook = await published_script(api)
    await subscribe(api, "*", "Script.Published", hook)
    await api.publish(await draft_script(api), 1)
    await drain(db)
    await db.close()

    restarted = await asyncpg.connect(**asyncpg_connect_kwargs(fresh_database_url))
    try:
        redone = await drain(restarted)
        await api.publish(await draft_script(api), 1)
        await drain(restarted)
    finally:
        await restarted.close()

    assert redone == 0
    assert len(await hook_runs(api)) == 2


async def test_the_worker_dispatches_by_itself(api: Api, hook_settings: Settings) -> None:
    hook = await published_script(api)
    subject = await draft_script(api)
    await subscribe(api, subject, "Script.Published", hook)
    assert hook_settings.database_url is not None
    url = hook_settings.database_url
    dispatcher = Standalone(lambda shared: LifecycleHookDispatcher(hook_settings, shared), url)
    await dispatcher.start()
    try:
        await api.publish(subject, 1)
        runs = await eventually(lambda: hook_runs(api), lambda runs: len(runs) == 1, timeout=10)
    finally:
        await dispatcher.stop()

    assert runs[0]["scriptId"] == hook


async def test_an_archived_subscriber_is_skipped_and_recorded(api: Api, db: asyncpg.Connection) -> None:
    hook = await published_script(api)
    subject = await draft_script(api)
    await subscribe(api, subject, "Script.Published", hook)
    assert (await api.patch(f"/scripts/{hook}", json={"status": "ARCHIVED"})).status_code == 200

    await api.publish(subject, 1)
    await drain(db)

    assert await hook_runs(api) == []
    (answer,) = await db.fetch("SELECT answer::text FROM incoming_events WHERE tenant_id = $1", TENANT)
    assert json.loads(answer["answer"])["skipped"] == [{"scriptId": hook, "reason": "SCRIPT_ARCHIVED"}]
