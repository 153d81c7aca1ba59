"""Scripts: create, read, list, change, archive; their audit entries."""

from __future__ import annotations

import re

from tests.support.api import Api, assert_error

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SCRIPT_FIELDS = {
    "id",
    "tenantId",
    "name",
    "slug",
    "description",
    "status",
    "activeVersionId",
    "latestVersion",
    "labels",
    "intents",
    "languageCodes",
    "embeddingKey",
    "createdById",
    "updatedById",
    "createdAt",
    "updatedAt",
}


async def test_create_script_returns_draft_with_every_field(api: Api) -> None:
    response = await api.post(
        "/scripts",
        json={"name": "Welcome", "slug": "welcome", "labels": ["onboarding"], "languageCodes": ["en"]},
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == SCRIPT_FIELDS | {"activeVersion"}
    assert body["status"] == "DRAFT"
    assert body["latestVersion"] == 0
    assert body["activeVersionId"] is None
    assert body["activeVersion"] is None
    assert body["description"] is None
    assert body["tenantId"] == api.tenant
    assert body["createdById"] == "alice"
    assert body["updatedById"] == "alice"
    assert body["labels"] == ["onboarding"]
    assert body["languageCodes"] == ["en"]
    assert RFC3339_MS.match(body["createdAt"])
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", body["id"])


async def test_create_script_logs_create_audit_entry(api: Api) -> None:
    script = await api.create_script("audited")

    entries = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"]

    assert [(e["action"], e["version"], e["actorId"]) for e in entries] == [("CREATE", None, "alice")]


async def test_duplicate_slug_in_tenant_is_slug_taken(api: Api) -> None:
    await api.create_script("taken")

    response = await api.post("/scripts", json={"name": "Other", "slug": "taken"})

    assert_error(response, 409, "SLUG_TAKEN")
    listed = (await api.get("/scripts")).json()["items"]
    assert [s["slug"] for s in listed] == ["taken"]


async def test_same_slug_in_another_tenant_is_allowed(api: Api, other_api: Api) -> None:
    await api.create_script("shared-slug")

    response = await other_api.post("/scripts", json={"name": "Mine", "slug": "shared-slug"})

    assert response.status_code == 201


async def test_invalid_slug_is_validation_error_naming_the_field(api: Api) -> None:
    response = await api.post("/scripts", json={"name": "Bad", "slug": "Not A Slug"})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "slug"


async def test_unknown_body_field_is_rejected(api: Api) -> None:
    response = await api.post("/scripts", json={"name": "x", "slug": "x", "colour": "red"})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "colour" in body["message"]


async def test_body_tenant_id_must_match_header(api: Api) -> None:
    response = await api.post("/scripts", json={"name": "x", "slug": "x", "tenantId": "someone-else"})

    assert_error(response, 403, "TENANT_MISMATCH")
    assert (await api.get("/scripts")).json()["items"] == []


async def test_body_tenant_id_equal_to_header_is_accepted(api: Api) -> None:
    response = await api.post("/scripts", json={"name": "x", "slug": "x", "tenantId": api.tenant})

    assert response.status_code == 201


async def test_query_tenant_id_must_match_header(api: Api) -> None:
    response = await api.get("/scripts", params={"tenantId": "someone-else"})

    assert_error(response, 403, "TENANT_MISMATCH")


async def test_get_script_without_active_version(api: Api) -> None:
    script = await api.create_script("fresh")

    response = await api.get(f"/scripts/{script['id']}")

    assert response.status_code == 200
    assert response.json()["activeVersion"] is None
    assert response.json()["id"] == script["id"]


async def test_get_unknown_script_is_not_found(api: Api) -> None:
    response = await api.get("/scripts/0190b5a0-0000-7000-8000-000000000000")

    assert_error(response, 404, "NOT_FOUND")


async def test_malformed_script_id_is_not_found(api: Api) -> None:
    response = await api.get("/scripts/not-a-uuid")

    assert_error(response, 404, "NOT_FOUND")


async def test_list_is_newest_first_and_pages_with_cursor(api: Api) -> None:
    slugs = [f"page-{i}" for i in range(5)]
    for slug in slugs:
        await api.create_script(slug)

    first = (await api.get("/scripts", params={"limit": 2})).json()
    second = (await api.get("/scripts", params={"limit": 2, "cursor": first["nextCursor"]})).json()
    third = (await api.get("/scripts", params={"limit": 2, "cursor": second["nextCursor"]})).json()

    seen = [s["slug"] for page in (first, second, third) for s in page["items"]]
    assert seen == list(reversed(slugs))
    assert third["nextCursor"] is None
    assert set(first["items"][0]) == SCRIPT_FIELDS


async def test_list_filters_by_q_case_insensitively_on_name_or_slug(api: Api) -> None:
    await api.create_script("onboarding-flow", name="Greeting")
    await api.create_script("billing", name="Invoice ONBOARDING helper")
    await api.create_script("unrelated", name="Other")

    found = (await api.get("/scripts", params={"q": "OnBoard"})).json()["items"]

    assert sorted(s["slug"] for s in found) == ["billing", "onboarding-flow"]


async def test_list_q_treats_like_wildcards_literally(api: Api) -> None:
    await api.create_script("plain", name="Plain")
    await api.create_script("percent", name="100% sure")

    found = (await api.get("/scripts", params={"q": "%"})).json()["items"]

    assert [s["slug"] for s in found] == ["percent"]


async def test_list_filters_by_status_and_label(api: Api) -> None:
    a = await api.create_script("a", labels=["sales", "vip"])
    await api.create_script("b", labels=["sales"])
    await api.create_script("c", labels=["vip"])
    await api.create_version(a["id"])
    await api.publish(a["id"], 1)

    vip = (await api.get("/scripts", params={"label": "vip"})).json()["items"]
    published = (await api.get("/scripts", params={"status": "PUBLISHED"})).json()["items"]
    both = (await api.get("/scripts", params={"status": "DRAFT", "label": "sales"})).json()["items"]

    assert sorted(s["slug"] for s in vip) == ["a", "c"]
    assert [s["slug"] for s in published] == ["a"]
    assert [s["slug"] for s in both] == ["b"]


async def test_list_rejects_unknown_status(api: Api) -> None:
    assert_error(await api.get("/scripts", params={"status": "GONE"}), 400, "VALIDATION_ERROR")


async def test_list_limit_bounds(api: Api) -> None:
    assert_error(await api.get("/scripts", params={"limit": 0}), 400, "VALIDATION_ERROR")
    assert_error(await api.get("/scripts", params={"limit": 201}), 400, "VALIDATION_ERROR")
    assert_error(await api.get("/scripts", params={"limit": -5}), 400, "VALIDATION_ERROR")
    assert (await api.get("/scripts", params={"limit": 200})).status_code == 200


async def test_forged_cursor_is_validation_error(api: Api) -> None:
    for cursor in ("garbage", "W10", "WyJ4Il0", "eyJ0IjoxfQ", "W3sidSI6IngifSwgMV0"):
        body = assert_error(await api.get("/scripts", params={"cursor": cursor}), 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "cursor"


async def test_cursor_of_another_list_is_rejected(api: Api) -> None:
    script = await api.create_script("versions-cursor")
    for _ in range(3):
        await api.create_version(script["id"])
    versions = (await api.get(f"/scripts/{script['id']}/versions", params={"limit": 1})).json()

    response = await api.get("/scripts", params={"cursor": versions["nextCursor"]})

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_patch_updates_fields_and_logs_diff_with_note(api: Api) -> None:
    script = await api.create_script("editable", description="old")

    response = await api.patch(
        f"/scripts/{script['id']}",
        json={"name": "Renamed", "description": None, "labels": ["x"], "note": "tidy up"},
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["description"], body["labels"]) == ("Renamed", None, ["x"])
    assert body["updatedAt"] >= script["updatedAt"]
    entry = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"][0]
    assert entry["action"] == "UPDATE"
    assert entry["note"] == "tidy up"
    assert entry["diffJson"] == {
        "name": {"from": "Editable", "to": "Renamed"},
        "description": {"from": "old", "to": None},
        "labels": {"from": [], "to": ["x"]},
    }


async def test_patch_records_the_editing_actor(api: Api) -> None:
    script = await api.create_script("by-bob")

    response = await api.as_(token="user-token").patch(f"/scripts/{script['id']}", json={"name": "Bob's"})

    assert response.json()["updatedById"] == "bob"
    assert response.json()["createdById"] == "alice"
    entry = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"][0]
    assert entry["actorId"] == "bob"


async def test_patch_without_changes_logs_nothing(api: Api) -> None:
    script = await api.create_script("steady")

    response = await api.patch(f"/scripts/{script['id']}", json={"name": script["name"]})

    assert response.status_code == 200
    assert response.json()["updatedAt"] == script["updatedAt"]
    entries = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"]
    assert [e["action"] for e in entries] == ["CREATE"]


async def test_patch_absent_field_differs_from_null(api: Api) -> None:
    script = await api.create_script("keeps", description="kept", embeddingKey="emb-1")

    kept = (await api.patch(f"/scripts/{script['id']}", json={"embeddingKey": None})).json()

    assert kept["description"] == "kept"
    assert kept["embeddingKey"] is None


async def test_patch_slug_to_taken_one_is_slug_taken_and_changes_nothing(api: Api) -> None:
    await api.create_script("first")
    second = await api.create_script("second")

    response = await api.patch(f"/scripts/{second['id']}", json={"slug": "first", "name": "Changed"})

    assert_error(response, 409, "SLUG_TAKEN")
    unchanged = (await api.get(f"/scripts/{second['id']}")).json()
    assert (unchanged["slug"], unchanged["name"]) == ("second", "Second")
    entries = (await api.get(f"/scripts/{second['id']}/audit")).json()["items"]
    assert [e["action"] for e in entries] == ["CREATE"]


async def test_patch_status_archived_logs_archive(api: Api) -> None:
    script = await api.create_script("to-archive")

    response = await api.patch(f"/scripts/{script['id']}", json={"status": "ARCHIVED", "note": "retired"})

    assert response.json()["status"] == "ARCHIVED"
    entry = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"][0]
    assert entry["action"] == "ARCHIVE"
    assert entry["diffJson"] == {"status": {"from": "DRAFT", "to": "ARCHIVED"}}
    assert entry["note"] == "retired"


async def test_patch_status_published_without_active_version_conflicts(api: Api) -> None:
    script = await api.create_script("nothing-published")

    response = await api.patch(f"/scripts/{script['id']}", json={"status": "PUBLISHED"})

    assert_error(response, 409, "CONFLICT")
    assert (await api.get(f"/scripts/{script['id']}")).json()["status"] == "DRAFT"


async def test_patch_rejects_null_for_required_field(api: Api) -> None:
    script = await api.create_script("required-name")

    response = await api.patch(f"/scripts/{script['id']}", json={"name": None})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "name"


async def test_audit_filters_by_action(api: Api) -> None:
    script = await api.create_script("filtered")
    await api.patch(f"/scripts/{script['id']}", json={"name": "A"})
    await api.patch(f"/scripts/{script['id']}", json={"name": "B"})

    updates = (await api.get(f"/scripts/{script['id']}/audit", params={"action": "UPDATE"})).json()["items"]

    assert [e["diffJson"]["name"]["to"] for e in updates] == ["B", "A"]


async def test_audit_of_unknown_script_is_not_found(api: Api) -> None:
    response = await api.get("/scripts/0190b5a0-0000-7000-8000-000000000000/audit")

    assert_error(response, 404, "NOT_FOUND")
