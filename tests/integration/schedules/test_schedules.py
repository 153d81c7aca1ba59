"""Schedules: cron + IANA time zone + active, validated, with the next fire times shown."""

from __future__ import annotations

import calendar
import datetime
import re
import uuid
import zoneinfo
from typing import Any

import pytest

from tests.support.api import Api, assert_error
from tests.support.triggers import published_script

MILLISECOND_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
# Far-away fire times: the shared database's live worker has nothing to do with these.
YEARLY = "0 9 1 1 *"


def parse(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


async def create(api: Api, script_id: str, **body: Any) -> dict[str, Any]:
    response = await api.post(f"/scripts/{script_id}/schedules", json={"cron": YEARLY, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_a_schedule_shows_the_next_five_fire_times_in_its_zone(api: Api, tenant: str) -> None:
    script_id = await published_script(api)

    response = await api.post(
        f"/scripts/{script_id}/schedules", json={"cron": "0 9 * * *", "timezone": "America/New_York"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert uuid.UUID(body["id"]).version == 7
    assert (body["tenantId"], body["scriptId"], body["cron"], body["timezone"], body["active"]) == (
        tenant,
        script_id,
        "0 9 * * *",
        "America/New_York",
        True,
    )
    assert (body["lastFiredAt"], body["failedAttempts"], body["lastError"]) == (None, 0, None)
    fires = [parse(t) for t in body["nextFireTimes"]]
    assert len(fires) == 5
    assert all(MILLISECOND_UTC.match(t) for t in body["nextFireTimes"])
    zone = zoneinfo.ZoneInfo("America/New_York")
    assert {(f.astimezone(zone).hour, f.astimezone(zone).minute) for f in fires} == {(9, 0)}
    assert fires == sorted(fires)
    assert fires[0] > datetime.datetime.now(datetime.UTC)


async def test_timezone_defaults_to_utc_and_active_to_true(api: Api) -> None:
    body = await create(api, await published_script(api), cron="30 6 * * *")

    assert (body["timezone"], body["active"]) == ("UTC", True)
    assert {(parse(t).hour, parse(t).minute) for t in body["nextFireTimes"]} == {(6, 30)}


async def test_a_sixth_field_is_seconds(api: Api) -> None:
    body = await create(api, await published_script(api), cron="*/10 * * * * 15")

    fires = [parse(t) for t in body["nextFireTimes"]]
    assert {f.second for f in fires} == {15}
    assert all(f.minute % 10 == 0 for f in fires)


async def test_cron_aliases_and_extra_spaces_are_accepted(api: Api) -> None:
    script_id = await published_script(api)

    daily = await create(api, script_id, cron="@daily")
    spaced = await create(api, script_id, cron="  0   9 1 1   * ")

    assert {(parse(t).hour, parse(t).minute) for t in daily["nextFireTimes"]} == {(0, 0)}
    assert spaced["cron"] == YEARLY


@pytest.mark.parametrize(
    "cron",
    ["0 9 * *", "0 9 * * * * *", "61 * * * *", "0 25 * * *", "a b c d e", "H * * * *", "@often", ""],
)
async def test_a_bad_cron_is_400(api: Api, cron: str) -> None:
    response = await api.post(f"/scripts/{await published_script(api)}/schedules", json={"cron": cron})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "cron"


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "CEST", "../etc/passwd", "", "europe/berlin"])
async def test_a_bad_timezone_is_400(api: Api, timezone: str) -> None:
    response = await api.post(
        f"/scripts/{await published_script(api)}/schedules", json={"cron": YEARLY, "timezone": timezone}
    )

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "timezone"


def next_dst_change(zone: zoneinfo.ZoneInfo, after: datetime.datetime) -> datetime.datetime:
    """The first local day (at least 4 days ahead) on which the zone's UTC offset changes."""
    day = (after + datetime.timedelta(days=4)).astimezone(zone).replace(hour=12, minute=0, second=0)
    while True:
        following = day + datetime.timedelta(days=1)
        if day.utcoffset() != following.astimezone(zone).replace(hour=12).utcoffset():
            return following
        day = following


async def test_next_fire_times_follow_the_local_time_across_a_dst_change(api: Api) -> None:
    zone = zoneinfo.ZoneInfo("Europe/Berlin")
    change_day = next_dst_change(zone, datetime.datetime.now(datetime.UTC))
    # Five days around the change, inside its month (EU changes fall on the month's last Sunday).
    month_days = calendar.monthrange(change_day.year, change_day.month)[1]
    first = min(change_day.day - 2, month_days - 4)
    cron = f"0 9 {first}-{first + 4} {change_day.month} *"

    body = await create(api, await published_script(api), cron=cron, timezone="Europe/Berlin")

    fires = [parse(t) for t in body["nextFireTimes"]]
    local = [f.astimezone(zone) for f in fires]
    assert [d.day for d in local] == [first + i for i in range(5)]
    assert {(d.hour, d.minute) for d in local} == {(9, 0)}
    before = {f.hour for f, d in zip(fires, local, strict=True) if d.day < change_day.day}
    after = {f.hour for f, d in zip(fires, local, strict=True) if d.day >= change_day.day}
    assert len(before) == len(after) == 1
    assert before != after  # the same local time is another UTC hour after the change


async def test_an_inactive_schedule_shows_no_fire_times(api: Api) -> None:
    body = await create(api, await published_script(api), active=False)

    assert (body["active"], body["nextFireTimes"]) == (False, [])


async def test_list_a_scripts_schedules_newest_first(api: Api) -> None:
    script_id = await published_script(api)
    first = await create(api, script_id)
    second = await create(api, script_id, cron="0 10 1 1 *")
    await create(api, await published_script(api))  # another script's

    response = await api.get(f"/scripts/{script_id}/schedules")

    assert response.status_code == 200
    assert [s["id"] for s in response.json()["items"]] == [second["id"], first["id"]]


async def test_get_a_schedule(api: Api) -> None:
    created = await create(api, await published_script(api))

    response = await api.get(f"/schedules/{created['id']}")

    assert response.status_code == 200
    assert response.json()["id"] == created["id"]


async def test_patch_changes_only_the_given_fields_and_replans(api: Api) -> None:
    created = await create(api, await published_script(api), timezone="Asia/Tokyo")

    response = await api.patch(f"/schedules/{created['id']}", json={"cron": "0 7 1 1 *"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["cron"], body["timezone"], body["active"]) == ("0 7 1 1 *", "Asia/Tokyo", True)
    zone = zoneinfo.ZoneInfo("Asia/Tokyo")
    assert {parse(t).astimezone(zone).hour for t in body["nextFireTimes"]} == {7}
    assert body["updatedAt"] >= created["updatedAt"]


async def test_patch_pauses_and_resumes(api: Api) -> None:
    created = await create(api, await published_script(api))

    paused = (await api.patch(f"/schedules/{created['id']}", json={"active": False})).json()
    resumed = (await api.patch(f"/schedules/{created['id']}", json={"active": True})).json()

    assert (paused["active"], paused["nextFireTimes"]) == (False, [])
    assert (resumed["active"], resumed["nextFireTimes"]) == (True, created["nextFireTimes"])


async def test_patch_with_a_bad_cron_or_timezone_is_400_and_changes_nothing(api: Api) -> None:
    created = await create(api, await published_script(api))

    bad_cron = await api.patch(f"/schedules/{created['id']}", json={"cron": "every day"})
    bad_zone = await api.patch(f"/schedules/{created['id']}", json={"timezone": "Nowhere/City"})

    assert_error(bad_cron, 400, "VALIDATION_ERROR")
    assert_error(bad_zone, 400, "VALIDATION_ERROR")
    assert (await api.get(f"/schedules/{created['id']}")).json()["cron"] == YEARLY


async def test_delete_removes_the_schedule_and_is_idempotent(api: Api) -> None:
    script_id = await published_script(api)
    created = await create(api, script_id)

    first = await api.delete(f"/schedules/{created['id']}")
    second = await api.delete(f"/schedules/{created['id']}")

    assert (first.status_code, second.status_code) == (204, 204)
    assert_error(await api.get(f"/schedules/{created['id']}"), 404, "NOT_FOUND")
    assert_error(await api.patch(f"/schedules/{created['id']}", json={"active": True}), 404, "NOT_FOUND")
    assert (await api.get(f"/scripts/{script_id}/schedules")).json()["items"] == []


async def test_schedules_of_an_unknown_script_are_404(api: Api) -> None:
    unknown = uuid.uuid4()

    assert_error(await api.post(f"/scripts/{unknown}/schedules", json={"cron": YEARLY}), 404, "NOT_FOUND")
    assert_error(await api.get(f"/scripts/{unknown}/schedules"), 404, "NOT_FOUND")
    assert_error(await api.delete(f"/schedules/{unknown}"), 404, "NOT_FOUND")


async def test_another_tenants_schedules_are_404(api: Api, other_api: Api) -> None:
    script_id = await published_script(api)
    created = await create(api, script_id)

    responses = [
        await other_api.get(f"/schedules/{created['id']}"),
        await other_api.patch(f"/schedules/{created['id']}", json={"active": False}),
        await other_api.delete(f"/schedules/{created['id']}"),
        await other_api.get(f"/scripts/{script_id}/schedules"),
        await other_api.post(f"/scripts/{script_id}/schedules", json={"cron": YEARLY}),
    ]

    for response in responses:
        assert_error(response, 404, "NOT_FOUND")
    assert (await api.get(f"/schedules/{created['id']}")).json()["active"] is True
