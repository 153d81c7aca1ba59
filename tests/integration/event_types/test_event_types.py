"""Event types: the built-in lifecycle names plus names each tenant registers (admin only)."""

from __future__ import annotations

import pytest

from tests.support.api import USER_TOKEN, Api, assert_error
from tests.support.triggers import event_type

LIFECYCLE = [
    "Script.Created",
    "Script.Published",
    "Script.Archived",
    "Version.Created",
    "Run.Started",
    "Run.Finished",
]


async def test_admin_registers_an_event_type(api: Api) -> None:
    response = await api.post(
        "/event-types", json={"name": "LOCATION_LIVING_ROOM", "description": "Someone came in"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["name"], body["description"], body["builtIn"]) == (
        "LOCATION_LIVING_ROOM",
        "Someone came in",
        False,
    )
    assert body["createdById"] == "alice"
    assert body["id"] is not None


async def test_registering_an_event_type_needs_the_admin_role(api: Api) -> None:
    response = await api.as_(token=USER_TOKEN).post("/event-types", json={"name": "DOOR_OPENED"})

    assert_error(response, 403, "FORBIDDEN")


@pytest.mark.parametrize("name", ["", "1ABC", "has space", "x" * 101, "dash-name"])
async def test_a_malformed_event_type_name_is_400(api: Api, name: str) -> None:
    response = await api.post("/event-types", json={"name": name})

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_name_the_tenant_has_is_409_event_type_exists(api: Api) -> None:
    await event_type(api, "DOOR_OPENED")

    response = await api.post("/event-types", json={"name": "DOOR_OPENED"})

    assert_error(response, 409, "EVENT_TYPE_EXISTS")


async def test_a_built_in_lifecycle_name_cannot_be_registered(api: Api) -> None:
    response = await api.post("/event-types", json={"name": "Run.Finished"})

    assert_error(response, 409, "EVENT_TYPE_EXISTS")


async def test_the_list_shows_registered_types_newest_first_then_the_built_in_names(api: Api) -> None:
    first = await event_type(api)
    second = await event_type(api)

    response = await api.get("/event-types")

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["name"] for i in items] == [second, first, *LIFECYCLE]
    assert [i["builtIn"] for i in items] == [False, False] + [True] * len(LIFECYCLE)
    assert all(i["id"] is None and i["createdAt"] is None for i in items[2:])


async def test_the_list_pages_across_registered_and_built_in_names(api: Api) -> None:
    names = [await event_type(api) for _ in range(3)]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/event-types", params=params)).json()
        seen += [i["name"] for i in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert seen == [*reversed(names), *LIFECYCLE]


async def test_a_tenant_sees_only_its_own_registered_types(api: Api, other_api: Api) -> None:
    mine = await event_type(api)

    theirs = (await other_api.get("/event-types")).json()["items"]

    assert mine not in [i["name"] for i in theirs]
    assert [i["name"] for i in theirs] == LIFECYCLE


async def test_another_tenant_may_register_the_same_name(api: Api, other_api: Api) -> None:
    await event_type(api, "SHARED_NAME")

    response = await other_api.post("/event-types", json={"name": "SHARED_NAME"})

    assert response.status_code == 201, response.text
