"""Versions: immutable saves, graph validation, numbering under concurrency, publishing."""

from __future__ import annotations

import asyncio

from tests.support.api import Api, assert_error

GRAPH = {
    "nodes": [{"id": "a", "type": "say", "text": "Hi"}, {"id": "b", "type": "wait"}],
    "edges": [{"source": "a", "target": "b", "label": "next"}],
    "layout": {"zoom": 1.5},
}


async def test_create_version_numbers_from_one_and_keeps_the_graph_as_sent(api: Api) -> None:
    script = await api.create_script("graphs")

    response = await api.post(
        f"/scripts/{script['id']}/versions",
        json={"graphJson": GRAPH, "variablesDef": {"name": {"type": "string"}}, "changelog": "first cut"},
    )

    assert response.status_code == 201
    version = response.json()
    assert version["version"] == 1
    assert version["graphJson"] == GRAPH
    assert version["variablesDef"] == {"name": {"type": "string"}}
    assert version["isPublished"] is False
    assert version["scriptId"] == script["id"]
    fetched = (await api.get(f"/scripts/{script['id']}/versions/1")).json()
    assert fetched == version
    assert (await api.get(f"/scripts/{script['id']}")).json()["latestVersion"] == 1


async def test_create_version_logs_create_with_version_and_note(api: Api) -> None:
    script = await api.create_script("noted")

    await api.create_version(script["id"], note="initial import")

    entry = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"][0]
    assert (entry["action"], entry["version"], entry["note"]) == ("CREATE", 1, "initial import")


async def test_graph_that_is_not_an_object_is_validation_error(api: Api) -> None:
    script = await api.create_script("not-object")

    for graph in ([], "nodes", 3, None):
        response = await api.post(f"/scripts/{script['id']}/versions", json={"graphJson": graph})
        body = assert_error(response, 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "graphJson"


async def test_invalid_graph_is_graph_invalid_with_every_offending_path(api: Api) -> None:
    script = await api.create_script("broken")
    graph = {
        "nodes": [{"id": "a", "type": "say"}, {"id": "a", "type": "say"}, {"type": "wait"}, "x", {"id": "c"}],
        "edges": [{"source": "a", "target": "zzz"}, {"source": 1, "target": "a"}],
    }

    response = await api.post(f"/scripts/{script['id']}/versions", json={"graphJson": graph})

    body = assert_error(response, 422, "GRAPH_INVALID")
    assert {d["path"] for d in body["details"]} == {
        "$.nodes[1].id",
        "$.nodes[2].id",
        "$.nodes[3]",
        "$.nodes[4].type",
        "$.edges[0].target",
        "$.edges[1].source",
    }
    assert (await api.get(f"/scripts/{script['id']}")).json()["latestVersion"] == 0


async def test_graph_without_nodes_or_edges_is_graph_invalid(api: Api) -> None:
    script = await api.create_script("empty-object")

    body = assert_error(
        await api.post(f"/scripts/{script['id']}/versions", json={"graphJson": {}}), 422, "GRAPH_INVALID"
    )

    assert {d["path"] for d in body["details"]} == {"$.nodes", "$.edges"}


async def test_fifty_concurrent_versions_are_numbered_one_to_fifty(api: Api) -> None:
    script = await api.create_script("busy")

    responses = await asyncio.gather(
        *(
            api.post(f"/scripts/{script['id']}/versions", json={"graphJson": {"nodes": [], "edges": []}})
            for _ in range(50)
        )
    )

    assert [r.status_code for r in responses] == [201] * 50
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 51))
    assert (await api.get(f"/scripts/{script['id']}")).json()["latestVersion"] == 50
    audit = (await api.get(f"/scripts/{script['id']}/audit", params={"limit": 200})).json()["items"]
    assert sorted(e["version"] for e in audit if e["version"] is not None) == list(range(1, 51))


async def test_archived_script_refuses_new_versions(api: Api) -> None:
    script = await api.create_script("archived")
    await api.patch(f"/scripts/{script['id']}", json={"status": "ARCHIVED"})

    response = await api.post(
        f"/scripts/{script['id']}/versions", json={"graphJson": {"nodes": [], "edges": []}}
    )

    assert_error(response, 409, "SCRIPT_ARCHIVED")
    assert (await api.get(f"/scripts/{script['id']}")).json()["latestVersion"] == 0


async def test_version_of_unknown_script_is_not_found(api: Api) -> None:
    response = await api.post(
        "/scripts/0190b5a0-0000-7000-8000-000000000000/versions",
        json={"graphJson": {"nodes": [], "edges": []}},
    )

    assert_error(response, 404, "NOT_FOUND")


