"""GET /runs: newest first, keyset pages, and every filter of SPEC section 5."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from tests.support.api import Api, assert_error
from tests.support.runs import script_with_version, start_run
from tests.support.triggers import event_type, post_event, subscribe


async def list_ids(api: Api, **params: str) -> list[str]:
    response = await api.get("/runs", params=params)
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["items"]]


async def start_runs(api: Api, count: int, script_id: str, version: int) -> list[dict]:
    runs = []
    for _ in range(count):
        runs.append(await start_run(api, script_id, version))
        await asyncio.sleep(0.002)  # distinct milliseconds, so startedAt alone orders them
    return runs


async def test_runs_are_listed_newest_first(api: Api) -> None:
    script_id, version = await script_with_version(api)
    runs = await start_runs(api, 3, script_id, version)

    assert await list_ids(api) == [r["id"] for r in reversed(runs)]


async def test_runs_are_paged_with_the_cursor_without_gaps_or_repeats(api: Api) -> None:
    script_id, version = await script_with_version(api)
    runs = await start_runs(api, 5, script_id, version)
    seen: list[str] = []
    cursor: str | None = None

    for _ in range(3):
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/runs", params=params)).json()
        seen += [run["id"] for run in page["items"]]
        cursor = page["nextCursor"]

    assert seen == [r["id"] for r in reversed(runs)]
    assert cursor is None


async def test_runs_with_the_same_start_time_are_ordered_by_id(api: Api) -> None:
    script_id, version = await script_with_version(api)
    runs = [await start_run(api, script_id, version) for _ in range(4)]
    expected = sorted(runs, key=lambda r: (r["startedAt"], r["id"]), reverse=True)

    first = (await api.get("/runs", params={"limit": "2"})).json()
    second = (await api.get("/runs", params={"limit": "2", "cursor": first["nextCursor"]})).json()

    assert [r["id"] for r in first["items"] + second["items"]] == [r["id"] for r in expected]


async def test_runs_are_filtered_by_script(api: Api) -> None:
    wanted = await start_run(api)
    await start_run(api)

    assert await list_ids(api, scriptId=wanted["scriptId"]) == [wanted["id"]]


async def test_runs_are_filtered_by_status(api: Api) -> None:
    script_id, version = await script_with_version(api)
    failed, running = await start_runs(api, 2, script_id, version)
    await api.post(f"/runs/{failed['id']}/finish", json={"status": "FAILED"})

    assert await list_ids(api, status="FAILED") == [failed["id"]]
    assert await list_ids(api, status="RUNNING") == [running["id"]]
    assert await list_ids(api, status="SUCCEEDED") == []


async def test_runs_are_filtered_by_trigger_type_and_triggering_event(api: Api) -> None:
    script_id, version = await script_with_version(api)
    await api.publish(script_id, version)
    by_hand = await start_run(api, script_id, version)
    name = await event_type(api)
    await subscribe(api, "device-1", name, script_id)
    event = await post_event(api, name, "device-1", payload={"room": "kitchen"})
    await post_event(api, name, "device-1", payload={"room": "hall"})

    assert await list_ids(api, triggerType="API_RUN") == [by_hand["id"]]
    assert len(await list_ids(api, triggerType="EVENT_TRIGGER")) == 2
    assert await list_ids(api, triggerType="SCHEDULED_TASK") == []
    (event_run,) = (await api.get("/runs", params={"triggeringEventId": event["eventId"]})).json()["items"]
    assert (event_run["triggerType"], event_run["triggeringEventId"]) == ("EVENT_TRIGGER", event["eventId"])
    assert event_run["startedById"] == "alice"
    assert event_run["eventData"]["payload"] == {"room": "kitchen"}


async def test_from_is_inclusive_and_to_exclusive_on_started_at(api: Api) -> None:
    script_id, version = await script_with_version(api)
    first, second, third = await start_runs(api, 3, script_id, version)

    between = await list_ids(api, **{"from": second["startedAt"], "to": third["startedAt"]})

    assert between == [second["id"]]
    assert await list_ids(api, **{"from": third["startedAt"]}) == [third["id"]]
    assert await list_ids(api, to=second["startedAt"]) == [first["id"]]


async def test_times_without_an_offset_or_as_numbers_are_400(api: Api) -> None:
    run = await start_run(api)
    started = datetime.datetime.fromisoformat(run["startedAt"].replace("Z", "+00:00"))

    for value in (started.replace(tzinfo=None).isoformat(), "0.5", "1767225600"):
        response = await api.get("/runs", params={"from": value})
        body = assert_error(response, 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "from"


async def test_filters_combine(api: Api) -> None:
    script_id, version = await script_with_version(api)
    done, running = await start_runs(api, 2, script_id, version)
    await start_run(api)
    await api.post(f"/runs/{done['id']}/finish", json={"status": "SUCCEEDED"})

    found = await list_ids(api, scriptId=script_id, status="RUNNING", triggerType="API_RUN")

    assert found == [running["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "DONE"},
        {"triggerType": "BY_HAND"},
        {"scriptId": "not-a-uuid"},
        {"triggeringEventId": "42"},
        {"from": "yesterday"},
        {"to": "2026-13-01T00:00:00Z"},
        {"limit": "0"},
        {"limit": "201"},
        {"cursor": "not-a-cursor"},
        {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    ],
    ids=[
        "status",
        "trigger-type",
        "script-id",
        "event-id",
        "from",
        "to",
        "limit-zero",
        "limit-too-large",
        "cursor",
        "from-after-to",
    ],
)
async def test_a_bad_filter_is_400(api: Api, params: dict[str, str]) -> None:
    assert_error(await api.get("/runs", params=params), 400, "VALIDATION_ERROR")


async def test_a_tenant_id_query_for_another_tenant_is_403(api: Api) -> None:
    assert_error(await api.get("/runs", params={"tenantId": "someone-else"}), 403, "TENANT_MISMATCH")


async def test_a_tenant_id_query_for_the_same_tenant_is_accepted(api: Api, tenant: str) -> None:
    run = await start_run(api)

    assert await list_ids(api, tenantId=tenant) == [run["id"]]
