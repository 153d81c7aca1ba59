"""POST /events: store the event, start one EVENT_TRIGGER run per matching script, replay a
repeated sourceEventId; traceability from the event to its runs and their steps."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import app.domain.incoming_events.services as incoming_services
from tests.support.api import ADMIN_TOKEN, Api, assert_error
from tests.support.server import ServerProcess
from tests.support.sse import EventStream, data
from tests.support.triggers import (
    draft_script,
    event_type,
    post_event,
    published_script,
    runs_of,
    subscribe,
)


async def test_an_event_starts_a_run_of_the_subscribed_script(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    await subscribe(api, "sensor-1", name, script_id)

    response = await api.post(
        "/events", json={"eventName": name, "subject": "sensor-1", "payload": {"temperature": 21.5}}
    )

    assert response.status_code == 202, response.text
    answer = response.json()
    assert set(answer) == {"eventId", "runs", "deferred", "suppressed", "skipped"}
    assert (answer["deferred"], answer["suppressed"]) == ([], [])
    assert uuid.UUID(answer["eventId"]).version == 7
    assert answer["skipped"] == []
    (started,) = answer["runs"]
    assert started["scriptId"] == script_id
    run = (await api.get(f"/runs/{started['runId']}")).json()
    assert (run["triggerType"], run["triggeringEventId"], run["status"]) == (
        "EVENT_TRIGGER",
        answer["eventId"],
        "RUNNING",
    )
    assert (run["scheduleId"], run["plannedAt"]) == (None, None)
    assert run["eventData"] == {
        "eventName": name,
        "subject": "sensor-1",
        "payload": {"temperature": 21.5},
        "sourceEventId": None,
    }


async def test_runs_start_on_the_active_version(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    await api.create_version(script_id, {"nodes": [], "edges": []})  # version 2, not published
    await subscribe(api, "sensor-1", name, script_id)

    answer = await post_event(api, name, "sensor-1")

    run = (await api.get(f"/runs/{answer['runs'][0]['runId']}")).json()
    assert run["version"] == 1


async def test_subscriptions_on_the_subject_and_on_star_both_match(api: Api) -> None:
    name = await event_type(api)
    on_subject, on_star = await published_script(api), await published_script(api)
    await subscribe(api, "sensor-1", name, on_subject)
    await subscribe(api, "*", name, on_star)

    answer = await post_event(api, name, "sensor-1")

    assert sorted(r["scriptId"] for r in answer["runs"]) == sorted([on_subject, on_star])


async def test_a_script_subscribed_twice_starts_once(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    await subscribe(api, "sensor-1", name, script_id)
    await subscribe(api, "*", name, script_id)

    answer = await post_event(api, name, "sensor-1")

    assert [r["scriptId"] for r in answer["runs"]] == [script_id]


async def test_only_active_subscriptions_on_the_subject_and_event_match(api: Api) -> None:
    name, other_name = await event_type(api), await event_type(api)
    script_id = await published_script(api)
    removed = await subscribe(api, "sensor-1", name, script_id)
    await api.delete(f"/subjects/sensor-1/subscriptions/triggers/{removed['id']}")
    await subscribe(api, "sensor-2", name, script_id)
    await subscribe(api, "sensor-1", other_name, script_id)

    answer = await post_event(api, name, "sensor-1")

    assert answer["runs"] == []
    assert answer["skipped"] == []


async def test_a_script_without_an_active_version_is_skipped_and_reported(api: Api) -> None:
    name = await event_type(api)
    draft, published = await draft_script(api), await published_script(api)
    await subscribe(api, "sensor-1", name, draft)
    await subscribe(api, "*", name, published)

    answer = await post_event(api, name, "sensor-1")

    assert [r["scriptId"] for r in answer["runs"]] == [published]
    assert answer["skipped"] == [{"scriptId": draft, "reason": "NO_ACTIVE_VERSION"}]
    assert await runs_of(api, scriptId=draft) == []


async def test_an_event_nobody_subscribed_to_is_stored_and_starts_nothing(api: Api) -> None:
    name = await event_type(api)

    answer = await post_event(api, name, "sensor-1", payload={"x": 1})

    assert (answer["runs"], answer["skipped"]) == ([], [])
    stored = (await api.get(f"/events/{answer['eventId']}")).json()
    assert (stored["eventName"], stored["subject"], stored["payload"]) == (name, "sensor-1", {"x": 1})


async def test_an_unknown_event_name_is_404(api: Api) -> None:
    response = await api.post("/events", json={"eventName": "NOT_REGISTERED", "subject": "sensor-1"})

    assert_error(response, 404, "NOT_FOUND")


async def test_a_built_in_lifecycle_name_is_a_known_event(api: Api) -> None:
    response = await api.post("/events", json={"eventName": "Script.Published", "subject": "x"})

    assert response.status_code == 202, response.text


async def test_malformed_events_are_400(api: Api) -> None:
    name = await event_type(api)
    bodies = [
        {"eventName": [name], "subject": "sensor-1"},
        {"eventName": name},
        {"eventName": name, "subject": "not a subject"},
        {"eventName": name, "subject": "sensor-1", "sourceEventId": ""},
        {"eventName": name, "subject": "sensor-1", "unknown": 1},
    ]

    for body in bodies:
        assert_error(await api.post("/events", json=body), 400, "VALIDATION_ERROR")


async def test_the_same_source_event_id_again_starts_nothing_and_answers_the_first_answer(api: Api) -> None:
    name = await event_type(api)
    await subscribe(api, "sensor-1", name, await published_script(api))
    body = {"eventName": name, "subject": "sensor-1", "sourceEventId": "sensor-1:0001"}

    first = await api.post("/events", json=body)
    again = await api.post("/events", json={**body, "payload": {"changed": True}})

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert len(await runs_of(api, triggerType="EVENT_TRIGGER")) == 1


async def test_ten_concurrent_posts_of_one_source_event_id_make_one_event(api: Api) -> None:
    name = await event_type(api)
    await subscribe(api, "sensor-1", name, await published_script(api))
    body = {"eventName": name, "subject": "sensor-1", "sourceEventId": f"burst-{uuid.uuid4()}"}

    responses = await asyncio.gather(*(api.post("/events", json=body) for _ in range(10)))

    assert {r.status_code for r in responses} == {202}
    assert len({r.content for r in responses}) == 1
    assert len(await runs_of(api, triggerType="EVENT_TRIGGER")) == 1


async def test_source_event_ids_are_per_tenant(api: Api, other_api: Api) -> None:
    name = "SHARED_EVENT"
    await event_type(api, name)
    await event_type(other_api, name)

    mine = await post_event(api, name, "s", sourceEventId="same-id")
    theirs = await post_event(other_api, name, "s", sourceEventId="same-id")

    assert mine["eventId"] != theirs["eventId"]


async def test_another_tenants_subscriptions_do_not_match(api: Api, other_api: Api) -> None:
    name = "SHARED_EVENT"
    await event_type(api, name)
    await event_type(other_api, name)
    await subscribe(other_api, "sensor-1", name, await published_script(other_api))

    answer = await post_event(api, name, "sensor-1")

    assert answer["runs"] == []


async def test_traceability_from_the_event_to_its_runs_and_their_steps(api: Api) -> None:
    name = await event_type(api)
    first, second = await published_script(api), await published_script(api)
    await subscribe(api, "sensor-1", name, first)
    await subscribe(api, "*", name, second)
    answer = await post_event(api, name, "sensor-1")
    await post_event(api, name, "sensor-1")  # another event, other runs
    step = {"nodeId": "greet", "stepType": "say", "executedAt": "2026-03-01T10:00:00.000Z"}
    for run in answer["runs"]:
        assert (await api.post(f"/runs/{run['runId']}/steps", json=[step])).status_code == 201

    traced = await runs_of(api, triggeringEventId=answer["eventId"])

    assert sorted(r["id"] for r in traced) == sorted(r["runId"] for r in answer["runs"])
    for run in traced:
        detail = (await api.get(f"/runs/{run['id']}")).json()
        assert [s["nodeId"] for s in detail["steps"]] == ["greet"]
    stored = (await api.get(f"/events/{answer['eventId']}")).json()
    assert stored["runs"] == answer["runs"]


async def test_get_event_of_another_tenant_is_404(api: Api, other_api: Api) -> None:
    name = await event_type(api)
    answer = await post_event(api, name, "sensor-1")

    assert_error(await other_api.get(f"/events/{answer['eventId']}"), 404, "NOT_FOUND")
    assert_error(await api.get(f"/events/{uuid.uuid4()}"), 404, "NOT_FOUND")


async def test_the_events_stream_route_still_answers(api: Api) -> None:
    response = await api.get("/events/stream", params={"since": "x"})

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_each_started_run_has_its_run_started_event_with_the_requests_correlation(
    api: Api, tenant: str, live_server: ServerProcess
) -> None:
    name = await event_type(api)
    await subscribe(api, "sensor-1", name, await published_script(api))
    await subscribe(api, "*", name, await published_script(api))
    correlation_id = str(uuid.uuid4())
    response = await api.post(
        "/events",
        json={"eventName": name, "subject": "sensor-1"},
        headers={"Correlation-Id": correlation_id},
    )
    started = {r["runId"] for r in response.json()["runs"]}

    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": tenant}
    async with EventStream(
        live_server.url, params={"correlationId": correlation_id}, headers=headers
    ) as stream:
        frames = await stream.until(lambda seen: len(seen) == 2)

    assert {f.event for f in frames} == {"Run.Started"}
    assert {data(f)["payload"]["runId"] for f in frames} == started
    assert {data(f)["payload"]["triggerType"] for f in frames} == {"EVENT_TRIGGER"}


async def test_a_failure_after_the_runs_started_leaves_neither_event_nor_runs(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = await event_type(api)
    await subscribe(api, "sensor-1", name, await published_script(api))
    body = {"eventName": name, "subject": "sensor-1", "sourceEventId": "atomic-1"}
    real_start = incoming_services.start_active_runs

    async def start_then_fail(*args: object, **kwargs: object) -> object:
        await real_start(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("the database went away")

    monkeypatch.setattr(incoming_services, "start_active_runs", start_then_fail)
    failed = await api.post("/events", json=body)
    monkeypatch.undo()
    retried = await api.post("/events", json=body)

    assert_error(failed, 500, "INTERNAL_ERROR")
    assert retried.status_code == 202
    assert len(retried.json()["runs"]) == 1
    assert [r["id"] for r in await runs_of(api)] == [retried.json()["runs"][0]["runId"]]


async def test_an_idempotency_key_replays_the_answer_and_starts_nothing_more(api: Api) -> None:
    name = await event_type(api)
    await subscribe(api, "sensor-1", name, await published_script(api))
    headers = {"Idempotency-Key": f"evt-{uuid.uuid4()}"}
    body = {"eventName": name, "subject": "sensor-1"}

    first = await api.post("/events", json=body, headers=headers)
    again = await api.post("/events", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert len(await runs_of(api, triggerType="EVENT_TRIGGER")) == 1
