"""Starting, finishing and reading runs (SPEC section 5)."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from tests.support.api import Api, assert_error
from tests.support.runs import get_run, script_with_version, start_run

RUN_FIELDS = {
    "id",
    "tenantId",
    "scriptId",
    "version",
    "status",
    "triggerType",
    "scheduleId",
    "plannedAt",
    "triggeringEventId",
    "eventData",
    "startedById",
    "connectorType",
    "connectorKey",
    "startedAt",
    "endedAt",
}
MILLISECOND_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_smoke_flow_start_set_variables_finish_then_get_shows_typed_values(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(
        f"/runs/{run['runId']}/vars",
        json=[
            {"key": "name", "strVal": "Ada"},
            {"key": "age", "numVal": 36},
            {"key": "consent", "boolVal": True},
            {"key": "address", "jsonVal": {"city": "London", "lines": ["1 Main St"]}},
        ],
    )
    assert response.status_code == 200, response.text
    finished = await api.post(f"/runs/{run['runId']}/finish", json={"status": "SUCCEEDED"})
    assert finished.status_code == 200, finished.text
    detail = await get_run(api, run["runId"])

    assert detail["status"] == "SUCCEEDED"
    assert MILLISECOND_UTC.match(detail["endedAt"])
    values = {v["key"]: v for v in detail["vars"]}
    assert values["name"]["strVal"] == "Ada"
    assert values["age"]["numVal"] == 36
    assert values["consent"]["boolVal"] is True
    assert values["address"]["jsonVal"] == {"city": "London", "lines": ["1 Main St"]}
    assert values["name"]["numVal"] is None
    assert values["consent"]["jsonVal"] is None
    assert detail["steps"] == []


async def test_start_run_returns_every_run_field_with_run_id(api: Api, tenant: str) -> None:
    script_id, version = await script_with_version(api)

    response = await api.post("/runs", json={"scriptId": script_id, "version": version})

    assert response.status_code == 201, response.text
    run = response.json()
    assert set(run) == RUN_FIELDS | {"runId"}
    assert run["runId"] == run["id"]
    assert uuid.UUID(run["id"]).version == 7
    assert run["tenantId"] == tenant
    assert (run["scriptId"], run["version"]) == (script_id, version)
    assert (run["status"], run["triggerType"]) == ("RUNNING", "API_RUN")
    assert run["startedById"] == "alice"  # the caller, when not given
    assert MILLISECOND_UTC.match(run["startedAt"])
    for absent in ("scheduleId", "plannedAt", "triggeringEventId", "eventData", "endedAt"):
        assert run[absent] is None
    assert run["connectorType"] is None
    assert run["connectorKey"] is None


async def test_start_run_keeps_given_starter_and_connector(api: Api) -> None:
    run = await start_run(api, startedById="robot-7", connectorType="whatsapp", connectorKey="+4912345")

    assert (run["startedById"], run["connectorType"], run["connectorKey"]) == (
        "robot-7",
        "whatsapp",
        "+4912345",
    )


async def test_start_run_of_a_published_version(api: Api) -> None:
    script_id, version = await script_with_version(api)
    await api.publish(script_id, version)

    run = await start_run(api, script_id, version)

    assert run["version"] == version


async def test_start_run_of_unknown_script_is_404(api: Api) -> None:
    response = await api.post("/runs", json={"scriptId": str(uuid.uuid4()), "version": 1})

    assert_error(response, 404, "NOT_FOUND")


async def test_start_run_of_another_tenants_script_is_404(api: Api, other_api: Api) -> None:
    script_id, version = await script_with_version(other_api)

    response = await api.post("/runs", json={"scriptId": script_id, "version": version})

    assert_error(response, 404, "NOT_FOUND")


async def test_start_run_of_missing_version_is_422_version_not_found(api: Api) -> None:
    script_id, _ = await script_with_version(api)

    response = await api.post("/runs", json={"scriptId": script_id, "version": 2})

    assert_error(response, 422, "VERSION_NOT_FOUND")
    assert (await api.get("/runs")).json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"version": 1},
        {"scriptId": "not-a-uuid", "version": 1},
        {"scriptId": str(uuid.uuid4()), "version": 0},
        {"scriptId": str(uuid.uuid4()), "version": 2_147_483_648},
        {"scriptId": str(uuid.uuid4()), "version": 1, "status": "FAILED"},
    ],
    ids=["no-script", "bad-script-id", "version-zero", "version-too-large", "unknown-field"],
)
async def test_start_run_with_malformed_body_is_400(api: Api, body: dict) -> None:
    assert_error(await api.post("/runs", json=body), 400, "VALIDATION_ERROR")


async def test_start_run_with_another_tenant_id_in_body_is_403(api: Api) -> None:
    script_id, version = await script_with_version(api)

    response = await api.post("/runs", json={"scriptId": script_id, "version": version, "tenantId": "other"})

    assert_error(response, 403, "TENANT_MISMATCH")


async def test_start_run_without_tenant_header_is_400_tenant_required(api: Api) -> None:
    response = await api.http.post(
        "/runs",
        json={"scriptId": str(uuid.uuid4()), "version": 1},
        headers={"Authorization": f"Bearer {api.token}"},
    )

    assert_error(response, 400, "TENANT_REQUIRED")


async def test_start_run_without_token_is_401(api: Api) -> None:
    response = await api.as_(token=None).post("/runs", json={"scriptId": str(uuid.uuid4()), "version": 1})

    assert_error(response, 401, "UNAUTHORIZED")


async def test_finish_sets_status_and_ended_at(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/finish", json={"status": "FAILED"})

    assert response.status_code == 200, response.text
    finished = response.json()
    assert finished["status"] == "FAILED"
    assert finished["endedAt"] >= finished["startedAt"]
    assert set(finished) == RUN_FIELDS


async def test_finish_twice_with_the_same_status_changes_nothing(api: Api) -> None:
    run = await start_run(api)
    first = (await api.post(f"/runs/{run['id']}/finish", json={"status": "CANCELLED"})).json()

    again = await api.post(f"/runs/{run['id']}/finish", json={"status": "CANCELLED"})

    assert again.status_code == 200, again.text
    assert again.json() == first


async def test_finish_with_a_different_status_is_409_run_finished(api: Api) -> None:
    run = await start_run(api)
    await api.post(f"/runs/{run['id']}/finish", json={"status": "SUCCEEDED"})

    response = await api.post(f"/runs/{run['id']}/finish", json={"status": "FAILED"})

    assert_error(response, 409, "RUN_FINISHED")
    assert (await get_run(api, run["id"]))["status"] == "SUCCEEDED"


async def test_finish_with_another_tenant_id_in_body_is_403(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/finish", json={"status": "FAILED", "tenantId": "other"})

    assert_error(response, 403, "TENANT_MISMATCH")
    assert (await get_run(api, run["id"]))["status"] == "RUNNING"


async def test_concurrent_finishes_with_different_statuses_have_one_winner(api: Api) -> None:
    run = await start_run(api)

    responses = await asyncio.gather(
        *(api.post(f"/runs/{run['id']}/finish", json={"status": s}) for s in ("SUCCEEDED", "FAILED"))
    )

    assert sorted(r.status_code for r in responses) == [200, 409]
    winner = next(r.json() for r in responses if r.status_code == 200)
    assert (await get_run(api, run["id"]))["status"] == winner["status"]


@pytest.mark.parametrize("status", ["RUNNING", "DONE", None])
async def test_finish_with_a_status_that_is_not_final_is_400(api: Api, status: str | None) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/finish", json={"status": status})

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_finish_unknown_run_is_404(api: Api) -> None:
    response = await api.post(f"/runs/{uuid.uuid4()}/finish", json={"status": "SUCCEEDED"})

    assert_error(response, 404, "NOT_FOUND")


async def test_get_unknown_run_is_404(api: Api) -> None:
    assert_error(await api.get(f"/runs/{uuid.uuid4()}"), 404, "NOT_FOUND")


async def test_get_run_with_malformed_id_is_not_found(api: Api) -> None:
    assert_error(await api.get("/runs/not-a-uuid"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("POST", "/vars", [{"key": "k", "strVal": "v"}]),
        ("POST", "/steps", [{"nodeId": "greet", "stepType": "say", "executedAt": "2026-01-01T00:00:00Z"}]),
        ("POST", "/finish", {"status": "SUCCEEDED"}),
    ],
    ids=["get", "vars", "steps", "finish"],
)
async def test_another_tenant_gets_404_on_every_run_route(
    api: Api, other_api: Api, method: str, path: str, body: object
) -> None:
    run = await start_run(api)

    response = await other_api.request(method, f"/runs/{run['id']}{path}", json=body)

    assert_error(response, 404, "NOT_FOUND")
    untouched = await get_run(api, run["id"])
    assert (untouched["status"], untouched["vars"], untouched["steps"]) == ("RUNNING", [], [])


async def test_another_tenant_does_not_see_runs_in_its_list(api: Api, other_api: Api) -> None:
    await start_run(api)

    assert (await other_api.get("/runs")).json()["items"] == []
