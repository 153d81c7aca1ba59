"""The baseline: a bare Litestar + asyncpg app doing the same single statements as the API.

No middleware, no auth, no tenancy, no validation beyond decoding, no ORM: what the stack costs
with nothing of Scriptworks on top. ``bench/run.py`` serves it next to the real app, on the
same database, and reports the real app's results as a ratio of these.

It gets every advantage the app has: the same server (uvicorn, its default loop and HTTP parser),
one process like the app, an asyncpg pool of the app's size (``BARE_POOL_SIZE``), and no reset
query when a connection goes back to the pool (asyncpg's documented ``get_reset_query`` hook,
as the app's own statement pool does).

Run: ``DATABASE_URL=... uvicorn --factory bench.bare_app:create_app``
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath
from uuid_utils.compat import uuid7

from app.lib.db import asyncpg_connect_kwargs

INSERT_RUN = """
INSERT INTO runs (id, tenant_id, script_id, version, status, trigger_type, started_by_id,
                  started_at, created_at, updated_at)
SELECT $1::uuid, v.tenant_id, v.script_id, v.version, 'RUNNING', 'API_RUN', 'bare', $4, $4, $4
FROM script_versions AS v WHERE v.script_id = $2::uuid AND v.version = $3 AND v.tenant_id = $5
RETURNING id, tenant_id, script_id, version, status, trigger_type, started_by_id, started_at
"""
INSERT_SCRIPT = """
INSERT INTO scripts (id, tenant_id, name, slug, status, latest_version, created_by_id, updated_by_id,
                     created_at, updated_at)
VALUES ($1, $2, $3, $4, 'DRAFT', 0, 'bare', 'bare', $5, $5)
RETURNING id, tenant_id, name, slug, status, latest_version, created_at, updated_at
"""
SELECT_SCRIPT = """
SELECT s.*, v.graph_json, v.version AS active_version
FROM scripts s LEFT JOIN script_versions v ON v.id = s.active_version_id
WHERE s.id = $1 AND s.tenant_id = $2
"""


class RunIn(msgspec.Struct, rename="camel"):
    script_id: uuid.UUID
    version: int


class ScriptIn(msgspec.Struct):
    name: str
    slug: str


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, uuid.UUID | datetime.datetime) else v) for k, v in record.items()}


class NoResetConnection(asyncpg.Connection):
    """Released to the pool without asyncpg's reset query (one round trip less per request)."""

    def get_reset_query(self) -> str:
        return ""


def create_app() -> Litestar:
    url = os.environ["DATABASE_URL"]
    size = int(os.environ.get("BARE_POOL_SIZE", "10"))

    @asynccontextmanager
    async def pool(app: Litestar) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            min_size=size, max_size=size, connection_class=NoResetConnection, **asyncpg_connect_kwargs(url)
        )
        yield
        await app.state.pool.close()

    @post("/runs")
    async def start_run(request: Request) -> Response:
        data = msgspec.json.decode(await request.body(), type=RunIn)
        now = datetime.datetime.now(datetime.UTC)
        tenant = request.headers.get("x-tenant-id", "")
        record = await request.app.state.pool.fetchrow(
            INSERT_RUN, uuid7(), data.script_id, data.version, now, tenant
        )
        return Response(_row(record), status_code=201)

    @post("/scripts")
    async def create_script(request: Request) -> Response:
        data = msgspec.json.decode(await request.body(), type=ScriptIn)
        now = datetime.datetime.now(datetime.UTC)
        tenant = request.headers.get("x-tenant-id", "")
        record = await request.app.state.pool.fetchrow(
            INSERT_SCRIPT, uuid7(), tenant, data.name, data.slug, now
        )
        return Response(_row(record), status_code=201)

    @get("/scripts/{script_id:uuid}")
    async def get_script(request: Request, script_id: FromPath[uuid.UUID]) -> Response:
        tenant = request.headers.get("x-tenant-id", "")
        record = await request.app.state.pool.fetchrow(SELECT_SCRIPT, script_id, tenant)
        return Response(_row(record))

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([start_run, create_script, get_script, health], lifespan=[pool], logging_config=None)
