"""The scheduler on a database of its own: one run per fire time, catch-up, retries; and two
worker processes sharing a schedule that fires every second."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.server.core import create_app
from app.worker.scheduler import Scheduler
from tests.conftest import make_settings, process_env
from tests.support.api import Api
from tests.support.server import ServerProcess
from tests.support.triggers import draft_script, published_script, runs_of
from tests.support.waiting import eventually
from tests.support.workers import Standalone

TENANT = "acme"
SECOND = datetime.timedelta(seconds=1)


def parse(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def stamp(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture
def scheduler_settings(fresh_database_url: str) -> Settings:
    return make_settings(
        fresh_database_url,
        SCHEDULER_CATCH_UP_SECONDS="60",
        SCHEDULER_RETRY_BASE_SECONDS="5",
        SCHEDULER_MAX_ATTEMPTS="3",
        SCHEDULER_POLL_SECONDS="0.05",
        # These tests schedule every second (a six-field cron) to see fires without waiting.
        SCHEDULE_MIN_INTERVAL_SECONDS="0",
    )


@pytest.fixture
async def api(scheduler_settings: Settings) -> AsyncIterator[Api]:
    app = create_app(scheduler_settings)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield Api(client, TENANT)


def new_scheduler(settings: Settings) -> Standalone[Scheduler]:
    assert settings.database_url is not None
    url = settings.database_url
    return Standalone(lambda shared: Scheduler(settings, shared), url)


@pytest.fixture
async def scheduler(scheduler_settings: Settings) -> AsyncIterator[Standalone[Scheduler]]:
    scheduler = new_scheduler(scheduler_settings)
    await scheduler.open()
    yield scheduler
    await scheduler.stop()


async def schedule(api: Api, script_id: str, cron: str, **body: Any) -> tuple[str, datetime.datetime]:
    """A new schedule and its first fire time."""
    response = await api.post(f"/scripts/{script_id}/schedules", json={"cron": cron, **body})
    assert response.status_code == 201, response.text
    created = response.json()
    return created["id"], parse(created["nextFireTimes"][0])


async def scheduled_runs(api: Api) -> list[dict[str, Any]]:
    return sorted(await runs_of(api, triggerType="SCHEDULED_TASK"), key=lambda r: r["plannedAt"])


async def test_a_due_fire_time_starts_one_scheduled_run_of_the_active_version(
    api: Api, scheduler: Scheduler
) -> None:
    script_id = await published_script(api)
    schedule_id, first = await schedule(api, script_id, "*/5 * * * *")

    early = await scheduler.run_once(now=first - SECOND)
    due = await scheduler.run_once(now=first)
    again = await scheduler.run_once(now=first)

    assert (early, due, again) == (0, 1, 0)
    (run,) = await scheduled_runs(api)
    assert (run["scriptId"], run["version"], run["scheduleId"], run["plannedAt"]) == (
        script_id,
        1,
        schedule_id,
        stamp(first),
    )
    assert (run["status"], run["triggeringEventId"]) == ("RUNNING", None)
    assert run["eventData"] == {"cron": "*/5 * * * *", "timezone": "UTC", "catchUp": False}
    assert (await api.get(f"/schedules/{schedule_id}")).json()["lastFiredAt"] == stamp(first)


async def test_concurrent_passes_start_each_fire_time_once(
    api: Api, scheduler: Scheduler, scheduler_settings: Settings
) -> None:
    script_id = await published_script(api)
    firsts = [(await schedule(api, script_id, "* * * * *"))[1] for _ in range(20)]
    others = [new_scheduler(scheduler_settings) for _ in range(3)]
    for other in others:
        await other.open()
    try:
        now = max(firsts)
        await asyncio.gather(*(s.run_once(now=now) for s in [scheduler, *others]))
        await asyncio.gather(*(s.run_once(now=now) for s in [scheduler, *others]))
    finally:
        for other in others:
            await other.stop()

    runs = await scheduled_runs(api)
    assert len(runs) == 20
    assert len({(r["scheduleId"], r["plannedAt"]) for r in runs}) == 20


async def test_fire_times_late_within_the_catch_up_window_each_start_once(
    api: Api, scheduler: Scheduler
) -> None:
    _, first = await schedule(api, await published_script(api), "* * * * * *")

    await scheduler.run_once(now=first + 10 * SECOND)

    runs = await scheduled_runs(api)
    assert [r["plannedAt"] for r in runs] == [stamp(first + i * SECOND) for i in range(11)]
    assert {r["eventData"]["catchUp"] for r in runs} == {False}


async def test_after_a_long_outage_only_the_latest_missed_fire_time_starts(
    api: Api, scheduler: Scheduler
) -> None:
    _, first = await schedule(api, await published_script(api), "0 * * * *")
    outage_end = first + datetime.timedelta(hours=5, minutes=30)

    await scheduler.run_once(now=outage_end)
    await scheduler.run_once(now=first + datetime.timedelta(hours=6))

    runs = await scheduled_runs(api)
    assert [r["plannedAt"] for r in runs] == [
        stamp(first + datetime.timedelta(hours=5)),
        stamp(first + datetime.timedelta(hours=6)),
    ]
    assert [r["eventData"]["catchUp"] for r in runs] == [True, False]


async def test_a_fire_that_cannot_start_is_retried_with_backoff(api: Api, scheduler: Scheduler) -> None:
    script_id = await draft_script(api)
    schedule_id, first = await schedule(api, script_id, "* * * * *")

    assert await scheduler.run_once(now=first) == 1
    failing = (await api.get(f"/schedules/{schedule_id}")).json()
    assert await scheduler.run_once(now=first + SECOND) == 0  # backing off
    await api.publish(script_id, 1)
    assert await scheduler.run_once(now=first + 10 * SECOND) == 1

    assert failing["failedAttempts"] == 1
    assert "no active" in failing["lastError"]
    (run,) = await scheduled_runs(api)
    assert run["plannedAt"] == stamp(first)
    recovered = (await api.get(f"/schedules/{schedule_id}")).json()
    assert (recovered["failedAttempts"], recovered["lastError"]) == (0, None)


async def test_a_fire_is_given_up_after_the_last_attempt(api: Api, scheduler: Scheduler) -> None:
    schedule_id, first = await schedule(api, await draft_script(api), "0 * * * *")

    for seconds in (0, 20, 50):  # each pass after the previous one's backoff (5 s, then 10 s)
        assert await scheduler.run_once(now=first + seconds * SECOND) == 1
    after = await scheduler.run_once(now=first + 59 * SECOND)

    assert after == 0  # the schedule moved on to its next hour
    gave_up = (await api.get(f"/schedules/{schedule_id}")).json()
    assert gave_up["failedAttempts"] == 0
    assert gave_up["lastError"].startswith(f"gave up the fire at {stamp(first)} after 3 attempts")
    assert await scheduled_runs(api) == []


async def test_paused_and_deleted_schedules_do_not_fire(api: Api, scheduler: Scheduler) -> None:
    script_id = await published_script(api)
    paused, first = await schedule(api, script_id, "* * * * *")
    deleted, _ = await schedule(api, script_id, "* * * * *")
    await api.patch(f"/schedules/{paused}", json={"active": False})
    await api.delete(f"/schedules/{deleted}")

    assert await scheduler.run_once(now=first + 5 * SECOND) == 0
    assert await scheduled_runs(api) == []


async def test_the_scheduler_loop_fires_by_itself(api: Api, scheduler_settings: Settings) -> None:
    await schedule(api, await published_script(api), "* * * * * *")
    scheduler = new_scheduler(scheduler_settings)
    await scheduler.start()
    try:
        runs = await eventually(lambda: scheduled_runs(api), lambda runs: len(runs) >= 2, timeout=10)
    finally:
        await scheduler.stop()

    assert len({r["plannedAt"] for r in runs}) == len(runs)


async def test_two_worker_processes_start_exactly_one_run_per_fire_time(fresh_database_url: str) -> None:
    """A schedule due every second and two `scriptworks worker` processes for about 10 s."""
    env = process_env(fresh_database_url, SCHEDULER_POLL_SECONDS="0.2", SCHEDULE_MIN_INTERVAL_SECONDS="0")
    workers = [ServerProcess(env, command=["worker"]).start(wait_for_health=False) for _ in range(2)]
    app = create_app(make_settings(fresh_database_url, SCHEDULE_MIN_INTERVAL_SECONDS="0"))
    try:
        async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
            api = Api(client, TENANT)
            schedule_id, first = await schedule(api, await published_script(api), "* * * * * *")

            await eventually(lambda: scheduled_runs(api), lambda runs: len(runs) >= 10, timeout=40, every=0.2)
            await api.patch(f"/schedules/{schedule_id}", json={"active": False})
            runs = await scheduled_runs(api)
    finally:
        for worker in workers:
            worker.stop()

    planned = [parse(r["plannedAt"]) for r in runs]
    assert len(planned) == len(set(planned))  # never two runs of one fire time
    # ... and none missed: every second from the first fire time to the last has its run.
    assert planned == [first + i * SECOND for i in range(len(planned))]
    assert all(worker.process is not None and worker.process.returncode == 0 for worker in workers)


async def test_an_archived_script_starts_nothing_and_runs_again_once_unarchived(
    api: Api, scheduler: Scheduler
) -> None:
    script_id = await published_script(api)
    schedule_id, first = await schedule(api, script_id, "*/5 * * * *")
    archived = await api.patch(f"/scripts/{script_id}", json={"status": "ARCHIVED"})
    assert archived.status_code == 200, archived.text

    while_archived = await scheduler.run_once(now=first)
    skipped = (await api.get(f"/schedules/{schedule_id}")).json()
    assert (await api.patch(f"/scripts/{script_id}", json={"status": "PUBLISHED"})).status_code == 200
    following = first + 5 * 60 * SECOND
    await scheduler.run_once(now=following)

    assert while_archived == 1  # claimed, and passed over
    assert (skipped["lastFiredAt"], skipped["lastError"]) == (None, "the script is archived")
    assert [r["plannedAt"] for r in await scheduled_runs(api)] == [stamp(following)]
