"""Version diff over HTTP: what changed from version a to version b of a script."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api, assert_error
from tests.support.diffs import inverse

BEFORE_GRAPH = {
    "nodes": [
        {"id": "start", "type": "say", "text": "Hi"},
        {"id": "ask", "type": "closedQuestion", "timeout": 30},
        {"id": "bye", "type": "say"},
    ],
    "edges": [
        {"source": "start", "target": "ask"},
        {"source": "ask", "target": "bye", "label": "no"},
    ],
    "layout": {"zoom": 1},
}
AFTER_GRAPH = {
    "nodes": [
        {"id": "start", "type": "say", "text": "Hello"},
        {"id": "ask", "type": "closedQuestion", "hint": "yes or no"},
        {"id": "report", "type": "report"},
    ],
    "edges": [
        {"source": "start", "target": "ask"},
        {"source": "ask", "target": "report"},
    ],
    "layout": {"zoom": 2},
}
BEFORE_VARIABLES = {"name": {"type": "string"}, "legacy": {"type": "bool"}}
AFTER_VARIABLES = {"name": {"type": "string", "required": True}, "phone": {"type": "string"}}


async def two_versions(api: Api) -> dict[str, Any]:
    script = await api.create_script("diffed")
    await api.create_version(script["id"], BEFORE_GRAPH, variablesDef=BEFORE_VARIABLES)
    await api.create_version(script["id"], AFTER_GRAPH, variablesDef=AFTER_VARIABLES)
    return script


async def test_diff_reports_every_kind_of_change_exactly(api: Api) -> None:
    script = await two_versions(api)

    response = await api.get(f"/scripts/{script['id']}/versions/1/diff/2")

    assert response.status_code == 200
    assert response.json() == {
        "scriptId": script["id"],
        "fromVersion": 1,
        "toVersion": 2,
        "nodes": {
            "added": [{"id": "report", "type": "report"}],
            "removed": [{"id": "bye", "type": "say"}],
            "changed": [
                {
                    "id": "ask",
                    "changes": {
                        "hint": {"from": None, "to": "yes or no"},
                        "timeout": {"from": 30, "to": None},
                    },
                },
                {"id": "start", "changes": {"text": {"from": "Hi", "to": "Hello"}}},
            ],
        },
        "edges": {
            "added": [{"source": "ask", "target": "report"}],
            "removed": [{"source": "ask", "target": "bye", "label": "no"}],
            "changed": [],
        },
        "variablesDef": {
            "added": {"phone": {"type": "string"}},
            "removed": {"legacy": {"type": "bool"}},
            "changed": {"name": {"from": {"type": "string"}, "to": {"type": "string", "required": True}}},
            "replaced": None,
        },
        "graphFields": {"layout": {"from": {"zoom": 1}, "to": {"zoom": 2}}},
    }


async def test_diff_backwards_is_the_exact_inverse(api: Api) -> None:
    script = await two_versions(api)

    forward = (await api.get(f"/scripts/{script['id']}/versions/1/diff/2")).json()
    backward = (await api.get(f"/scripts/{script['id']}/versions/2/diff/1")).json()

    assert backward == inverse(forward)
    assert inverse(backward) == forward


async def test_diff_of_a_version_with_itself_is_empty(api: Api) -> None:
    script = await two_versions(api)

    response = await api.get(f"/scripts/{script['id']}/versions/2/diff/2")

    assert response.status_code == 200
    assert response.json() == {
        "scriptId": script["id"],
        "fromVersion": 2,
        "toVersion": 2,
        "nodes": {"added": [], "removed": [], "changed": []},
        "edges": {"added": [], "removed": [], "changed": []},
        "variablesDef": {"added": {}, "removed": {}, "changed": {}, "replaced": None},
        "graphFields": {},
    }


async def test_diff_with_variables_that_are_not_both_objects_replaces_them_whole(api: Api) -> None:
    script = await api.create_script("vars-replaced")
    await api.create_version(script["id"])
    await api.create_version(script["id"], variablesDef=["name", "phone"])

    body = (await api.get(f"/scripts/{script['id']}/versions/1/diff/2")).json()

    assert body["variablesDef"] == {
        "added": {},
        "removed": {},
        "changed": {},
        "replaced": {"from": None, "to": ["name", "phone"]},
    }


async def test_diff_with_unknown_version_is_not_found(api: Api) -> None:
    script = await two_versions(api)

    for path in ("1/diff/3", "3/diff/1", "0/diff/2", "7/diff/7"):
        body = assert_error(await api.get(f"/scripts/{script['id']}/versions/{path}"), 404, "NOT_FOUND")
        assert "Version" in body["message"]


async def test_diff_of_unknown_script_is_not_found(api: Api) -> None:
    response = await api.get("/scripts/0190b5a0-0000-7000-8000-000000000000/versions/1/diff/2")

    body = assert_error(response, 404, "NOT_FOUND")
    assert body["message"] == "No script with this id."


async def test_diff_of_another_tenants_script_is_not_found(api: Api, other_api: Api) -> None:
    script = await two_versions(api)

    response = await other_api.get(f"/scripts/{script['id']}/versions/1/diff/2")

    body = assert_error(response, 404, "NOT_FOUND")
    assert body["message"] == "No script with this id."
    assert "Hello" not in response.text


async def test_diff_needs_a_bearer_token(api: Api) -> None:
    script = await two_versions(api)

    response = await api.as_(token=None).get(f"/scripts/{script['id']}/versions/1/diff/2")

    assert_error(response, 401, "UNAUTHORIZED")


async def test_diff_with_version_beyond_any_stored_number_is_not_found(api: Api) -> None:
    script = await two_versions(api)

    response = await api.get(f"/scripts/{script['id']}/versions/1/diff/99999999999")

    body = assert_error(response, 404, "NOT_FOUND")
    assert body["message"] == "Version 99999999999 of this script does not exist."
