"""Trigger subscriptions: external (admin) and internal (service) routes, one active
subscription per (tenant, subject, event), soft and idempotent deactivation."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.support.api import SERVICE_TOKEN, USER_TOKEN, Api, assert_error
from tests.support.triggers import event_type, published_script, subscribe

EXTERNAL = "/subjects/{subject}/subscriptions/triggers"
INTERNAL = "/internal/subjects/{subject}/subscriptions/triggers"


def url(subject: str, *, internal: bool = False) -> str:
    return (INTERNAL if internal else EXTERNAL).format(subject=subject)


# ---- the six edge cases ------------------------------------------------------------------------


async def test_admin_creates_a_subscription(api: Api, tenant: str) -> None:
    name = await event_type(api)
    script_id = await published_script(api)

    response = await api.post(url("sensor-1"), json={"eventName": name, "scriptId": script_id})

    assert response.status_code == 201, response.text
    body = response.json()
    assert uuid.UUID(body["id"]).version == 7
    assert (body["tenantId"], body["subject"], body["eventName"], body["scriptId"]) == (
        tenant,
        "sensor-1",
        name,
        script_id,
    )
    assert (body["active"], body["deactivatedAt"], body["createdById"]) == (True, None, "alice")


@pytest.mark.parametrize("event_name", [["A", "B"], [], ""], ids=["array", "empty-array", "empty-string"])
async def test_event_name_must_be_one_non_empty_string(api: Api, event_name: object) -> None:
    script_id = await published_script(api)

    response = await api.post(url("sensor-1"), json={"eventName": event_name, "scriptId": script_id})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "eventName"


async def test_an_unknown_event_name_is_404(api: Api) -> None:
    script_id = await published_script(api)

    response = await api.post(url("sensor-1"), json={"eventName": "NEVER_REGISTERED", "scriptId": script_id})

    assert_error(response, 404, "NOT_FOUND")


async def test_a_second_active_subscription_for_the_same_subject_and_event_is_409(api: Api) -> None:
    name = await event_type(api)
    await subscribe(api, "sensor-1", name, await published_script(api))

    response = await api.post(
        url("sensor-1"), json={"eventName": name, "scriptId": await published_script(api)}
    )

    assert_error(response, 409, "SUBSCRIPTION_EXISTS")


async def test_an_inactive_subscription_does_not_block_a_new_one(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    old = await subscribe(api, "sensor-1", name, script_id)
    assert (await api.delete(f"{url('sensor-1')}/{old['id']}")).status_code == 204

    response = await api.post(url("sensor-1"), json={"eventName": name, "scriptId": script_id})

    assert response.status_code == 201, response.text
    assert response.json()["id"] != old["id"]


async def test_a_service_caller_without_admin_subscribes_through_the_internal_route(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)

    response = await api.as_(token=SERVICE_TOKEN).post(
        url("connector-7", internal=True), json={"eventName": name, "scriptId": script_id}
    )

    assert response.status_code == 201, response.text
    assert response.json()["createdById"] == "svc-1"


@pytest.mark.parametrize("token", [SERVICE_TOKEN, USER_TOKEN], ids=["service", "editor"])
async def test_the_external_route_refuses_changes_by_callers_without_admin(api: Api, token: str) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    caller = api.as_(token=token)

    create = await caller.post(url("sensor-1"), json={"eventName": name, "scriptId": script_id})
    removal = await caller.delete(f"{url('sensor-1')}/{uuid.uuid4()}")
    listing = await caller.get(url("sensor-1"))  # every role may read (SPEC 3.1)

    for response in (create, removal):
        assert_error(response, 403, "FORBIDDEN")
    assert listing.status_code == 200
    assert listing.json()["items"] == []


async def test_the_internal_route_refuses_callers_without_service_or_admin(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    editor = api.as_(token=USER_TOKEN)

    create = await editor.post(
        url("sensor-1", internal=True), json={"eventName": name, "scriptId": script_id}
    )

    assert_error(create, 403, "FORBIDDEN")


# ---- concurrency -------------------------------------------------------------------------------


async def test_two_concurrent_creates_of_one_subscription_give_exactly_one_201(api: Api) -> None:
    name = await event_type(api)
    first, second = await published_script(api), await published_script(api)

    responses = await asyncio.gather(
        api.post(url("sensor-1"), json={"eventName": name, "scriptId": first}),
        api.post(url("sensor-1", internal=True), json={"eventName": name, "scriptId": second}),
    )

    assert sorted(r.status_code for r in responses) == [201, 409]
    assert_error(next(r for r in responses if r.status_code == 409), 409, "SUBSCRIPTION_EXISTS")
    active = (await api.get(url("sensor-1"), params={"active": "true"})).json()["items"]
    assert len(active) == 1


async def test_ten_concurrent_creates_of_one_subscription_give_exactly_one_201(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)

    responses = await asyncio.gather(
        *(api.post(url("sensor-9"), json={"eventName": name, "scriptId": script_id}) for _ in range(10))
    )

    assert sorted(r.status_code for r in responses) == [201] + [409] * 9


# ---- other rules -------------------------------------------------------------------------------


async def test_built_in_lifecycle_names_need_no_registration(api: Api) -> None:
    script_id = await published_script(api)

    response = await api.post(url("*"), json={"eventName": "Script.Published", "scriptId": script_id})

    assert response.status_code == 201, response.text
    assert response.json()["subject"] == "*"


async def test_the_same_event_on_another_subject_is_a_separate_subscription(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    await subscribe(api, "sensor-1", name, script_id)

    response = await api.post(url("sensor-2"), json={"eventName": name, "scriptId": script_id})

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("subject", ["has space", "a" * 129, "semi;colon", "**"])
async def test_a_malformed_subject_is_400(api: Api, subject: str) -> None:
    name = await event_type(api)
    script_id = await published_script(api)

    response = await api.post(url(subject), json={"eventName": name, "scriptId": script_id})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "subject"


async def test_an_unknown_script_is_404(api: Api) -> None:
    name = await event_type(api)

    response = await api.post(url("sensor-1"), json={"eventName": name, "scriptId": str(uuid.uuid4())})

    assert_error(response, 404, "NOT_FOUND")


async def test_a_malformed_script_id_is_400(api: Api) -> None:
    name = await event_type(api)

    response = await api.post(url("sensor-1"), json={"eventName": name, "scriptId": "nope"})

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_delete_deactivates_and_the_subscription_stays_listed_as_inactive(api: Api) -> None:
    name = await event_type(api)
    created = await subscribe(api, "sensor-1", name, await published_script(api))

    response = await api.delete(f"{url('sensor-1')}/{created['id']}")

    assert response.status_code == 204
    (listed,) = (await api.get(url("sensor-1"))).json()["items"]
    assert (listed["id"], listed["active"]) == (created["id"], False)
    assert listed["deactivatedAt"] is not None
    assert (await api.get(url("sensor-1"), params={"active": "true"})).json()["items"] == []


async def test_delete_is_idempotent(api: Api) -> None:
    name = await event_type(api)
    created = await subscribe(api, "sensor-1", name, await published_script(api))

    first = await api.delete(f"{url('sensor-1')}/{created['id']}")
    second = await api.delete(f"{url('sensor-1')}/{created['id']}")

    assert (first.status_code, second.status_code) == (204, 204)


async def test_delete_with_another_subjects_id_is_404(api: Api) -> None:
    name = await event_type(api)
    created = await subscribe(api, "sensor-1", name, await published_script(api))

    response = await api.delete(f"{url('sensor-2')}/{created['id']}")

    assert_error(response, 404, "NOT_FOUND")
    assert (await api.get(url("sensor-1"))).json()["items"][0]["active"] is True


async def test_delete_of_an_unknown_id_is_404(api: Api) -> None:
    response = await api.delete(f"{url('sensor-1')}/{uuid.uuid4()}")

    assert_error(response, 404, "NOT_FOUND")


async def test_internal_and_external_routes_share_the_same_subscriptions(api: Api) -> None:
    name = await event_type(api)
    created = await subscribe(api, "sensor-1", name, await published_script(api))
    service = api.as_(token=SERVICE_TOKEN)

    listed = (await service.get(url("sensor-1", internal=True))).json()["items"]
    removed = await service.delete(f"{url('sensor-1', internal=True)}/{created['id']}")

    assert [s["id"] for s in listed] == [created["id"]]
    assert removed.status_code == 204


async def test_the_list_is_newest_first_and_pages(api: Api) -> None:
    script_id = await published_script(api)
    created = [await subscribe(api, "sensor-1", await event_type(api), script_id) for _ in range(3)]

    first = (await api.get(url("sensor-1"), params={"limit": 2})).json()
    second = (await api.get(url("sensor-1"), params={"limit": 2, "cursor": first["nextCursor"]})).json()

    ids = [s["id"] for s in first["items"] + second["items"]]
    assert ids == [c["id"] for c in reversed(created)]
    assert second["nextCursor"] is None


async def test_another_tenants_subscriptions_are_invisible(api: Api, other_api: Api) -> None:
    name = await event_type(api)
    created = await subscribe(api, "sensor-1", name, await published_script(api))

    listed = (await other_api.get(url("sensor-1"))).json()["items"]
    removal = await other_api.delete(f"{url('sensor-1')}/{created['id']}")

    assert listed == []
    assert_error(removal, 404, "NOT_FOUND")


async def test_another_tenants_script_or_event_type_cannot_be_subscribed(api: Api, other_api: Api) -> None:
    foreign_name = await event_type(other_api)
    foreign_script = await published_script(other_api)
    name = await event_type(api)

    by_script = await api.post(url("sensor-1"), json={"eventName": name, "scriptId": foreign_script})
    by_name = await api.post(
        url("sensor-1"), json={"eventName": foreign_name, "scriptId": await published_script(api)}
    )

    assert_error(by_script, 404, "NOT_FOUND")
    assert_error(by_name, 404, "NOT_FOUND")


async def test_subscription_routes_need_a_tenant(api: Api) -> None:
    response = await api.http.get(url("sensor-1"), headers={"Authorization": "Bearer admin-token"})

    assert_error(response, 400, "TENANT_REQUIRED")
