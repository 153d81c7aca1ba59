"""Idempotency-Key: one effect per key, exact replays, in-flight and reuse errors, atomicity."""

from __future__ import annotations

import asyncio
import datetime
import uuid

import asyncpg
import pytest

import app.lib.idempotency as idempotency
from app.config import Settings
from app.lib.db import asyncpg_connect_kwargs
from app.worker.maintenance import purge_expired_idempotency_keys
from tests.support.api import Api, assert_error
from tests.support.runs import script_with_version

GRAPH = {"graphJson": {"nodes": [{"id": "a", "type": "say"}], "edges": []}}
COMMAND = {"command": "Billing.Charge.v1", "actor": {"userId": "u"}, "payload": {"amount": 3}}


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"key-{uuid.uuid4()}"}


async def test_twenty_parallel_version_posts_with_one_key_create_one_version(api: Api) -> None:
    script = await api.create_script("parallel")
    headers = key()

    responses = await asyncio.gather(
        *(api.post(f"/scripts/{script['id']}/versions", json=GRAPH, headers=headers) for _ in range(20))
    )

    originals = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    replays = [
        r for r in responses if r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"
    ]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(originals) == 1
    assert len(originals) + len(replays) + len(in_flight) == 20
    for response in in_flight:
        assert_error(response, 409, "IDEMPOTENCY_IN_PROGRESS")
    for response in replays:
        assert response.content == originals[0].content
    versions = (await api.get(f"/scripts/{script['id']}/versions")).json()["items"]
    assert [v["version"] for v in versions] == [1]

    later = await api.post(f"/scripts/{script['id']}/versions", json=GRAPH, headers=headers)
    assert later.status_code == 201
    assert later.headers["Idempotent-Replayed"] == "true"
    assert later.content == originals[0].content
    assert later.headers["content-type"] == originals[0].headers["content-type"]


async def test_twenty_parallel_command_posts_with_one_key_create_one_outbox_row(api: Api) -> None:
    headers = key()
    body = {**COMMAND, "correlationId": f"idem-{uuid.uuid4().hex[:8]}"}

    responses = await asyncio.gather(*(api.post("/commands", json=body, headers=headers) for _ in range(20)))

    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {202, 409}
    accepted = [r for r in responses if r.status_code == 202]
    assert len([r for r in accepted if "Idempotent-Replayed" not in r.headers]) == 1
    assert len({r.content for r in accepted}) == 1
    for response in responses:
        if response.status_code == 409:
            assert_error(response, 409, "IDEMPOTENCY_IN_PROGRESS")
    # A second outbox row would have been refused as a duplicate correlationId; a replay is not.
    replay = await api.post("/commands", json=body, headers=headers)
    assert replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == accepted[0].content


async def test_same_key_with_a_different_body_is_key_reused_and_changes_nothing(api: Api) -> None:
    script = await api.create_script("reuse")
    headers = key()
    await api.post(f"/scripts/{script['id']}/versions", json=GRAPH, headers=headers)

    response = await api.post(
        f"/scripts/{script['id']}/versions", json={**GRAPH, "changelog": "different"}, headers=headers
    )

    assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
    assert (await api.get(f"/scripts/{script['id']}")).json()["latestVersion"] == 1


async def test_same_key_on_another_path_is_key_reused(api: Api) -> None:
    first = await api.create_script("path-a")
    second = await api.create_script("path-b")
    headers = key()
    await api.post(f"/scripts/{first['id']}/versions", json=GRAPH, headers=headers)

    response = await api.post(f"/scripts/{second['id']}/versions", json=GRAPH, headers=headers)

    assert_error(response, 422, "IDEMPOTENCY_KEY_REUSED")
    assert (await api.get(f"/scripts/{second['id']}")).json()["latestVersion"] == 0


async def test_keys_are_scoped_per_tenant(api: Api, other_api: Api) -> None:
    headers = key()

    mine = await api.post("/scripts", json={"name": "A", "slug": "a"}, headers=headers)
    theirs = await other_api.post("/scripts", json={"name": "A", "slug": "a"}, headers=headers)

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]


async def test_failure_after_the_effect_before_commit_leaves_neither_and_a_retry_succeeds_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = await api.create_script("atomic")
    headers = key()
    real = idempotency._kept_headers
    calls = {"n": 0}

    def crash_once(raw):  # runs after the version was written, before the key and the commit
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected crash")
        return real(raw)

    monkeypatch.setattr(idempotency, "_kept_headers", crash_once)

    failed = await api.post(f"/scripts/{script['id']}/versions", json=GRAPH, headers=headers)

    assert_error(failed, 500, "INTERNAL_ERROR")
    assert (await api.get(f"/scripts/{script['id']}")).json()["latestVersion"] == 0
    audit = (await api.get(f"/scripts/{script['id']}/audit")).json()["items"]
    assert [e["action"] for e in audit] == ["CREATE"]

    retried = await api.post(f"/scripts/{script['id']}/versions", json=GRAPH, headers=headers)
    again = await api.post(f"/scripts/{script['id']}/versions", json=GRAPH, headers=headers)

    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert retried.json()["version"] == 1
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await api.get(f"/scripts/{script['id']}")).json()["latestVersion"] == 1


async def test_a_client_error_of_the_handler_is_stored_and_replayed(api: Api) -> None:
    await api.create_script("taken-slug")
    headers = key()

    first = await api.post("/scripts", json={"name": "X", "slug": "taken-slug"}, headers=headers)
    second = await api.post("/scripts", json={"name": "X", "slug": "taken-slug"}, headers=headers)

    assert_error(first, 409, "SLUG_TAKEN")
    assert_error(second, 409, "SLUG_TAKEN")
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content


