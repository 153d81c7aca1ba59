"""Cross-cutting HTTP rules (SPEC.md section 3): auth, tenant header, correlation ids, the error
shape for the framework's own failures, body limit, CORS."""

from __future__ import annotations

import uuid

import httpx
import pytest
from litestar import get
from litestar.testing import AsyncTestClient
from msgspec.structs import replace

from app.config import Settings
from app.lib.access import ACCESS, PUBLIC
from app.server.core import create_app
from tests.support.api import Api, assert_error

# ---- authentication -------------------------------------------------------------------------


async def test_missing_token_is_unauthorized(api: Api) -> None:
    response = await api.as_(token=None).get("/scripts")

    assert_error(response, 401, "UNAUTHORIZED")


async def test_blank_or_non_bearer_token_is_unauthorized(api: Api) -> None:
    for header in ("Bearer ", "Bearer    ", "Basic YWxpY2U6c2VjcmV0", "admin-token"):
        response = await api.as_(token=None).get("/scripts", headers={"Authorization": header})
        assert_error(response, 401, "UNAUTHORIZED")


async def test_unknown_token_is_unauthorized_when_tokens_are_configured(api: Api) -> None:
    response = await api.as_(token="not-a-listed-token").get("/scripts")

    assert_error(response, 401, "UNAUTHORIZED")


async def test_unauthorized_request_changes_nothing(api: Api) -> None:
    response = await api.as_(token=None).post("/scripts", json={"name": "x", "slug": "x"})

    assert_error(response, 401, "UNAUTHORIZED")
    assert (await api.get("/scripts")).json()["items"] == []


async def test_access_token_query_is_not_accepted_outside_the_event_stream(api: Api) -> None:
    response = await api.as_(token=None).get("/scripts", params={"access_token": "admin-token"})

    assert_error(response, 401, "UNAUTHORIZED")


