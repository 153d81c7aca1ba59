"""A tenant can never read, list, change or audit another tenant's script."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import Api, assert_error

ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/scripts/{id}", None),
    ("PATCH", "/scripts/{id}", {"name": "Hijacked"}),
    ("PATCH", "/scripts/{id}", {"status": "ARCHIVED"}),
    ("POST", "/scripts/{id}/versions", {"graphJson": {"nodes": [], "edges": []}}),
    ("GET", "/scripts/{id}/versions", None),
    ("GET", "/scripts/{id}/versions/1", None),
    ("GET", "/scripts/{id}/versions/1/diff/1", None),
    ("POST", "/scripts/{id}/versions/1/publish", None),
    ("GET", "/scripts/{id}/audit", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_foreign_script_is_not_found_and_unchanged(
    api: Api, other_api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    script = await api.create_script("private", labels=["secret"])
    await api.create_version(script["id"])
    before = (await api.get(f"/scripts/{script['id']}")).json()
    audit_before = (await api.get(f"/scripts/{script['id']}/audit")).json()

    response = await other_api.request(method, path.format(id=script["id"]), json=body)

    assert_error(response, 404, "NOT_FOUND")
    assert script["id"] not in response.text
    assert (await api.get(f"/scripts/{script['id']}")).json() == before
    assert (await api.get(f"/scripts/{script['id']}/audit")).json() == audit_before


async def test_lists_show_only_the_callers_tenant(api: Api, other_api: Api) -> None:
    await api.create_script("mine", labels=["shared"])
    await other_api.create_script("theirs", labels=["shared"])

    for params in ({}, {"q": "i"}, {"label": "shared"}, {"status": "DRAFT"}):
        listed = (await api.get("/scripts", params=params)).json()["items"]
        assert [s["slug"] for s in listed] == ["mine"]


async def test_cursor_from_another_tenant_reveals_nothing(api: Api, other_api: Api) -> None:
    for n in range(3):
        await other_api.create_script(f"theirs-{n}")
    theirs = (await other_api.get("/scripts", params={"limit": 1})).json()

    mine = (await api.get("/scripts", params={"cursor": theirs["nextCursor"]})).json()

    assert mine["items"] == []
