"""Test harness: one real PostgreSQL per session (embedded, or DATABASE_URL's server), one
migrated database, and the app served in-process over HTTP by httpx.

Each test works in a tenant of its own, so tests never see each other's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db.engine import upgrade_database
from app.server.core import create_app
from tests.support.api import (
    AUTH_TOKENS,
    Api,
    new_tenant,
)
from tests.support.database import scratch_database, test_server_url
from tests.support.server import ServerProcess


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
