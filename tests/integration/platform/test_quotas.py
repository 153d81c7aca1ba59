"""Caps per script and per tenant (SPEC 11): schedules, trigger subscriptions and custom
endpoints stop at their limit with 409 QUOTA_EXCEEDED (race-free), a freed slot is usable again,
and a cron firing more often than SCHEDULE_MIN_INTERVAL_SECONDS is 400 naming `cron`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from app.server.core import create_app
from tests.conftest import make_settings
from tests.support.api import Api, assert_error, new_tenant
from tests.support.triggers import event_type, published_script


@pytest.fixture(scope="module")
async def capped(database_url: str) -> AsyncIterator[AsyncTestClient]:
    settings = make_settings(
        database_url,
        MAX_SCHEDULES_PER_SCRIPT="2",
        MAX_SUBSCRIPTIONS_PER_TENANT="2",
        MAX_ENDPOINTS_PER_TENANT="2",
        SCHEDULE_MIN_INTERVAL_SECONDS="300",
    )
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
def api(capped: AsyncTestClient) -> Api:
    return Api(capped, new_tenant())


async def test_a_script_has_at_most_its_schedules_and_a_deleted_one_frees_a_slot(api: Api) -> None:
    script = await published_script(api)
    url = f"/scripts/{script}/schedules"
    first = await api.post(url, json={"cron": "0 * * * *"})
    second = await api.post(url, json={"cron": "30 * * * *"})

    third = await api.post(url, json={"cron": "15 * * * *"})
    assert (await api.delete(f"/schedules/{first.json()['id']}")).status_code == 204
    again = await api.post(url, json={"cron": "15 * * * *"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert assert_error(third, 409, "QUOTA_EXCEEDED")["details"] == {"limit": 2}
    assert again.status_code == 201


async def test_concurrent_creations_never_pass_the_cap(api: Api) -> None:
    script = await published_script(api)
    responses = await asyncio.gather(
        *(api.post(f"/scripts/{script}/schedules", json={"cron": f"{m} * * * *"}) for m in range(6))
    )

    assert sorted(r.status_code for r in responses) == [201, 201, 409, 409, 409, 409]


async def test_a_tenant_has_at_most_its_active_subscriptions(api: Api) -> None:
    script = await published_script(api)
    names = [await event_type(api) for _ in range(3)]
    made = [
        await api.post(
            f"/subjects/s-{i}/subscriptions/triggers", json={"eventName": name, "scriptId": script}
        )
        for i, name in enumerate(names)
    ]

    assert [r.status_code for r in made[:2]] == [201, 201]
    assert_error(made[2], 409, "QUOTA_EXCEEDED")
    # A deactivated subscription does not count.
    assert (
        await api.delete(f"/subjects/s-0/subscriptions/triggers/{made[0].json()['id']}")
    ).status_code == 204
    retried = await api.post(
        "/subjects/s-2/subscriptions/triggers", json={"eventName": names[2], "scriptId": script}
    )
    assert retried.status_code == 201


async def test_a_tenant_has_at_most_its_endpoints(api: Api) -> None:
    script = await published_script(api)
    made = [
        await api.post(
            f"/scripts/{script}/endpoints",
            json={"method": "POST", "route": f"hook-{i}", "authRequired": False},
        )
        for i in range(3)
    ]

    assert [r.status_code for r in made[:2]] == [201, 201]
    assert_error(made[2], 409, "QUOTA_EXCEEDED")


@pytest.mark.parametrize("cron", ["* * * * *", "*/2 * * * *", "0,1 9 * * *"])
async def test_a_cron_firing_more_often_than_the_minimum_interval_is_refused(api: Api, cron: str) -> None:
    script = await published_script(api)

    response = await api.post(f"/scripts/{script}/schedules", json={"cron": cron})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "cron"


async def test_a_cron_at_the_minimum_interval_is_accepted_and_a_change_is_checked_too(api: Api) -> None:
    script = await published_script(api)
    created = await api.post(f"/scripts/{script}/schedules", json={"cron": "*/5 * * * *"})

    changed = await api.patch(f"/schedules/{created.json()['id']}", json={"cron": "*/3 * * * *"})

    assert created.status_code == 201, created.text
    assert_error(changed, 400, "VALIDATION_ERROR")
