"""Test harness: one real PostgreSQL per session (embedded, or DATABASE_URL's server), one
migrated database, and the app served in-process over HTTP by httpx.

Each test works in a tenant of its own, so tests never see each other's rows.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db.engine import upgrade_database
from app.server.core import create_app
from tests.support.database import scratch_database, test_server_url
from tests.support.server import ServerProcess

ADMIN_TOKEN = "admin-token"
USER_TOKEN = "user-token"
SERVICE_TOKEN = "service-token"
# One token per role, each granted every tenant (tests make a tenant of their own each), and
# tokens granted only the fixed tenants below, for the tenant boundary.
ROLE_TOKENS = {
    "admin": ADMIN_TOKEN,
    "editor": USER_TOKEN,
    "service": SERVICE_TOKEN,
    "runner": "runner-token",
    "viewer": "viewer-token",
    "operator": "operator-token",
}
ALICE_TENANT = "alice-co"
BOB_TENANT = "bob-co"
ALICE_TOKEN = "alice-only-token"  # admin of alice-co only
BOB_TOKEN = "bob-only-token"  # admin of bob-co only
AUTH_TOKENS = ",".join(
    [
        f"{ADMIN_TOKEN}=alice:admin@*",
        f"{USER_TOKEN}=bob:editor@*",
        f"{SERVICE_TOKEN}=svc-1:service@*",
        "runner-token=rudy:runner@*",
        "viewer-token=vera:viewer@*",
        "operator-token=otto:operator@*",
        f"{ALICE_TOKEN}=alice:admin@{ALICE_TENANT}",
        f"{BOB_TOKEN}=bob:admin|service@{BOB_TENANT}",
    ]
)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    with test_server_url() as (url, _server):
        yield url


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    with scratch_database(server_url) as url:
        upgrade_database(Settings(database_url=url))
        yield url


@pytest.fixture(scope="session")
def template_url(server_url: str) -> Iterator[str]:
    """A migrated database nobody connects to, cloned by ``fresh_database_url``."""
    with scratch_database(server_url, prefix="scriptworks_template") as url:
        upgrade_database(Settings(database_url=url))
        yield url


@pytest.fixture
def fresh_database_url(server_url: str, template_url: str) -> Iterator[str]:
    """A migrated database of this test's own, for tests whose workers must not meet others'."""
    with scratch_database(server_url, template=make_url(template_url).database) as url:
        yield url


def make_settings(database_url: str, **env: str) -> Settings:
    base = {
        "DATABASE_URL": database_url,
        "AUTH_TOKENS": AUTH_TOKENS,
        "WORKER_FAKE_DELAY_MS": "0",
        "WORKER_ENABLED": "false",
        "CORS_ORIGINS": "http://editor.example",
        "MIGRATE_ON_START": "false",
    }
    return Settings.from_env({**base, **env})


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    """The in-process app's settings. No worker: tests that need one start their own."""
    return make_settings(database_url)


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def http(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        yield client


class Api:
    """An HTTP client acting as one caller in one tenant; override headers per call as needed."""

    def __init__(self, http: httpx.AsyncClient, tenant: str, token: str | None = ADMIN_TOKEN) -> None:
        self.http = http
        self.tenant = tenant
        self.token = token

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"x-tenant-id": self.tenant}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def as_(self, *, tenant: str | None = None, token: str | None = ADMIN_TOKEN) -> Api:
        return Api(self.http, tenant or self.tenant, token)

    async def request(self, method: str, url: str, *, headers: dict[str, str] | None = None, **kw: Any):
        return await self.http.request(method, url, headers=self.headers(headers), **kw)

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, **kw)

    async def patch(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", url, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kw)

    # ---- builders through the public API --------------------------------------------------------

    async def create_script(self, slug: str | None = None, **fields: Any) -> dict[str, Any]:
        slug = slug or f"script-{uuid.uuid4().hex[:8]}"
        response = await self.post("/scripts", json={"name": slug.title(), "slug": slug, **fields})
        assert response.status_code == 201, response.text
        return response.json()

    async def create_version(self, script_id: str, graph: dict[str, Any] | None = None, **fields: Any):
        body = {"graphJson": graph if graph is not None else {"nodes": [], "edges": []}, **fields}
        response = await self.post(f"/scripts/{script_id}/versions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def publish(self, script_id: str, version: int) -> dict[str, Any]:
        response = await self.post(f"/scripts/{script_id}/versions/{version}/publish")
        assert response.status_code == 200, response.text
        return response.json()


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def tenant() -> str:
    return new_tenant()


@pytest.fixture
def api(http: httpx.AsyncClient, tenant: str) -> Api:
    return Api(http, tenant)


@pytest.fixture
def other_api(http: httpx.AsyncClient) -> Api:
    """The same admin caller, acting in a different tenant."""
    return Api(http, new_tenant())


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is the documented error shape with this status and code, and nothing else."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str)
    assert body["message"]
    assert set(body) <= {"code", "message", "details", "correlationId"}, body
    assert response.headers["content-type"].startswith("application/json")
    return body


def process_env(database_url: str, **env: str) -> dict[str, str]:
    """Environment for app processes started by tests."""
    return {
        "DATABASE_URL": database_url,
        "AUTH_TOKENS": AUTH_TOKENS,
        "MIGRATE_ON_START": "false",
        "WORKER_FAKE_DELAY_MS": "0",
        "SSE_PING_SECONDS": "0.25",
        "LOG_LEVEL": "WARNING",
        **env,
    }


@pytest.fixture(scope="session")
def live_server(database_url: str) -> Iterator[ServerProcess]:
    """One real API process with its in-process worker (``python -m app run``), shared by the session."""
    server = ServerProcess(process_env(database_url, WORKER_ENABLED="true")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    """Processes a test starts; whatever is still running at the end is killed."""
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.kill()
