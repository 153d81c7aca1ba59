"""POST /commands and GET /commands/{correlationId}: the envelope, the outbox row, its status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from app.server.core import create_app
from tests.conftest import make_settings
from tests.support.api import Api, assert_error, new_tenant
from tests.support.database import scratch_database


@pytest.fixture(scope="module")
def outbox_database(server_url: str, template_url: str) -> Iterator[str]:
    """A database no worker drains, so a command stays visibly PENDING."""
    with scratch_database(server_url, template=make_url(template_url).database) as url:
        yield url


@pytest.fixture(scope="module")
async def outbox_http(outbox_database: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(outbox_database))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
def api(outbox_http: httpx.AsyncClient, tenant: str) -> Api:
    return Api(outbox_http, tenant)


@pytest.fixture
def other_api(outbox_http: httpx.AsyncClient) -> Api:
    return Api(outbox_http, new_tenant())


COMMAND = {"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u-1"}, "payload": {"email": "a@b.c"}}


async def test_post_command_is_accepted_as_pending(api: Api) -> None:
    response = await api.post("/commands", json=COMMAND)

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "PENDING"
    assert uuid.UUID(body["correlationId"])
    status = (await api.get(f"/commands/{body['correlationId']}")).json()
    assert status["command"] == "Contacts.UpsertAndLink.v1"
    assert status["status"] == "PENDING"
    assert status["attempts"] == 0
    assert status["completedAt"] is None
    assert status["lastError"] is None


async def test_correlation_id_defaults_to_the_request_correlation_id_when_it_is_a_uuid(api: Api) -> None:
    request_id = str(uuid.uuid4())

    body = (await api.post("/commands", json=COMMAND, headers={"Correlation-Id": request_id})).json()

    assert body["correlationId"] == request_id


async def test_correlation_id_is_new_when_the_request_correlation_id_is_not_a_uuid(api: Api) -> None:
    body = (await api.post("/commands", json=COMMAND, headers={"Correlation-Id": "req-77"})).json()

    assert body["correlationId"] != "req-77"
    assert uuid.UUID(body["correlationId"]).version == 7


async def test_correlation_id_in_the_body_wins(api: Api) -> None:
    body = (
        await api.post(
            "/commands", json={**COMMAND, "correlationId": "order-4711"}, headers={"Correlation-Id": "x"}
        )
    ).json()

    assert body["correlationId"] == "order-4711"


async def test_duplicate_correlation_id_in_tenant_is_conflict_and_keeps_the_first(api: Api) -> None:
    await api.post("/commands", json={**COMMAND, "correlationId": "dup-1"})

    response = await api.post(
        "/commands", json={**COMMAND, "command": "Other.Thing.v1", "correlationId": "dup-1"}
    )

    assert_error(response, 409, "DUPLICATE_CORRELATION_ID")
    assert (await api.get("/commands/dup-1")).json()["command"] == "Contacts.UpsertAndLink.v1"


async def test_same_correlation_id_in_another_tenant_is_accepted(api: Api, other_api: Api) -> None:
    await api.post("/commands", json={**COMMAND, "correlationId": "shared-1"})

    response = await other_api.post("/commands", json={**COMMAND, "correlationId": "shared-1"})

    assert response.status_code == 202


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**COMMAND, "command": "not a command"}, "command"),
        ({**COMMAND, "command": "Contacts.Upsert"}, "command"),
        ({**COMMAND, "command": "contacts.upsert.v1"}, "command"),
        ({k: v for k, v in COMMAND.items() if k != "actor"}, "actor"),
        ({**COMMAND, "actor": {"userId": ""}}, "actor.userId"),
        ({**COMMAND, "payload": [1, 2]}, "payload"),
        ({**COMMAND, "context": "ctx"}, "context"),
        ({**COMMAND, "correlationId": "has space"}, "correlationId"),
    ],
)
async def test_invalid_envelope_is_validation_error_and_stores_nothing(
    api: Api, body: dict, field: str
) -> None:
    response = await api.post("/commands", json={**body, "correlationId": body.get("correlationId", "bad-1")})

    details = assert_error(response, 400, "VALIDATION_ERROR")["details"]
    assert details[0]["field"].startswith(field.split(".")[0])
    assert_error(await api.get("/commands/bad-1"), 404, "NOT_FOUND")


async def test_body_tenant_must_match_header(api: Api) -> None:
    response = await api.post("/commands", json={**COMMAND, "tenantId": "other", "correlationId": "tm-1"})

    assert_error(response, 403, "TENANT_MISMATCH")
    assert_error(await api.get("/commands/tm-1"), 404, "NOT_FOUND")


async def test_unknown_command_is_not_found(api: Api) -> None:
    assert_error(await api.get("/commands/never-posted"), 404, "NOT_FOUND")


async def test_another_tenants_command_is_not_found(api: Api, other_api: Api) -> None:
    await api.post("/commands", json={**COMMAND, "correlationId": "mine-1"})

    assert_error(await other_api.get("/commands/mine-1"), 404, "NOT_FOUND")


async def test_commands_need_a_token_and_a_tenant(api: Api) -> None:
    assert_error(await api.as_(token=None).post("/commands", json=COMMAND), 401, "UNAUTHORIZED")
    response = await api.http.post("/commands", json=COMMAND, headers={"Authorization": "Bearer admin-token"})
    assert_error(response, 400, "TENANT_REQUIRED")
