"""Custom endpoints: POST /scripts/{id}/endpoints, and requests to /hooks/{tenantId}/{route}
that start ENDPOINT_REQUEST runs."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from tests.support.api import ADMIN_TOKEN, USER_TOKEN, Api, assert_error
from tests.support.runs import get_run
from tests.support.server import ServerProcess
from tests.support.triggers import draft_script, published_script


async def endpoint(api: Api, script_id: str, route: str = "crm/lead-created", **body: Any) -> dict[str, Any]:
    response = await api.post(
        f"/scripts/{script_id}/endpoints", json={"method": "POST", "route": route, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def call(api: Api, method: str, route: str, *, token: str | None = None, **kw: Any) -> Any:
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return await api.http.request(method, f"/hooks/{api.tenant}/{route}", headers=headers, **kw)


async def run_of(api: Api, response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    assert set(response.json()) == {"runId"}
    return await get_run(api, response.json()["runId"])


# ---- managing endpoints ------------------------------------------------------------------------


async def test_create_an_endpoint(api: Api, tenant: str) -> None:
    script_id = await published_script(api)

    response = await api.post(
        f"/scripts/{script_id}/endpoints", json={"method": "PUT", "route": "devices/door_1/state"}
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["method"], body["route"], body["authRequired"], body["scriptId"]) == (
        "PUT",
        "devices/door_1/state",
        True,
        script_id,
    )
    assert body["urlPath"] == f"/hooks/{tenant}/devices/door_1/state"


async def test_a_route_taken_for_the_method_in_the_tenant_is_409_route_taken(api: Api) -> None:
    await endpoint(api, await published_script(api), "crm/lead")

    response = await api.post(
        f"/scripts/{await published_script(api)}/endpoints", json={"method": "POST", "route": "crm/lead"}
    )

    assert_error(response, 409, "ROUTE_TAKEN")


async def test_the_same_route_with_another_method_or_in_another_tenant_is_free(
    api: Api, other_api: Api
) -> None:
    script_id = await published_script(api)
    await endpoint(api, script_id, "crm/lead")

    other_method = await api.post(
        f"/scripts/{script_id}/endpoints", json={"method": "GET", "route": "crm/lead"}
    )
    other_tenant = await other_api.post(
        f"/scripts/{await published_script(other_api)}/endpoints",
        json={"method": "POST", "route": "crm/lead"},
    )

    assert (other_method.status_code, other_tenant.status_code) == (201, 201)


@pytest.mark.parametrize(
    "body",
    [
        {"method": "POST", "route": "/crm/lead"},
        {"method": "POST", "route": "Crm/Lead"},
        {"method": "POST", "route": "crm//lead"},
        {"method": "POST", "route": "crm/lead/"},
        {"method": "POST", "route": "crm/../lead"},
        {"method": "POST", "route": ""},
        {"method": "POST", "route": "crm lead"},
        {"method": "HEAD", "route": "crm/lead"},
        {"method": "POST"},
    ],
    ids=[
        "leading-slash",
        "uppercase",
        "double-slash",
        "trailing-slash",
        "dots",
        "empty",
        "space",
        "method",
        "no-route",
    ],
)
async def test_a_bad_endpoint_is_400(api: Api, body: dict[str, Any]) -> None:
    response = await api.post(f"/scripts/{await published_script(api)}/endpoints", json=body)

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_list_and_delete_endpoints(api: Api) -> None:
    script_id = await published_script(api)
    first = await endpoint(api, script_id, "a")
    second = await endpoint(api, script_id, "b")

    listed = (await api.get(f"/scripts/{script_id}/endpoints")).json()["items"]
    deleted = await api.delete(f"/scripts/{script_id}/endpoints/{first['id']}")
    again = await api.delete(f"/scripts/{script_id}/endpoints/{first['id']}")

    assert [e["id"] for e in listed] == [second["id"], first["id"]]
    assert deleted.status_code == 204
    assert_error(again, 404, "NOT_FOUND")
    assert_error(await call(api, "POST", "a"), 404, "NOT_FOUND")
    assert (
        await api.post(f"/scripts/{script_id}/endpoints", json={"method": "POST", "route": "a"})
    ).status_code == 201


async def test_another_tenants_script_and_endpoints_are_404(api: Api, other_api: Api) -> None:
    script_id = await published_script(api)
    created = await endpoint(api, script_id)

    responses = [
        await other_api.post(f"/scripts/{script_id}/endpoints", json={"method": "POST", "route": "x"}),
        await other_api.get(f"/scripts/{script_id}/endpoints"),
        await other_api.delete(f"/scripts/{script_id}/endpoints/{created['id']}"),
        await call(other_api, "POST", "crm/lead-created"),
    ]

    for response in responses:
        assert_error(response, 404, "NOT_FOUND")


# ---- calling endpoints -------------------------------------------------------------------------


async def test_a_request_starts_an_endpoint_run_with_the_standard_event_data(api: Api, tenant: str) -> None:
    script_id = await published_script(api)
    created = await endpoint(api, script_id, authRequired=False)

    response = await call(
        api, "POST", "crm/lead-created", params={"source": "web", "tag": ["a", "b"]}, json={"lead": {"id": 7}}
    )

    run = await run_of(api, response)
    assert (run["triggerType"], run["scriptId"], run["version"], run["status"]) == (
        "ENDPOINT_REQUEST",
        script_id,
        1,
        "RUNNING",
    )
    assert (run["triggeringEventId"], run["scheduleId"], run["startedById"]) == (None, None, None)
    data = run["eventData"]
    assert set(data) == {"endpoint", "authenticated", "headers", "query", "body"}
    assert data["endpoint"] == {
        "id": created["id"],
        "method": "POST",
        "route": "crm/lead-created",
        "path": f"/hooks/{tenant}/crm/lead-created",
    }
    assert data["authenticated"] is False
    assert data["query"] == {"source": "web", "tag": ["a", "b"]}
    assert data["body"] == {"lead": {"id": 7}}
    assert data["headers"]["content-type"] == "application/json"


async def test_secret_headers_are_not_copied_into_the_run(api: Api) -> None:
    await endpoint(api, await published_script(api), authRequired=False)
    secrets = {
        "Authorization": f"Bearer {ADMIN_TOKEN}",
        "Proxy-Authorization": "Basic abc",
        "Cookie": "session=abc",
        "X-Api-Key": "k",
        "X-Auth-Token": "t",
        "X-Hub-Signature-256": "sha256=abc",
        "X-Client-Secret": "s",
        "X-Db-Password": "p",
        "X-Session-Id": "s",
        "Idempotency-Key": "i",
    }

    response = await call(api, "POST", "crm/lead-created", headers={**secrets, "X-Request-Source": "crm"})

    headers = (await run_of(api, response))["eventData"]["headers"]
    assert headers["x-request-source"] == "crm"
    assert not {name.lower() for name in secrets} & set(headers)
    assert not any(secret in json.dumps(headers) for secret in ("abc", ADMIN_TOKEN))


async def test_an_endpoint_that_requires_auth_refuses_requests_without_a_valid_token(api: Api) -> None:
    await endpoint(api, await published_script(api))

    missing = await call(api, "POST", "crm/lead-created")
    invalid = await call(api, "POST", "crm/lead-created", token="not-a-token")

    assert_error(missing, 401, "UNAUTHORIZED")
    assert_error(invalid, 401, "UNAUTHORIZED")


async def test_an_endpoint_that_requires_auth_accepts_a_valid_token(api: Api) -> None:
    await endpoint(api, await published_script(api))

    run = await run_of(api, await call(api, "POST", "crm/lead-created", token=USER_TOKEN))

    assert run["eventData"]["authenticated"] is True
    assert run["startedById"] == "bob"
    assert "authorization" not in run["eventData"]["headers"]


async def test_a_public_endpoint_notes_a_valid_token_when_one_is_sent(api: Api) -> None:
    await endpoint(api, await published_script(api), authRequired=False)

    anonymous = await run_of(api, await call(api, "POST", "crm/lead-created"))
    bad_token = await run_of(api, await call(api, "POST", "crm/lead-created", token="nope"))
    signed_in = await run_of(api, await call(api, "POST", "crm/lead-created", token=ADMIN_TOKEN))

    assert [r["eventData"]["authenticated"] for r in (anonymous, bad_token, signed_in)] == [
        False,
        False,
        True,
    ]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_every_method_can_have_an_endpoint(api: Api, method: str) -> None:
    await endpoint(api, await published_script(api), "things", method=method, authRequired=False)

    run = await run_of(api, await call(api, method, "things"))

    assert run["eventData"]["endpoint"]["method"] == method
    assert run["eventData"]["body"] is None


async def test_form_and_text_bodies_are_kept(api: Api) -> None:
    await endpoint(api, await published_script(api), authRequired=False)

    form = await run_of(api, await call(api, "POST", "crm/lead-created", data={"a": "1", "b": "2"}))
    text = await run_of(
        api,
        await call(api, "POST", "crm/lead-created", content=b"hello", headers={"Content-Type": "text/plain"}),
    )

    assert form["eventData"]["body"] == {"a": "1", "b": "2"}
    assert text["eventData"]["body"] == "hello"


async def test_an_invalid_json_body_is_400(api: Api) -> None:
    await endpoint(api, await published_script(api), authRequired=False)

    response = await call(
        api, "POST", "crm/lead-created", content=b"{nope", headers={"Content-Type": "application/json"}
    )

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_unknown_route_or_another_method_is_404(api: Api) -> None:
    await endpoint(api, await published_script(api), authRequired=False)

    assert_error(await call(api, "POST", "crm/unknown"), 404, "NOT_FOUND")
    assert_error(await call(api, "GET", "crm/lead-created"), 404, "NOT_FOUND")


async def test_a_script_without_an_active_version_is_404(api: Api) -> None:
    await endpoint(api, await draft_script(api), authRequired=False)

    body = assert_error(await call(api, "POST", "crm/lead-created"), 404, "NOT_FOUND")
    assert "no published" in body["message"]


async def test_an_invalid_tenant_in_the_path_is_404(api: Api) -> None:
    response = await api.http.post("/hooks/bad%20tenant/crm/lead-created")

    assert_error(response, 404, "NOT_FOUND")


async def test_a_body_over_the_limit_is_413(api: Api) -> None:
    await endpoint(api, await published_script(api), authRequired=False)

    response = await call(api, "POST", "crm/lead-created", content=b"x" * (5 * 1024 * 1024 + 1))

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_an_idempotency_key_replays_the_first_run(api: Api) -> None:
    await endpoint(api, await published_script(api), authRequired=False)
    headers = {"Idempotency-Key": f"hook-{uuid.uuid4()}"}

    first = await call(api, "POST", "crm/lead-created", headers=headers, json={"n": 1})
    again = await call(api, "POST", "crm/lead-created", headers=headers, json={"n": 1})

    assert first.status_code == again.status_code == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


# ---- paths that are not routes, on a real server -------------------------------------------------


async def raw_request(server: ServerProcess, method: str, target: str) -> tuple[int, dict[str, Any] | None]:
    """Send the request target exactly as written (clients would normalise it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        head = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close"
        writer.write(f"{head}\r\n\r\n".encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(body) if body.strip() else None


async def test_path_traversal_is_a_clean_404(api: Api, tenant: str, live_server: ServerProcess) -> None:
    await endpoint(api, await published_script(api), "crm/lead", authRequired=False)
    targets = [
        f"/hooks/{tenant}/crm/../crm/lead",
        f"/hooks/{tenant}/x/%2e%2e/crm/lead",
        f"/hooks/{tenant}/x/%2E%2E/crm/lead",
        f"/hooks/{tenant}/crm//lead",
        f"/hooks/{tenant}//crm/lead",
        f"/hooks/{tenant}/crm%2Flead",
        f"/hooks/{tenant}/./crm/lead",
        f"/hooks/{tenant}/crm/lead/",
        f"/hooks/{tenant}/../../scripts",
        "/hooks/%2e%2e/crm/lead",
        f"/hooks/{tenant}/%00",
    ]

    plain = await raw_request(live_server, "POST", f"/hooks/{tenant}/crm/lead")
    results = {target: await raw_request(live_server, "POST", target) for target in targets}

    assert plain[0] == 202
    for target, (status, body) in results.items():
        assert status in (400, 404), (target, status, body)
        assert body is not None, target
        assert body["code"] in ("NOT_FOUND", "VALIDATION_ERROR"), (target, body)
