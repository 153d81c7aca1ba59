"""Execution reports: PUT /scripts/{id}/runs/triggered/{eventId} and
PUT /scripts/{id}/runs/scheduled/{scheduleId} record a whole execution, idempotently."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.support.api import Api, assert_error
from tests.support.runs import get_run
from tests.support.triggers import draft_script, event_type, post_event, published_script, runs_of, subscribe

STEPS = [
    {"nodeId": "greet", "stepType": "say", "nextNodeId": "pause", "executedAt": "2026-03-01T10:00:00.120Z"},
    {
        "nodeId": "confirm",
        "stepType": "closedQuestion",
        "executedAt": "2026-03-01T10:00:04.500Z",
        "data": {"dataType": "closedQuestionData", "answer": "yes", "probability": 0.9},
    },
]
PLANNED_AT = "2026-03-01T09:00:00.000Z"


def report(**fields: Any) -> dict[str, Any]:
    return {"version": 1, "steps": STEPS, **fields}


async def unsubscribed_event(api: Api) -> str:
    """An incoming event that started no run."""
    return (await post_event(api, await event_type(api), "sensor-1"))["eventId"]


async def schedule_of(api: Api, script_id: str) -> str:
    # A fire time far away: the shared database's live worker leaves it alone.
    response = await api.post(f"/scripts/{script_id}/schedules", json={"cron": "0 9 1 1 *"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def put_triggered(api: Api, script_id: str, event_id: str, body: dict[str, Any]):
    return await api.put(f"/scripts/{script_id}/runs/triggered/{event_id}", json=body)


async def put_scheduled(api: Api, script_id: str, schedule_id: str, body: dict[str, Any]):
    return await api.put(f"/scripts/{script_id}/runs/scheduled/{schedule_id}", json=body)


# ---- triggered --------------------------------------------------------------------------------


async def test_a_report_completes_the_run_the_event_started(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    await subscribe(api, "sensor-1", name, script_id)
    answer = await post_event(api, name, "sensor-1")

    response = await put_triggered(
        api, script_id, answer["eventId"], report(status="SUCCEEDED", endedAt="2099-01-01T00:00:00.000Z")
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    (run,) = await runs_of(api, triggeringEventId=answer["eventId"])
    assert run["id"] == answer["runs"][0]["runId"]
    detail = await get_run(api, run["id"])
    assert (detail["status"], detail["endedAt"]) == ("SUCCEEDED", "2099-01-01T00:00:00.000Z")
    assert [s["nodeId"] for s in detail["steps"]] == ["greet", "confirm"]


async def test_a_report_without_a_run_creates_the_event_triggered_run(api: Api) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)

    response = await put_triggered(
        api, script_id, event_id, report(startedAt="2026-03-01T10:00:00.000Z", status="FAILED")
    )

    assert response.status_code == 204, response.text
    (run,) = await runs_of(api, triggeringEventId=event_id)
    assert (run["triggerType"], run["scriptId"], run["version"], run["status"]) == (
        "EVENT_TRIGGER",
        script_id,
        1,
        "FAILED",
    )
    assert run["startedAt"] == "2026-03-01T10:00:00.000Z"
    assert run["startedById"] == "alice"


async def test_a_report_may_create_a_run_of_an_unpublished_version(api: Api) -> None:
    script_id = await draft_script(api)
    event_id = await unsubscribed_event(api)

    response = await put_triggered(api, script_id, event_id, report())

    assert response.status_code == 204, response.text
    (run,) = await runs_of(api, triggeringEventId=event_id)
    assert (run["version"], run["status"]) == (1, "RUNNING")


async def test_a_retried_report_creates_no_second_run_and_no_duplicate_step(api: Api) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)
    body = report(status="SUCCEEDED")

    first = await put_triggered(api, script_id, event_id, body)
    second = await put_triggered(api, script_id, event_id, body)

    assert (first.status_code, second.status_code) == (204, 204)
    (run,) = await runs_of(api, triggeringEventId=event_id)
    assert len((await get_run(api, run["id"]))["steps"]) == 2


async def test_concurrent_retries_of_one_report_make_one_run_and_one_set_of_steps(api: Api) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)

    responses = await asyncio.gather(*(put_triggered(api, script_id, event_id, report()) for _ in range(8)))

    assert {r.status_code for r in responses} == {204}
    (run,) = await runs_of(api, triggeringEventId=event_id)
    assert len((await get_run(api, run["id"]))["steps"]) == 2


async def test_reports_in_parts_add_only_new_steps(api: Api) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)

    await put_triggered(api, script_id, event_id, report(steps=STEPS[:1]))
    await put_triggered(api, script_id, event_id, report(steps=STEPS, status="SUCCEEDED"))

    (run,) = await runs_of(api, triggeringEventId=event_id)
    detail = await get_run(api, run["id"])
    assert [s["nodeId"] for s in detail["steps"]] == ["greet", "confirm"]
    assert detail["status"] == "SUCCEEDED"


async def test_new_steps_or_another_status_for_a_finished_run_are_409_run_finished(api: Api) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)
    await put_triggered(api, script_id, event_id, report(steps=STEPS[:1], status="SUCCEEDED"))

    more_steps = await put_triggered(api, script_id, event_id, report(status="SUCCEEDED"))
    other_status = await put_triggered(api, script_id, event_id, report(steps=STEPS[:1], status="FAILED"))

    assert_error(more_steps, 409, "RUN_FINISHED")
    assert_error(other_status, 409, "RUN_FINISHED")


async def test_steps_are_validated_like_posted_steps(api: Api) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)
    wrong_type = {**STEPS[0], "stepType": "wait"}
    unknown_node = {**STEPS[0], "nodeId": "nowhere"}
    wrong_data = {**STEPS[0], "data": {"dataType": "reportData", "sent": True, "message": "x"}}

    cases = [
        (wrong_type, "STEP_TYPE_MISMATCH"),
        (unknown_node, "NODE_NOT_IN_VERSION"),
        (wrong_data, "STEP_DATA_MISMATCH"),
    ]
    for step, code in cases:
        body = assert_error(await put_triggered(api, script_id, event_id, report(steps=[step])), 422, code)
        assert body["details"][0]["field"].startswith("steps[0]")
    # Rejected means unchanged: the refused report left no run behind.
    assert await runs_of(api, triggeringEventId=event_id) == []


async def test_a_refused_scheduled_report_leaves_no_run(api: Api) -> None:
    script_id = await published_script(api)
    schedule_id = await schedule_of(api, script_id)
    unknown_node = {**STEPS[0], "nodeId": "nowhere"}

    refused = await put_scheduled(
        api, script_id, schedule_id, report(plannedAt=PLANNED_AT, steps=[unknown_node])
    )

    assert_error(refused, 422, "NODE_NOT_IN_VERSION")
    assert await runs_of(api, scheduleId=schedule_id) == []


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1, "steps": []},
        {"version": 1},
        {"steps": STEPS},
        {"version": 1, "steps": STEPS, "status": "RUNNING"},
        {"version": 1, "steps": STEPS, "endedAt": "2026-03-01T10:00:00Z"},
        {
            "version": 1,
            "steps": STEPS,
            "status": "SUCCEEDED",
            "startedAt": "2026-03-01T10:00:00Z",
            "endedAt": "2026-03-01T09:00:00Z",
        },
        {"version": 1, "steps": [{**STEPS[0], "executedAt": "2026-03-01T10:00:00"}]},
    ],
    ids=[
        "no-steps",
        "steps-missing",
        "version-missing",
        "not-final",
        "end-without-status",
        "ends-before-start",
        "naive-time",
    ],
)
async def test_a_malformed_report_is_400(api: Api, body: dict[str, Any]) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)

    assert_error(await put_triggered(api, script_id, event_id, body), 400, "VALIDATION_ERROR")


async def test_a_version_the_script_does_not_have_is_422(api: Api) -> None:
    script_id = await published_script(api)
    event_id = await unsubscribed_event(api)

    response = await put_triggered(api, script_id, event_id, report(version=9))

    assert_error(response, 422, "VERSION_NOT_FOUND")


async def test_a_version_other_than_the_runs_is_409(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    await api.create_version(script_id, {"nodes": [], "edges": []})
    await subscribe(api, "sensor-1", name, script_id)
    answer = await post_event(api, name, "sensor-1")

    response = await put_triggered(api, script_id, answer["eventId"], report(version=2))

    assert_error(response, 409, "CONFLICT")


async def test_an_unknown_event_is_404(api: Api) -> None:
    script_id = await published_script(api)

    assert_error(await put_triggered(api, script_id, str(uuid.uuid4()), report()), 404, "NOT_FOUND")


async def test_an_unknown_script_is_404(api: Api) -> None:
    event_id = await unsubscribed_event(api)

    assert_error(await put_triggered(api, str(uuid.uuid4()), event_id, report()), 404, "NOT_FOUND")


async def test_another_tenants_event_or_script_is_404(api: Api, other_api: Api) -> None:
    script_id, event_id = await published_script(api), await unsubscribed_event(api)
    their_script, their_event = await published_script(other_api), await unsubscribed_event(other_api)

    assert_error(await put_triggered(api, script_id, their_event, report()), 404, "NOT_FOUND")
    assert_error(await put_triggered(api, their_script, event_id, report()), 404, "NOT_FOUND")
    assert_error(await put_triggered(other_api, script_id, event_id, report()), 404, "NOT_FOUND")


# ---- scheduled --------------------------------------------------------------------------------


async def test_a_scheduled_report_creates_the_run_of_the_fire_time(api: Api) -> None:
    script_id = await published_script(api)
    schedule_id = await schedule_of(api, script_id)

    response = await put_scheduled(
        api, script_id, schedule_id, report(plannedAt=PLANNED_AT, status="SUCCEEDED")
    )

    assert response.status_code == 204, response.text
    (run,) = await runs_of(api, triggerType="SCHEDULED_TASK", scriptId=script_id)
    assert (run["scheduleId"], run["plannedAt"], run["status"]) == (schedule_id, PLANNED_AT, "SUCCEEDED")
    assert run["triggeringEventId"] is None
    assert len((await get_run(api, run["id"]))["steps"]) == 2


async def test_a_retried_scheduled_report_creates_no_second_run(api: Api) -> None:
    script_id = await published_script(api)
    schedule_id = await schedule_of(api, script_id)
    body = report(plannedAt=PLANNED_AT)

    responses = await asyncio.gather(*(put_scheduled(api, script_id, schedule_id, body) for _ in range(5)))

    assert {r.status_code for r in responses} == {204}
    (run,) = await runs_of(api, triggerType="SCHEDULED_TASK", scriptId=script_id)
    assert len((await get_run(api, run["id"]))["steps"]) == 2


async def test_each_fire_time_has_its_own_run(api: Api) -> None:
    script_id = await published_script(api)
    schedule_id = await schedule_of(api, script_id)

    await put_scheduled(api, script_id, schedule_id, report(plannedAt=PLANNED_AT))
    await put_scheduled(api, script_id, schedule_id, report(plannedAt="2026-03-02T09:00:00.000Z"))

    assert len(await runs_of(api, triggerType="SCHEDULED_TASK", scriptId=script_id)) == 2


async def test_planned_at_is_required_for_a_scheduled_report(api: Api) -> None:
    script_id = await published_script(api)
    schedule_id = await schedule_of(api, script_id)

    assert_error(await put_scheduled(api, script_id, schedule_id, report()), 400, "VALIDATION_ERROR")


async def test_an_unknown_schedule_is_404(api: Api) -> None:
    script_id = await published_script(api)

    response = await put_scheduled(api, script_id, str(uuid.uuid4()), report(plannedAt=PLANNED_AT))

    assert_error(response, 404, "NOT_FOUND")


async def test_a_schedule_of_another_script_is_404(api: Api) -> None:
    schedule_id = await schedule_of(api, await published_script(api))
    other_script = await published_script(api)

    response = await put_scheduled(api, other_script, schedule_id, report(plannedAt=PLANNED_AT))

    assert_error(response, 404, "NOT_FOUND")


async def test_another_tenants_schedule_is_404(api: Api, other_api: Api) -> None:
    script_id = await published_script(other_api)
    schedule_id = await schedule_of(other_api, script_id)

    response = await put_scheduled(api, script_id, schedule_id, report(plannedAt=PLANNED_AT))

    assert_error(response, 404, "NOT_FOUND")


async def test_a_deleted_schedules_existing_run_can_still_be_completed(api: Api) -> None:
    script_id = await published_script(api)
    schedule_id = await schedule_of(api, script_id)
    await put_scheduled(api, script_id, schedule_id, report(plannedAt=PLANNED_AT))
    assert (await api.delete(f"/schedules/{schedule_id}")).status_code == 204

    finished = await put_scheduled(
        api, script_id, schedule_id, report(plannedAt=PLANNED_AT, status="SUCCEEDED")
    )
    new_fire = await put_scheduled(api, script_id, schedule_id, report(plannedAt="2026-03-02T09:00:00.000Z"))

    assert finished.status_code == 204
    assert_error(new_fire, 404, "NOT_FOUND")