async def test_list_versions_newest_first_with_summary_fields(api: Api) -> None:
    script = await api.create_script("listed")
    for n in range(3):
        await api.create_version(script["id"], changelog=f"v{n + 1}")
    await api.publish(script["id"], 2)

    first = (await api.get(f"/scripts/{script['id']}/versions", params={"limit": 2})).json()
    rest = (await api.get(f"/scripts/{script['id']}/versions", params={"cursor": first["nextCursor"]})).json()

    items = first["items"] + rest["items"]
    assert [v["version"] for v in items] == [3, 2, 1]
    assert [v["isPublished"] for v in items] == [False, True, False]
    assert set(items[0]) == {"id", "version", "isPublished", "createdAt", "changelog"}
    assert rest["nextCursor"] is None


async def test_get_unknown_version_is_not_found(api: Api) -> None:
    script = await api.create_script("no-such-version")

    assert_error(await api.get(f"/scripts/{script['id']}/versions/7"), 404, "NOT_FOUND")


async def test_publish_sets_active_version_and_publishes_draft_script(api: Api) -> None:
    script = await api.create_script("publish-me")
    version = await api.create_version(script["id"])

    published = await api.publish(script["id"], 1)

    assert published["status"] == "PUBLISHED"
    assert published["activeVersionId"] == version["id"]
    assert published["activeVersion"]["isPublished"] is True
    entry = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"][0]
    assert (entry["action"], entry["version"]) == ("PUBLISH", 1)


async def test_publish_older_version_logs_rollback(api: Api) -> None:
    script = await api.create_script("rollback")
    await api.create_version(script["id"])
    await api.create_version(script["id"])
    await api.publish(script["id"], 2)

    rolled = await api.publish(script["id"], 1)

    assert rolled["activeVersion"]["version"] == 1
    actions = [
        (e["action"], e["version"]) for e in (await api.get(f"/scripts/{script['id']}/audit")).json()["items"]
    ]
    assert actions[:2] == [("ROLLBACK", 1), ("PUBLISH", 2)]
    versions = (await api.get(f"/scripts/{script['id']}/versions")).json()["items"]
    assert [v["isPublished"] for v in versions] == [True, True]


async def test_publish_newer_version_after_older_logs_publish(api: Api) -> None:
    script = await api.create_script("forward")
    await api.create_version(script["id"])
    await api.create_version(script["id"])
    await api.publish(script["id"], 1)

    await api.publish(script["id"], 2)

    entry = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"][0]
    assert (entry["action"], entry["version"]) == ("PUBLISH", 2)


async def test_republishing_the_active_version_changes_nothing(api: Api) -> None:
    script = await api.create_script("idempotent-publish")
    await api.create_version(script["id"])
    first = await api.publish(script["id"], 1)

    again = await api.publish(script["id"], 1)

    assert again == first
    actions = [e["action"] for e in (await api.get(f"/scripts/{script['id']}/audit")).json()["items"]]
    assert actions.count("PUBLISH") == 1


async def test_publish_unknown_version_is_not_found(api: Api) -> None:
    script = await api.create_script("publish-missing")

    assert_error(await api.post(f"/scripts/{script['id']}/versions/3/publish"), 404, "NOT_FOUND")


async def test_publish_on_archived_script_is_refused(api: Api) -> None:
    script = await api.create_script("archived-publish")
    await api.create_version(script["id"])
    await api.patch(f"/scripts/{script['id']}", json={"status": "ARCHIVED"})

    response = await api.post(f"/scripts/{script['id']}/versions/1/publish")

    assert_error(response, 409, "SCRIPT_ARCHIVED")
    assert (await api.get(f"/scripts/{script['id']}")).json()["activeVersionId"] is None


async def test_archiving_keeps_the_active_version(api: Api) -> None:
    script = await api.create_script("archive-published")
    version = await api.create_version(script["id"])
    await api.publish(script["id"], 1)

    archived = (await api.patch(f"/scripts/{script['id']}", json={"status": "ARCHIVED"})).json()

    assert archived["status"] == "ARCHIVED"
    assert archived["activeVersionId"] == version["id"]


async def test_version_numbers_beyond_any_version_are_not_found(api: Api) -> None:
    script = await api.create_script("huge-number")
    await api.create_version(script["id"])

    for path in ("/versions/99999999999", "/versions/0", "/versions/99999999999/publish"):
        method = "POST" if path.endswith("publish") else "GET"
        assert_error(await api.request(method, f"/scripts/{script['id']}{path}"), 404, "NOT_FOUND")