async def test_health_needs_no_token(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_api_docs_need_no_token(http: httpx.AsyncClient) -> None:
    response = await http.get("/schema/openapi.json")

    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Scriptworks API"


async def test_without_auth_tokens_any_token_is_the_dev_admin(settings: Settings) -> None:
    dev_app = create_app(replace(settings, auth_tokens={}))
    async with AsyncTestClient(app=dev_app, base_url="http://testserver.local") as client:
        tenant = f"t-{uuid.uuid4().hex[:8]}"
        response = await client.post(
            "/scripts",
            json={"name": "Dev", "slug": "dev"},
            headers={"Authorization": "Bearer anything", "x-tenant-id": tenant},
        )
        missing = await client.get("/scripts", headers={"x-tenant-id": tenant})

    assert response.status_code == 201
    assert response.json()["createdById"] == "dev"
    assert_error(missing, 401, "UNAUTHORIZED")


# ---- tenant header --------------------------------------------------------------------------


async def test_missing_tenant_header_is_tenant_required(api: Api) -> None:
    response = await api.http.get("/scripts", headers={"Authorization": "Bearer admin-token"})

    assert_error(response, 400, "TENANT_REQUIRED")


async def test_malformed_tenant_header_is_validation_error(api: Api) -> None:
    for bad in ("has space", "x" * 65, "semi;colon", "ünïcode".encode()):
        response = await api.http.get(
            "/scripts", headers={"x-tenant-id": bad, "Authorization": "Bearer admin-token"}
        )
        body = assert_error(response, 400, "VALIDATION_ERROR")
        assert body["details"][0]["field"] == "x-tenant-id"


# ---- correlation ids ------------------------------------------------------------------------


async def test_correlation_id_is_echoed(api: Api) -> None:
    response = await api.get("/scripts", headers={"Correlation-Id": "req-123"})

    assert response.headers["Correlation-Id"] == "req-123"


async def test_x_correlation_id_is_accepted(api: Api) -> None:
    response = await api.get("/scripts", headers={"X-Correlation-Id": "legacy-9"})

    assert response.headers["Correlation-Id"] == "legacy-9"


async def test_correlation_id_is_generated_when_absent(api: Api) -> None:
    first = await api.get("/scripts")
    second = await api.get("/scripts")

    assert uuid.UUID(first.headers["Correlation-Id"]).version == 7
    assert first.headers["Correlation-Id"] != second.headers["Correlation-Id"]


async def test_unusable_correlation_id_is_replaced(api: Api) -> None:
    response = await api.get("/scripts", headers={"Correlation-Id": "x" * 500})

    assert uuid.UUID(response.headers["Correlation-Id"])


async def test_errors_carry_the_correlation_id_in_header_and_body(api: Api, http: httpx.AsyncClient) -> None:
    unauthorized = await http.get("/scripts", headers={"Correlation-Id": "c-401"})
    unknown_route = await http.get("/no/such/route", headers={"Correlation-Id": "c-404"})

    assert unauthorized.headers["Correlation-Id"] == "c-401"
    assert unauthorized.json()["correlationId"] == "c-401"
    assert unknown_route.headers["Correlation-Id"] == "c-404"
    assert unknown_route.json()["correlationId"] == "c-404"


# ---- the framework's own failures, in the error shape ----------------------------------------


async def test_malformed_json_is_validation_error(api: Api) -> None:
    for raw in (b'{"name": "x",', b"\xff\xfe", b"{'single': 'quotes'}"):
        response = await api.post("/scripts", content=raw, headers={"Content-Type": "application/json"})
        body = assert_error(response, 400, "VALIDATION_ERROR")
        assert body["message"] == "The request body is not valid JSON."


async def test_empty_body_is_validation_error(api: Api) -> None:
    response = await api.post("/scripts", content=b"", headers={"Content-Type": "application/json"})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"][0]["field"] == "body"


async def test_wrong_types_name_the_field(api: Api) -> None:
    response = await api.post("/scripts", json={"name": 5, "slug": "x"})

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["details"] == [{"field": "name", "message": "Expected `str`, got `int`", "source": "body"}]


async def test_body_of_wrong_json_type_is_validation_error(api: Api) -> None:
    response = await api.post("/scripts", json=["not", "an", "object"])

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_unknown_route_is_not_found(api: Api) -> None:
    assert_error(await api.get("/nothing-here"), 404, "NOT_FOUND")


async def test_wrong_method_is_method_not_allowed(api: Api) -> None:
    response = await api.delete("/scripts")

    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


async def test_body_over_limit_is_payload_too_large_and_changes_nothing(api: Api) -> None:
    limit = 5 * 1024 * 1024
    padding = "x" * (limit + 1 - len('{"name":"big","slug":"big","description":""}'))
    body = f'{{"name":"big","slug":"big","description":"{padding}"}}'.encode()
    assert len(body) == limit + 1

    response = await api.post("/scripts", content=body, headers={"Content-Type": "application/json"})

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert (await api.get("/scripts")).json()["items"] == []


async def test_body_at_limit_is_parsed(api: Api) -> None:
    limit = 5 * 1024 * 1024
    padding = " " * (limit - len('{"name":"big","slug":"big"}'))
    body = f'{{"name":"big","slug":"big"}}{padding}'.encode()
    assert len(body) == limit

    response = await api.post("/scripts", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 201


async def test_unexpected_error_is_internal_error_without_details(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    @get("/explode", opt={"public": True})
    async def explode() -> None:
        raise RuntimeError("SELECT secret FROM internals -- must not leak")

    monkeypatch.setitem(ACCESS, ("GET", "/explode"), PUBLIC)
    app = create_app(settings)
    app.register(explode)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        response = await client.get("/explode")

    body = assert_error(response, 500, "INTERNAL_ERROR")
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert "details" not in body


async def test_unreachable_database_is_unavailable(settings: Settings) -> None:
    down = replace(settings, database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    app = create_app(down)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        response = await client.get(
            "/scripts", headers={"Authorization": "Bearer admin-token", "x-tenant-id": "acme"}
        )

    body = assert_error(response, 503, "UNAVAILABLE")
    assert "127.0.0.1" not in body["message"]
    assert response.headers["Retry-After"] == "1"


# ---- CORS -------------------------------------------------------------------------------------


async def test_cors_preflight_allows_configured_origin(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/scripts",
        headers={
            "Origin": "http://editor.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,x-tenant-id,content-type",
        },
    )

    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == "http://editor.example"


async def test_cors_exposes_correlation_id_to_configured_origin(api: Api) -> None:
    response = await api.get("/scripts", headers={"Origin": "http://editor.example"})

    assert response.headers["access-control-allow-origin"] == "http://editor.example"
    assert "correlation-id" in response.headers["access-control-expose-headers"].lower()


async def test_cors_ignores_other_origins(api: Api) -> None:
    response = await api.get("/scripts", headers={"Origin": "http://evil.example"})

    assert "access-control-allow-origin" not in response.headers


async def test_preflight_on_an_admin_route_is_answered_not_refused(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/subjects/anything/subscriptions/triggers",
        headers={"Origin": "http://editor.example", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code in (200, 204)
