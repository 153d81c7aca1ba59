"""Custom endpoints with a signing secret (``Scriptworks-Signature``), secret query parameters,
the body size limit and ``authRequired`` tenant checks of ``/hooks/{tenantId}/{route}``."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from litestar.testing import AsyncTestClient

from app.domain.endpoints.signatures import sign
from app.server.core import create_app
from tests.conftest import make_settings
from tests.integration.endpoints.test_endpoints import call, endpoint, run_of
from tests.support.api import ALICE_TENANT, ALICE_TOKEN, BOB_TOKEN, Api, assert_error
from tests.support.server import ServerProcess
from tests.support.triggers import published_script, runs_of

SECRET = "whsec_" + "A1b2C3d4E5f6G7h8" * 2  # 38 printable characters
OTHER_SECRET = "whsec_" + "Z9y8X7w6V5u4T3s2" * 2
ROUTE = "crm/lead-created"
BODY = b'{"lead": {"id": 7}}'
JSON = {"Content-Type": "application/json"}


async def signed_endpoint(api: Api, **body: Any) -> tuple[str, dict[str, Any]]:
    """A published script with a public endpoint carrying ``SECRET``: (script id, endpoint)."""
    script_id = await published_script(api)
    created = await endpoint(api, script_id, ROUTE, authRequired=False, signingSecret=SECRET, **body)
    return script_id, created


def signature_headers(header: str | bytes) -> dict[str, Any]:
    return {**JSON, "Scriptworks-Signature": header}


def now() -> int:
    return int(time.time())


async def post_signed(api: Api, header: str | bytes | None, body: bytes = BODY) -> httpx.Response:
    headers = signature_headers(header) if header is not None else JSON
    return await call(api, "POST", ROUTE, content=body, headers=headers)


async def assert_refused_without_run(api: Api, script_id: str, response: httpx.Response) -> None:
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"] == "Scriptworks-Signature"
    assert await runs_of(api, scriptId=script_id) == []


# ---- the secret is write-only ------------------------------------------------------------------


async def test_the_signing_secret_is_never_returned_and_signature_required_is_shown(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)
    created = await api.post(
        f"/scripts/{script_id}/endpoints",
        json={"method": "PUT", "route": "other", "authRequired": False, "signingSecret": OTHER_SECRET},
    )
    listed = await api.get(f"/scripts/{script_id}/endpoints")

    assert created.status_code == 201, created.text
    assert listed.status_code == 200, listed.text
    for response, secret in ((created, OTHER_SECRET), (listed, SECRET), (listed, OTHER_SECRET)):
        assert secret not in response.text
        assert "signingSecret" not in response.text
    assert created.json()["signatureRequired"] is True
    assert [e["signatureRequired"] for e in listed.json()["items"]] == [True, True]


async def test_an_endpoint_without_a_signing_secret_shows_signature_required_false(api: Api) -> None:
    created = await endpoint(api, await published_script(api), authRequired=False)

    assert created["signatureRequired"] is False


async def test_a_signing_secret_shorter_than_32_characters_is_400(api: Api) -> None:
    response = await api.post(
        f"/scripts/{await published_script(api)}/endpoints",
        json={"method": "POST", "route": ROUTE, "signingSecret": "x" * 31},
    )

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "signingSecret" in json.dumps(body), body
    assert await endpoint(api, await published_script(api), ROUTE, signingSecret="x" * 32)


# ---- signed requests ---------------------------------------------------------------------------


async def test_a_correctly_signed_request_starts_a_run_without_the_signature_or_secret(api: Api) -> None:
    await signed_endpoint(api)
    header = sign(SECRET, BODY, now())

    run = await run_of(api, await post_signed(api, header))

    data = run["eventData"]
    assert data["body"] == {"lead": {"id": 7}}
    assert "scriptworks-signature" not in data["headers"]
    dumped = json.dumps(run)
    assert header not in dumped
    assert header.partition(",v1=")[2] not in dumped
    assert SECRET not in dumped


async def test_a_signature_made_with_another_secret_is_401_and_starts_no_run(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)

    response = await post_signed(api, sign(OTHER_SECRET, BODY, now()))

    await assert_refused_without_run(api, script_id, response)


async def test_a_request_without_the_signature_header_is_401_and_starts_no_run(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)

    response = await post_signed(api, None)

    await assert_refused_without_run(api, script_id, response)


async def test_a_malformed_signature_header_is_401_and_starts_no_run(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)
    digest = sign(SECRET, BODY, now()).partition(",v1=")[2]
    malformed = [
        "garbage",
        f"v1={digest}",  # no timestamp
        f"t={now()}",  # no v1
        f"t={now()},v1=",
        f"t=soon,v1={digest}",
        f"t=-{now()},v1={digest}",
        f"t={now()}.5,v1={digest}",
        f"t=1{'0' * 12},v1={digest}",
        f"t={now()};v1={digest}",
        f"v0={digest},t={now()}",
    ]

    responses = [await post_signed(api, header) for header in malformed]

    for header, response in zip(malformed, responses, strict=True):
        assert response.status_code == 401, (header, response.text)
        await assert_refused_without_run(api, script_id, response)


async def test_a_non_ascii_digit_in_the_signature_timestamp_is_401_not_500(
    api: Api, live_server: ServerProcess
) -> None:
    """On a real server, which hands the app the header's bytes as sent (the in-process test
    client re-encodes them as UTF-8). Latin-1 superscript two: str.isdigit() is true, int() refuses it."""
    script_id, _ = await signed_endpoint(api)

    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        response = await client.post(
            f"/hooks/{api.tenant}/{ROUTE}", content=BODY, headers=signature_headers(b"t=\xb2,v1=" + b"0" * 64)
        )

    await assert_refused_without_run(api, script_id, response)


async def test_a_stale_signature_timestamp_is_401_and_starts_no_run(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)
    stale = math.floor(time.time()) - 301

    response = await post_signed(api, sign(SECRET, BODY, stale))

    await assert_refused_without_run(api, script_id, response)


async def test_a_future_signature_timestamp_is_401_and_starts_no_run(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)
    future = math.ceil(time.time()) + 301

    response = await post_signed(api, sign(SECRET, BODY, future))

    await assert_refused_without_run(api, script_id, response)


async def test_a_valid_signature_for_another_body_is_401_and_starts_no_run(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)
    header = sign(SECRET, BODY, now())

    response = await post_signed(api, header, b'{"lead": {"id": 8}}')

    await assert_refused_without_run(api, script_id, response)


async def test_a_signature_with_several_v1_values_is_accepted_when_one_matches(api: Api) -> None:
    await signed_endpoint(api)
    timestamp = now()
    old = sign(OTHER_SECRET, BODY, timestamp).partition(",v1=")[2]
    current = sign(SECRET, BODY, timestamp).partition(",v1=")[2]

    first = await post_signed(api, f"t={timestamp},v1={old},v1={current}")
    second = await post_signed(api, f"t={timestamp}, v1={current}, v1={old}")

    await run_of(api, first)
    await run_of(api, second)


async def test_a_signature_with_several_v1_values_none_matching_is_401(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)
    timestamp = now()
    wrong = [sign(OTHER_SECRET, BODY, timestamp).partition(",v1=")[2], "0" * 64]

    response = await post_signed(api, f"t={timestamp},v1={wrong[0]},v1={wrong[1]}")

    await assert_refused_without_run(api, script_id, response)


# ---- secret query parameters -------------------------------------------------------------------


async def test_secret_query_parameters_are_redacted_in_the_run_and_others_kept(api: Api) -> None:
    await endpoint(api, await published_script(api), ROUTE, authRequired=False)
    secrets = {
        "Token": "tok-1",
        "access_token": "tok-2",
        "KEY": "tok-3",
        "Api_Key": "tok-4",
        "secret": "tok-5",
        "Signature": "tok-6",
        "PASSWORD": "tok-7",
    }
    others = {"source": "web", "tokens": "plain-1", "keyword": "plain-2", "Page": "3"}
    params = [*secrets.items(), ("token", "tok-8"), ("token", "tok-9"), *others.items(), ("tag", "a")]
    params.append(("tag", "b"))

    run = await run_of(api, await call(api, "POST", ROUTE, params=params))

    query = run["eventData"]["query"]
    assert query == {
        **dict.fromkeys(secrets, "[redacted]"),
        "token": ["[redacted]", "[redacted]"],
        **others,
        "tag": ["a", "b"],
    }
    dumped = json.dumps(run)
    assert not [
        value for value in ("tok-1", "tok-2", "tok-3", "tok-4", "tok-5", "tok-6", "tok-7") if value in dumped
    ]
    assert "tok-8" not in dumped
    assert "tok-9" not in dumped


# ---- body size limit ---------------------------------------------------------------------------


@asynccontextmanager
async def limited_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url, HOOK_MAX_BODY_BYTES="2048"))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


async def test_a_body_over_hook_max_body_bytes_is_413_and_starts_no_run(api: Api, database_url: str) -> None:
    script_id = await published_script(api)
    await endpoint(api, script_id, ROUTE, authRequired=False)
    url = f"/hooks/{api.tenant}/{ROUTE}"
    headers = {"Content-Type": "text/plain"}

    async with limited_client(database_url) as client:
        over = await client.post(url, content=b"x" * 2049, headers=headers)
        runs_after_over = await runs_of(api, scriptId=script_id)
        at_limit = await client.post(url, content=b"x" * 2048, headers=headers)

    assert_error(over, 413, "PAYLOAD_TOO_LARGE")
    assert runs_after_over == []
    assert at_limit.status_code == 202, at_limit.text
    assert len(await runs_of(api, scriptId=script_id)) == 1


async def test_a_chunked_body_over_the_limit_is_413_and_starts_no_run(
    api: Api, live_server: ServerProcess
) -> None:
    """On a real server: the in-process test client cannot send a body without content-length."""
    script_id = await published_script(api)
    await endpoint(api, script_id, ROUTE, authRequired=False)

    async def chunks(total: int) -> AsyncIterator[bytes]:
        for _ in range(total // 1024):
            yield b"x" * 1024

    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        over = await client.post(
            f"/hooks/{api.tenant}/{ROUTE}", content=chunks(300 * 1024), headers={"Content-Type": "text/plain"}
        )
        runs_after_over = await runs_of(api, scriptId=script_id)
        under = await client.post(
            f"/hooks/{api.tenant}/{ROUTE}", content=chunks(16 * 1024), headers={"Content-Type": "text/plain"}
        )

    assert "content-length" not in over.request.headers
    assert over.request.headers["transfer-encoding"] == "chunked"
    assert_error(over, 413, "PAYLOAD_TOO_LARGE")
    assert runs_after_over == []
    assert under.status_code == 202, under.text
    assert len(await runs_of(api, scriptId=script_id)) == 1


async def test_a_body_over_the_default_256_kib_limit_is_413_and_starts_no_run(api: Api) -> None:
    script_id = await published_script(api)
    await endpoint(api, script_id, ROUTE, authRequired=False)

    response = await call(
        api, "POST", ROUTE, content=b"x" * (300 * 1024), headers={"Content-Type": "text/plain"}
    )

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await runs_of(api, scriptId=script_id) == []


async def test_a_signed_body_over_the_limit_is_413_and_starts_no_run(api: Api) -> None:
    script_id, _ = await signed_endpoint(api)
    body = b"x" * (300 * 1024)

    response = await call(
        api,
        "POST",
        ROUTE,
        content=body,
        headers={"Content-Type": "text/plain", "Scriptworks-Signature": sign(SECRET, body, now())},
    )

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert await runs_of(api, scriptId=script_id) == []


# ---- authRequired and the path's tenant --------------------------------------------------------


async def alice_endpoint(api: Api) -> tuple[Api, str, str]:
    """An authRequired endpoint in alice's tenant, on a route of this test's own."""
    alice = api.as_(tenant=ALICE_TENANT, token=ALICE_TOKEN)
    script_id = await published_script(alice)
    route = f"auth/{uuid.uuid4().hex[:12]}"
    created = await endpoint(alice, script_id, route)
    assert created["authRequired"] is True
    return alice, script_id, route


async def test_a_token_granted_another_tenant_is_403_tenant_forbidden_and_starts_no_run(api: Api) -> None:
    alice, script_id, route = await alice_endpoint(api)

    response = await call(alice, "POST", route, token=BOB_TOKEN, json={"n": 1})

    assert_error(response, 403, "TENANT_FORBIDDEN")
    assert await runs_of(alice, scriptId=script_id) == []


async def test_an_auth_required_endpoint_without_a_token_is_401_and_starts_no_run(api: Api) -> None:
    alice, script_id, route = await alice_endpoint(api)

    missing = await call(alice, "POST", route, json={"n": 1})
    invalid = await call(alice, "POST", route, token="not-a-token", json={"n": 1})

    assert_error(missing, 401, "UNAUTHORIZED")
    assert_error(invalid, 401, "UNAUTHORIZED")
    assert await runs_of(alice, scriptId=script_id) == []


async def test_an_auth_required_endpoint_accepts_a_token_granted_the_tenant(api: Api) -> None:
    alice, script_id, route = await alice_endpoint(api)

    run = await run_of(alice, await call(alice, "POST", route, token=ALICE_TOKEN, json={"n": 1}))

    assert run["eventData"]["authenticated"] is True
    assert run["startedById"] == "alice"
    assert run["scriptId"] == script_id
    assert ALICE_TOKEN not in json.dumps(run)
