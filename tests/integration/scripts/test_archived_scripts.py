"""Archived scripts start nothing (SPEC 7): POST /runs and /hooks answer 409 SCRIPT_ARCHIVED,
incoming events list them as skipped; runs already started may still report and finish; a
script set back to PUBLISHED runs again. (Schedules and lifecycle hooks: test_scheduler.py and
test_lifecycle_hooks.py.)"""

from __future__ import annotations

from tests.support.api import Api, assert_error
from tests.support.triggers import event_type, published_script, runs_of, subscribe


async def archive(api: Api, script_id: str, status: str = "ARCHIVED") -> None:
    response = await api.patch(f"/scripts/{script_id}", json={"status": status})
    assert response.status_code == 200, response.text


async def test_post_runs_on_an_archived_script_is_409_and_starts_nothing(api: Api) -> None:
    script_id = await published_script(api)
    await archive(api, script_id)

    refused = await api.post("/runs", json={"scriptId": script_id, "version": 1})

    assert_error(refused, 409, "SCRIPT_ARCHIVED")
    assert await runs_of(api, scriptId=script_id) == []


async def test_an_archived_script_set_back_to_published_runs_again(api: Api) -> None:
    script_id = await published_script(api)
    await archive(api, script_id)
    await archive(api, script_id, "PUBLISHED")

    started = await api.post("/runs", json={"scriptId": script_id, "version": 1})

    assert started.status_code == 201, started.text


async def test_a_run_started_before_the_archive_may_still_report_and_finish(api: Api) -> None:
    script_id = await published_script(api)
    run = (await api.post("/runs", json={"scriptId": script_id, "version": 1})).json()
    await archive(api, script_id)

    variables = await api.post(f"/runs/{run['id']}/vars", json=[{"key": "k", "strVal": "v"}])
    finished = await api.post(f"/runs/{run['id']}/finish", json={"status": "SUCCEEDED"})

    assert variables.status_code == 200, variables.text
    assert finished.status_code == 200, finished.text


async def test_an_incoming_event_skips_an_archived_subscriber(api: Api) -> None:
    name = await event_type(api)
    archived, active = await published_script(api), await published_script(api)
    await subscribe(api, "sensor-1", name, archived)
    await subscribe(api, "*", name, active)
    await archive(api, archived)

    response = await api.post("/events", json={"eventName": name, "subject": "sensor-1"})

    assert response.status_code == 202, response.text
    body = response.json()
    assert [r["scriptId"] for r in body["runs"]] == [active]
    assert body["skipped"] == [{"scriptId": archived, "reason": "SCRIPT_ARCHIVED"}]
    assert await runs_of(api, scriptId=archived) == []


async def test_a_custom_endpoint_of_an_archived_script_is_409_and_starts_nothing(api: Api) -> None:
    script_id = await published_script(api)
    created = await api.post(
        f"/scripts/{script_id}/endpoints", json={"method": "POST", "route": "lead", "authRequired": False}
    )
    assert created.status_code == 201, created.text
    await archive(api, script_id)

    refused = await api.http.post(f"/hooks/{api.tenant}/lead", json={"x": 1})

    assert_error(refused, 409, "SCRIPT_ARCHIVED")
    assert await runs_of(api, scriptId=script_id) == []
