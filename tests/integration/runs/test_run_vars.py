"""Typed run variables: POST /runs/{runId}/vars (SPEC section 5)."""

from __future__ import annotations

import uuid

import pytest

from tests.support.api import Api, assert_error
from tests.support.runs import get_run, start_run


async def test_vars_answer_with_the_stored_variables(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(
        f"/runs/{run['id']}/vars", json=[{"key": "ratio", "numVal": 0.25}, {"key": "ok", "boolVal": False}]
    )

    assert response.status_code == 200, response.text
    stored = {v["key"]: v for v in response.json()}
    assert stored["ratio"]["numVal"] == 0.25
    assert stored["ok"]["boolVal"] is False
    assert set(stored["ok"]) == {"key", "strVal", "numVal", "boolVal", "jsonVal", "createdAt", "updatedAt"}


async def test_vars_with_the_same_key_overwrite_the_value_and_its_type(api: Api) -> None:
    run = await start_run(api)
    await api.post(f"/runs/{run['id']}/vars", json=[{"key": "answer", "strVal": "forty-two"}])

    response = await api.post(f"/runs/{run['id']}/vars", json=[{"key": "answer", "numVal": 42}])

    assert response.status_code == 200, response.text
    (answer,) = (await get_run(api, run["id"]))["vars"]
    assert (answer["key"], answer["strVal"], answer["numVal"]) == ("answer", None, 42)
    assert answer["updatedAt"] >= answer["createdAt"]


async def test_vars_are_listed_by_key(api: Api) -> None:
    run = await start_run(api)
    await api.post(f"/runs/{run['id']}/vars", json=[{"key": k, "strVal": k} for k in ("b", "c", "a")])

    assert [v["key"] for v in (await get_run(api, run["id"]))["vars"]] == ["a", "b", "c"]


async def test_json_val_keeps_arrays_strings_and_numbers(api: Api) -> None:
    run = await start_run(api)
    items = [{"key": "list", "jsonVal": [1, "two", None]}, {"key": "text", "jsonVal": "plain"}]

    await api.post(f"/runs/{run['id']}/vars", json=items)

    stored = {v["key"]: v["jsonVal"] for v in (await get_run(api, run["id"]))["vars"]}
    assert stored == {"list": [1, "two", None], "text": "plain"}


async def test_var_without_a_value_is_400_naming_the_item(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/vars", json=[{"key": "a", "strVal": "x"}, {"key": "b"}])

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "[1]"
    assert (await get_run(api, run["id"]))["vars"] == []


async def test_var_with_two_values_is_400(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/vars", json=[{"key": "a", "strVal": "x", "boolVal": True}])

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "[0]"


async def test_json_null_does_not_count_as_a_value(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/vars", json=[{"key": "a", "jsonVal": None}])

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_null_beside_one_value_is_accepted(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(f"/runs/{run['id']}/vars", json=[{"key": "a", "strVal": None, "numVal": 1.5}])

    assert response.status_code == 200, response.text
    assert response.json()[0]["numVal"] == 1.5


async def test_duplicate_keys_in_one_request_are_400_and_nothing_is_stored(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(
        f"/runs/{run['id']}/vars", json=[{"key": "k", "strVal": "one"}, {"key": "k", "strVal": "two"}]
    )

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "[1].key"
    assert (await get_run(api, run["id"]))["vars"] == []


@pytest.mark.parametrize(
    "body",
    [
        [],
        [{"key": f"k{i}", "numVal": i} for i in range(1001)],
        {"key": "k", "strVal": "not in an array"},
        [{"key": "", "strVal": "x"}],
        [{"key": "k" * 201, "strVal": "x"}],
        [{"key": "k", "boolVal": "yes"}],
        [{"key": "k", "numVal": True}],
        [{"key": "k", "strVal": "x", "extra": 1}],
    ],
    ids=[
        "empty",
        "too-many",
        "not-an-array",
        "empty-key",
        "long-key",
        "bool-as-string",
        "bool-as-number",
        "unknown-field",
    ],
)
async def test_malformed_vars_are_400(api: Api, body: object) -> None:
    run = await start_run(api)

    assert_error(await api.post(f"/runs/{run['id']}/vars", json=body), 400, "VALIDATION_ERROR")


async def test_a_bad_item_is_named_by_its_index_and_field(api: Api) -> None:
    run = await start_run(api)

    response = await api.post(
        f"/runs/{run['id']}/vars", json=[{"key": "a", "strVal": "x"}, {"key": "b", "boolVal": "yes"}]
    )

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "[1].boolVal"


async def test_vars_after_finish_are_409_run_finished(api: Api) -> None:
    run = await start_run(api)
    await api.post(f"/runs/{run['id']}/finish", json={"status": "SUCCEEDED"})

    response = await api.post(f"/runs/{run['id']}/vars", json=[{"key": "late", "strVal": "x"}])

    assert_error(response, 409, "RUN_FINISHED")
    assert (await get_run(api, run["id"]))["vars"] == []


async def test_vars_for_an_unknown_run_are_404(api: Api) -> None:
    response = await api.post(f"/runs/{uuid.uuid4()}/vars", json=[{"key": "k", "strVal": "x"}])

    assert_error(response, 404, "NOT_FOUND")
