"""The tenant-wide audit trail: GET /audit with actorId, action and from/to, keyset pages."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from tests.support.api import USER_TOKEN, Api, assert_error

TIME_FORMAT_HINT = "must be an RFC 3339 date-time with a UTC offset, e.g. 2026-01-01T00:00:00.000Z"
AUDIT_FIELDS = {
    "id",
    "tenantId",
    "scriptId",
    "correlationId",
    "version",
    "action",
    "actorId",
    "diffJson",
    "note",
    "createdAt",
}


async def trail(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/audit", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    assert response.json()["nextCursor"] is None
    return response.json()["items"]


def summary(entries: list[dict[str, Any]]) -> list[tuple[str, str, int | None, str]]:
    return [(e["scriptId"], e["action"], e["version"], e["actorId"]) for e in entries]


async def spaced(*steps: Any) -> None:
    """Run steps one after another, far enough apart that their entries differ in createdAt."""
    for step in steps:
        await step
        await asyncio.sleep(0.005)


async def test_trail_lists_every_script_newest_first(api: Api) -> None:
    first = await api.create_script("first")
    second = await api.create_script("second")
    await api.create_version(first["id"])
    await api.patch(f"/scripts/{second['id']}", json={"name": "Renamed"})

    entries = await trail(api)

    assert summary(entries) == [
        (second["id"], "UPDATE", None, "alice"),
        (first["id"], "CREATE", 1, "alice"),
        (second["id"], "CREATE", None, "alice"),
        (first["id"], "CREATE", None, "alice"),
    ]
    assert set(entries[0]) == AUDIT_FIELDS
    assert entries[0]["diffJson"] == {"name": {"from": "Second", "to": "Renamed"}}
    assert entries[0]["tenantId"] == api.tenant


async def test_trail_entries_are_those_of_each_scripts_own_trail(api: Api) -> None:
    script = await api.create_script("same-shape")
    await api.create_version(script["id"], note="imported")

    own = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"]

    assert await trail(api) == own


async def test_trail_filters_by_action(api: Api) -> None:
    script = await api.create_script("actions")
    await api.create_version(script["id"])
    await api.create_version(script["id"])
    await api.publish(script["id"], 2)
    await api.publish(script["id"], 1)
    await api.patch(f"/scripts/{script['id']}", json={"status": "ARCHIVED"})

    by_action = {action: await trail(api, action=action) for action in ("PUBLISH", "ROLLBACK", "ARCHIVE")}

    assert {a: [(e["action"], e["version"]) for e in es] for a, es in by_action.items()} == {
        "PUBLISH": [("PUBLISH", 2)],
        "ROLLBACK": [("ROLLBACK", 1)],
        "ARCHIVE": [("ARCHIVE", None)],
    }
    assert [e["version"] for e in await trail(api, action="CREATE")] == [2, 1, None]


async def test_trail_filters_by_actor(api: Api) -> None:
    bob = api.as_(token=USER_TOKEN)
    script = await api.create_script("shared")
    await bob.patch(f"/scripts/{script['id']}", json={"name": "Bob's"})
    await bob.create_version(script["id"])
    await api.patch(f"/scripts/{script['id']}", json={"name": "Alice's"})

    by_bob = await trail(api, actorId="bob")
    by_alice = await trail(api, actorId="alice")

    assert [(e["action"], e["version"]) for e in by_bob] == [("CREATE", 1), ("UPDATE", None)]
    assert {e["actorId"] for e in by_bob} == {"bob"}
    assert [(e["action"], e["version"]) for e in by_alice] == [("UPDATE", None), ("CREATE", None)]
    assert {e["actorId"] for e in by_alice} == {"alice"}
    assert await trail(api, actorId="nobody") == []
    assert (await bob.get("/audit", params={"actorId": "alice"})).json()["items"] == by_alice


async def test_trail_filters_combine(api: Api) -> None:
    bob = api.as_(token=USER_TOKEN)
    script = await api.create_script("combined")
    await spaced(
        bob.patch(f"/scripts/{script['id']}", json={"name": "B1"}),
        api.patch(f"/scripts/{script['id']}", json={"name": "A1"}),
        bob.create_version(script["id"]),
        bob.patch(f"/scripts/{script['id']}", json={"name": "B2"}),
        bob.patch(f"/scripts/{script['id']}", json={"name": "B3"}),
    )
    everything = await trail(api)
    renames = {e["diffJson"]["name"]["to"]: e for e in everything if e["action"] == "UPDATE"}
    b2_at = renames["B2"]["createdAt"]

    bob_updates = await trail(api, actorId="bob", action="UPDATE")
    bob_updates_until_b2 = await trail(api, actorId="bob", action="UPDATE", to=b2_at)
    bob_updates_from_b2 = await trail(api, actorId="bob", action="UPDATE", **{"from": b2_at})

    assert [e["diffJson"]["name"]["to"] for e in bob_updates] == ["B3", "B2", "B1"]
    assert [e["diffJson"]["name"]["to"] for e in bob_updates_until_b2] == ["B1"]
    assert [e["diffJson"]["name"]["to"] for e in bob_updates_from_b2] == ["B3", "B2"]
    assert await trail(api, actorId="alice", action="UPDATE", to=b2_at) == [renames["A1"]]
    assert await trail(api, actorId="bob", action="PUBLISH") == []


async def test_trail_window_from_is_inclusive_and_to_exclusive(api: Api) -> None:
    scripts: list[dict[str, Any]] = []
    for n in range(4):
        scripts.append(await api.create_script(f"timed-{n}"))
        await asyncio.sleep(0.005)
    entries = list(reversed(await trail(api)))
    times = [e["createdAt"] for e in entries]
    assert [e["scriptId"] for e in entries] == [s["id"] for s in scripts]
    assert len(set(times)) == 4, times

    async def window(**bounds: str) -> list[str]:
        return [e["scriptId"] for e in reversed(await trail(api, **bounds))]

    ids = [s["id"] for s in scripts]
    assert await window(**{"from": times[1]}) == ids[1:]
    assert await window(to=times[2]) == ids[:2]
    assert await window(**{"from": times[1], "to": times[3]}) == ids[1:3]
    assert await window(**{"from": times[2], "to": times[2]}) == []
    assert await window(**{"from": times[0], "to": times[3]}) == ids[:3]


async def test_trail_window_accepts_any_utc_offset_for_the_same_instant(api: Api) -> None:
    for n in range(2):
        await api.create_script(f"offset-{n}")
        await asyncio.sleep(0.005)
    newest = (await trail(api))[0]
    instant = datetime.datetime.fromisoformat(newest["createdAt"])
    in_berlin_summer = instant.astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()

    assert await trail(api, **{"from": in_berlin_summer}) == [newest]
    assert [e["id"] for e in await trail(api, to=in_berlin_summer)] == [
        e["id"] for e in (await trail(api))[1:]
    ]


async def test_trail_pages_with_cursor(api: Api) -> None:
    script = await api.create_script("paged")
    for n in range(4):
        await api.patch(f"/scripts/{script['id']}", json={"name": f"Name {n}"})
    everything = await trail(api)

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/audit", params=params)).json()
        seen += page["items"]
        cursor = page["nextCursor"]
        if cursor is None:
            break

    assert len(everything) == 5
    assert seen == everything


async def test_trail_pages_keep_their_filters(api: Api) -> None:
    script = await api.create_script("paged-filtered")
    for n in range(3):
        await api.patch(f"/scripts/{script['id']}", json={"name": f"Name {n}"})

    first = (await api.get("/audit", params={"action": "UPDATE", "limit": 2})).json()
    second = (
        await api.get("/audit", params={"action": "UPDATE", "limit": 2, "cursor": first["nextCursor"]})
    ).json()

    names = [e["diffJson"]["name"]["to"] for e in first["items"] + second["items"]]
    assert names == ["Name 2", "Name 1", "Name 0"]
    assert second["nextCursor"] is None


async def test_trail_rejects_unknown_action(api: Api) -> None:
    body = assert_error(await api.get("/audit", params={"action": "DELETE"}), 400, "VALIDATION_ERROR")

    assert body["details"][0]["field"] == "action"


async def test_trail_rejects_times_that_are_not_rfc3339_with_offset(api: Api) -> None:
    for bound in ("from", "to"):
        for value in ("yesterday", "2026-01-01", "2026-01-01T10:00:00", "1767261600", "2026-02-30T00:00:00Z"):
            response = await api.get("/audit", params={bound: value})
            body = assert_error(response, 400, "VALIDATION_ERROR")
            expected = [{"field": bound, "message": TIME_FORMAT_HINT, "source": "query"}]
            assert body["details"] == expected, value


async def test_trail_rejects_from_after_to(api: Api) -> None:
    response = await api.get(
        "/audit", params={"from": "2026-01-02T00:00:00.000Z", "to": "2026-01-01T23:59:59.999Z"}
    )

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == [{"field": "from", "message": "must not be after to", "source": "query"}]


async def test_trail_rejects_a_forged_cursor(api: Api) -> None:
    body = assert_error(await api.get("/audit", params={"cursor": "garbage"}), 400, "VALIDATION_ERROR")

    assert body["details"][0]["field"] == "cursor"


async def test_trail_never_shows_another_tenants_entries(api: Api, other_api: Api) -> None:
    mine = await api.create_script("mine")
    theirs = await other_api.create_script("theirs")
    await other_api.create_version(theirs["id"])
    await other_api.as_(token=USER_TOKEN).patch(f"/scripts/{theirs['id']}", json={"name": "Bob's"})

    for params in ({}, {"actorId": "alice"}, {"actorId": "bob"}, {"action": "CREATE"}, {"action": "UPDATE"}):
        entries = await trail(api, **params)
        assert {e["scriptId"] for e in entries} <= {mine["id"]}, params
        assert {e["tenantId"] for e in entries} <= {api.tenant}, params
    assert len(await trail(other_api)) == 3


async def test_trail_cursor_from_another_tenant_reveals_nothing(api: Api, other_api: Api) -> None:
    for n in range(3):
        await other_api.create_script(f"theirs-{n}")
    theirs = (await other_api.get("/audit", params={"limit": 1})).json()

    mine = (await api.get("/audit", params={"cursor": theirs["nextCursor"]})).json()

    assert mine == {"items": [], "nextCursor": None}


async def test_trail_query_tenant_id_must_match_header(api: Api) -> None:
    assert_error(await api.get("/audit", params={"tenantId": "someone-else"}), 403, "TENANT_MISMATCH")


async def test_trail_needs_token_and_tenant(api: Api) -> None:
    assert_error(await api.as_(token=None).get("/audit"), 401, "UNAUTHORIZED")
    assert_error(await api.get("/audit", headers={"x-tenant-id": ""}), 400, "TENANT_REQUIRED")
