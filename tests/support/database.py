"""The PostgreSQL server a test session uses: DATABASE_URL's server when set, else embedded.

Either way the session gets a database of its own, migrated once, and dropped at the end, so a
developer's data is never touched.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from app.db.embedded import EmbeddedPostgres
from app.lib.db import asyncpg_connect_kwargs


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def test_server_url() -> Iterator[tuple[str, EmbeddedPostgres | None]]:
    """Yield the URL of a server's maintenance database, and the embedded server if one was started."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        from app.config import _database_url

        yield _database_url(configured) or configured, None
        return
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-test-"))
    folder.chmod(0o755)
    server = EmbeddedPostgres.ensure_started(folder / "pgdata")
    try:
        yield server.url("postgres"), server
    finally:
        EmbeddedPostgres.stop_all()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_database(
    server_url: str, prefix: str = "scriptworks_test", template: str | None = None
) -> Iterator[str]:
    """A new database on the server (empty, or a copy of ``template``); dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(server_url, f'CREATE DATABASE "{name}"{copy}'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
