"""Executed steps: POST /runs/{runId}/steps, checked against the run's version graph (SPEC 5, 5.1)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.api import Api, assert_error
from tests.support.runs import get_run, script_with_version, start_run

CLOSED = {"dataType": "closedQuestionData", "answer": "yes", "probability": 0.92}
CHOICE = {"dataType": "multipleChoiceData", "answer": "book a table", "intentionType": "command"}
REPORT = {"dataType": "reportData", "sent": True, "message": "Summary mailed"}


def step(node_id: str, step_type: str, executed_at: str, **extra: Any) -> dict[str, Any]:
    return {"nodeId": node_id, "stepType": step_type, "executedAt": executed_at, **extra}


async def test_one_step_of_each_type_is_returned_in_executed_at_order_to_the_millisecond(api: Api) -> None:
    run = await start_run(api)
    # Sent out of order; sub-millisecond digits are dropped, offsets normalised to UTC.
    steps = [
        step("summary", "report", "2026-03-01T10:00:00.004999Z", nextNodeId="check", data=REPORT),
        step("greet", "say", "2026-03-01T10:00:00.000123Z", nextNodeId="pause"),
        step("check", "statusCheck", "2026-03-01T11:00:00.005+01:00"),
        step("choose", "multipleChoice", "2026-03-01T10:00:00.003Z", nextNodeId="summary", data=CHOICE),
        step("pause", "wait", "2026-03-01T10:00:00.001Z", nextNodeId="confirm"),
        step("confirm", "closedQuestion", "2026-03-01T10:00:00.002Z", nextNodeId="choose", data=CLOSED),
    ]

    response = await api.post(f"/runs/{run['id']}/steps", json=steps)

    assert response.status_code == 201, response.text
    recorded = (await get_run(api, run["id"]))["steps"]
    assert [(s["nodeId"], s["stepType"], s["executedAt"]) for s in recorded] == [
        ("greet", "say", "2026-03-01T10:00:00.000Z"),
        ("pause", "wait", "2026-03-01T10:00:00.001Z"),
        ("confirm", "closedQuestion", "2026-03-01T10:00:00.002Z"),
        ("choose", "multipleChoice", "2026-03-01T10:00:00.003Z"),
        ("summary", "report", "2026-03-01T10:00:00.004Z"),
        ("check", "statusCheck", "2026-03-01T10:00:00.005Z"),
    ]
    data = {s["nodeId"]: s["data"] for s in recorded}
    assert data == {
        "greet": None,
        "pause": None,
        "confirm": CLOSED,
        "choose": CHOICE,
        "summary": REPORT,
        "check": None,
    }
    assert [s["nextNodeId"] for s in recorded] == ["pause", "confirm", "choose", "summary", "check", None]


async def test_steps_answer_with_the_stored_steps_in_request_order(api: Api) -> None:
    run = await start_run(api)
    steps = [step("pause", "wait", "2026-03-01T10:00:01Z"), step("greet", "say", "2026-03-01T10:00:00Z")]

    response = await api.post(f"/runs/{run['id']}/steps", json=steps)

    assert response.status_code == 201, response.text
    stored = response.json()
    assert [s["nodeId"] for s in stored] == ["pause", "greet"]
    assert set(stored[0]) == {"id", "nodeId", "stepType", "nextNodeId", "executedAt", "data"}
    assert uuid.UUID(stored[0]["id"]).version == 7


async def test_steps_of_several_batches_all_land(api: Api) -> None:
    run = await start_run(api)

    for second in range(3):
        response = await api.post(
            f"/runs/{run['id']}/steps", json=[step("greet", "say", f"2026-03-01T10:00:0{second}Z")]
        )
        assert response.status_code == 201, response.text

    assert len((await get_run(api, run["id"]))["steps"]) == 3


@pytest.mark.parametrize(
    ("bad_step", "code"),
    [
        (step("nowhere", "say", "2026-03-01T10:00:00Z"), "NODE_NOT_IN_VERSION"),
        (step("greet", "say", "2026-03-01T10:00:00Z", nextNodeId="nowhere"), "NODE_NOT_IN_VERSION"),
        (step("greet", "wait", "2026-03-01T10:00:00Z"), "STEP_TYPE_MISMATCH"),
        (step("confirm", "closedQuestion", "2026-03-01T10:00:00Z", data=REPORT), "STEP_DATA_MISMATCH"),
        (step("choose", "multipleChoice", "2026-03-01T10:00:00Z", data=CLOSED), "STEP_DATA_MISMATCH"),
        (step("greet", "say", "2026-03-01T10:00:00Z", data=REPORT), "STEP_DATA_MISMATCH"),
    ],
    ids=[
        "unknown-node",
        "unknown-next-node",
        "type-mismatch",
        "wrong-tag",
        "other-wrong-tag",
        "data-on-a-type-without-data",
    ],
)
async def test_a_step_that_does_not_fit_the_graph_is_422_and_nothing_is_stored(
    api: Api, bad_step: dict[str, Any], code: str
) -> None:
    run = await start_run(api)
    good_step = step("greet", "say", "2026-03-01T09:00:00Z")

    response = await api.post(f"/runs/{run['id']}/steps", json=[good_step, bad_step])

    body = assert_error(response, 422, code)
    assert body["details"][0]["field"].startswith("[1].")
    assert (await get_run(api, run["id"]))["steps"] == []


async def test_every_misfit_of_a_batch_is_reported(api: Api) -> None:
    run = await start_run(api)
    steps = [step("nowhere", "say", "2026-03-01T10:00:00Z"), step("greet", "wait", "2026-03-01T10:00:00Z")]

    body = assert_error(await api.post(f"/runs/{run['id']}/steps", json=steps), 422, "NODE_NOT_IN_VERSION")

    assert [(d["field"], d["code"]) for d in body["details"]] == [
        ("[0].nodeId", "NODE_NOT_IN_VERSION"),
        ("[1].stepType", "STEP_TYPE_MISMATCH"),
    ]


async def test_a_graph_node_of_another_version_is_not_in_this_runs_version(api: Api) -> None:
    script_id, _ = await script_with_version(api, {"nodes": [{"id": "hello", "type": "say"}], "edges": []})
    await api.create_version(script_id, {"nodes": [{"id": "bye", "type": "say"}], "edges": []})
    run = await start_run(api, script_id, 1)

    response = await api.post(f"/runs/{run['id']}/steps", json=[step("bye", "say", "2026-03-01T10:00:00Z")])

    assert_error(response, 422, "NODE_NOT_IN_VERSION")


@pytest.mark.parametrize(
    "bad_step",
    [
        step("greet", "dance", "2026-03-01T10:00:00Z"),
        step("greet", "say", "2026-03-01T10:00:00"),
        step("greet", "say", "yesterday"),
        {"stepType": "say", "executedAt": "2026-03-01T10:00:00Z"},
        step("confirm", "closedQuestion", "2026-03-01T10:00:00Z", data={**CLOSED, "probability": 1.5}),
        step("confirm", "closedQuestion", "2026-03-01T10:00:00Z", data={"dataType": "poemData", "text": "x"}),
        step("confirm", "closedQuestion", "2026-03-01T10:00:00Z", data={"answer": "yes", "probability": 1}),
        step("choose", "multipleChoice", "2026-03-01T10:00:00Z", data={**CHOICE, "intentionType": "maybe"}),
        step("summary", "report", "2026-03-01T10:00:00Z", data={"dataType": "reportData", "sent": True}),
    ],
    ids=[
        "unknown-step-type",
        "time-without-offset",
        "not-a-time",
        "no-node-id",
        "probability-above-one",
        "unknown-tag",
        "no-tag",
        "unknown-intention",
        "missing-field",
    ],
)
async def test_a_malformed_step_is_400(api: Api, bad_step: dict[str, Any]) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/steps", json=[bad_step])

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"].startswith("[0]")


@pytest.mark.parametrize("body", [[], {"nodeId": "greet"}], ids=["empty", "not-an-array"])
async def test_a_step_batch_that_is_not_a_non_empty_array_is_400(api: Api, body: object) -> None:
    run = await start_run(api)

    assert_error(await api.post(f"/runs/{run['id']}/steps", json=body), 400, "VALIDATION_ERROR")


async def test_steps_after_finish_are_409_run_finished(api: Api) -> None:
    run = await start_run(api)
    await api.post(f"/runs/{run['id']}/finish", json={"status": "FAILED"})

    response = await api.post(f"/runs/{run['id']}/steps", json=[step("greet", "say", "2026-03-01T10:00:00Z")])

    assert_error(response, 409, "RUN_FINISHED")
    assert (await get_run(api, run["id"]))["steps"] == []


async def test_steps_for_an_unknown_run_are_404(api: Api) -> None:
    response = await api.post(
        f"/runs/{uuid.uuid4()}/steps", json=[step("greet", "say", "2026-03-01T10:00:00Z")]
    )

    assert_error(response, 404, "NOT_FOUND")