async def test_a_retry_gets_the_first_4xx_even_when_the_state_has_changed_since(api: Api) -> None:
    script = await api.create_script()
    await api.create_version(script["id"])
    headers = key()
    body = {"scriptId": script["id"], "version": 2}

    first = await api.post("/runs", json=body, headers=headers)
    await api.create_version(script["id"])  # version 2 exists now
    retried = await api.post("/runs", json=body, headers=headers)
    fresh = await api.post("/runs", json=body)

    assert_error(first, 422, "VERSION_NOT_FOUND")
    assert_error(retried, 422, "VERSION_NOT_FOUND")
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert fresh.status_code == 201


async def test_a_stored_4xx_leaves_no_effect_of_the_refused_request(api: Api) -> None:
    """The handler's partial work (here: nothing may be half-written) is rolled back, the answer kept."""
    script = await api.create_script("dup-slug")
    headers = key()

    refused = await api.post("/scripts", json={"name": "Dup", "slug": "dup-slug"}, headers=headers)
    audit = (await api.get("/audit", params={"limit": 200})).json()["items"]

    assert_error(refused, 409, "SLUG_TAKEN")
    assert [entry["scriptId"] for entry in audit] == [script["id"]]


@pytest.mark.parametrize("bad", ["", "x" * 256, "tab\there"])
async def test_malformed_keys_are_validation_errors(api: Api, bad: str) -> None:
    response = await api.post("/scripts", json={"name": "K", "slug": "k"}, headers={"Idempotency-Key": bad})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "Idempotency-Key"
    assert (await api.get("/scripts")).json()["items"] == []


async def test_longest_allowed_key_works(api: Api) -> None:
    response = await api.post(
        "/scripts", json={"name": "K", "slug": "k"}, headers={"Idempotency-Key": "k" * 255}
    )

    assert response.status_code == 201


async def test_key_on_a_get_is_ignored(api: Api) -> None:
    response = await api.get("/scripts", headers=key())

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response.headers


async def test_replay_carries_the_new_requests_correlation_id(api: Api) -> None:
    headers = key()
    first = await api.post(
        "/scripts", json={"name": "C", "slug": "c"}, headers={**headers, "Correlation-Id": "one"}
    )
    second = await api.post(
        "/scripts", json={"name": "C", "slug": "c"}, headers={**headers, "Correlation-Id": "two"}
    )

    assert first.headers["Correlation-Id"] == "one"
    assert second.headers["Correlation-Id"] == "two"
    assert second.content == first.content


async def test_oversized_body_with_a_key_is_payload_too_large(api: Api) -> None:
    body = b'{"name":"big","slug":"big","description":"' + b"x" * (5 * 1024 * 1024) + b'"}'

    response = await api.post("/scripts", content=body, headers={**key(), "Content-Type": "application/json"})

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_expired_keys_are_purged_and_live_ones_kept(api: Api, settings: Settings) -> None:
    expiring = key()
    await api.post("/scripts", json={"name": "E", "slug": "e"}, headers=expiring)
    assert settings.database_url is not None
    pool = await asyncpg.create_pool(**asyncpg_connect_kwargs(settings.database_url), min_size=1, max_size=2)
    try:
        stored = await pool.fetchval(
            "SELECT expires_at FROM idempotency_keys WHERE tenant_id = $1 AND key = $2",
            api.tenant,
            expiring["Idempotency-Key"],
        )
        kept = await purge_expired_idempotency_keys(pool, now=stored - datetime.timedelta(seconds=1))
        assert (
            await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", api.tenant) == 1
        )
        purged = await purge_expired_idempotency_keys(pool, now=stored + datetime.timedelta(seconds=1))
        left = await pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", api.tenant)
    finally:
        await pool.close()

    assert kept >= 0
    assert purged >= 1
    assert left == 0
    # With its key gone, the same request is new again (and meets the slug rule).
    assert_error(
        await api.post("/scripts", json={"name": "E", "slug": "e"}, headers=expiring), 409, "SLUG_TAKEN"
    )


async def test_run_start_with_a_key_is_stored_with_the_run_in_one_transaction(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    script_id, version = await script_with_version(api)
    headers = key()
    body = {"scriptId": script_id, "version": version}
    real = idempotency._kept_headers
    calls = {"n": 0}

    def crash_once(raw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected crash")
        return real(raw)

    monkeypatch.setattr(idempotency, "_kept_headers", crash_once)

    failed = await api.post("/runs", json=body, headers=headers)
    assert_error(failed, 500, "INTERNAL_ERROR")
    assert (await api.get("/runs", params={"scriptId": script_id})).json()["items"] == []

    first = await api.post("/runs", json=body, headers=headers)
    replay = await api.post("/runs", json=body, headers=headers)

    assert first.status_code == replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == first.content
    runs = (await api.get("/runs", params={"scriptId": script_id})).json()["items"]
    assert [r["id"] for r in runs] == [first.json()["runId"]]


async def test_run_steps_with_a_key_are_recorded_once(api: Api) -> None:
    script_id, version = await script_with_version(api)
    run = (await api.post("/runs", json={"scriptId": script_id, "version": version})).json()
    steps = [{"nodeId": "greet", "stepType": "say", "executedAt": "2026-01-01T00:00:00.000Z"}]
    headers = key()

    await asyncio.gather(
        *(api.post(f"/runs/{run['runId']}/steps", json=steps, headers=headers) for _ in range(5))
    )

    stored = (await api.get(f"/runs/{run['runId']}")).json()["steps"]
    assert len(stored) == 1
