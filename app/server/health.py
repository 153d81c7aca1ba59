"""Liveness and readiness.

``GET /health`` answers while the process is up, without touching the database. ``GET
/health/ready`` checks what serving needs: the database answers, its schema is at the newest
migration, and a worker is alive when one is expected (this process's own worker, or — with
``READY_REQUIRES_WORKER`` — any worker's heartbeat). Failing checks are named in a 503.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from alembic.script import ScriptDirectory
from litestar import Controller, Request, Response, get
from sqlalchemy import text

from app.config import Settings
from app.db.engine import MIGRATIONS_DIR, VERSION_TABLE
from app.lib.auth import PUBLIC_OPT
from app.lib.errors import ErrorBody
from app.lib.openapi import errors

__all__ = ["HealthController", "migrations_head"]

CHECK_TIMEOUT_SECONDS = 2.0
_FRESH_WORKERS = text(
    "SELECT count(*) FROM worker_heartbeats WHERE last_seen_at > now() - make_interval(secs => :s)"
)


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


def migrations_head() -> str | None:
    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


async def _database_checks(request: Request[Any, Any, Any], head: str | None) -> dict[str, str]:
    settings: Settings = request.app.state.settings
    engine = request.app.state.database.get_engine()
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS), engine.connect() as connection:
            current = await connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
            checks["database"] = "ok"
            checks["migrations"] = "ok" if current == head else f"at {current}, expected {head}"
            if not settings.worker_enabled and settings.ready_requires_worker:
                stale_after = settings.worker_heartbeat_stale_seconds
                fresh = await connection.scalar(_FRESH_WORKERS, {"s": stale_after})
                checks["worker"] = "ok" if fresh else "no worker heartbeat"
    except Exception as error:  # unreachable, timed out, or not migrated at all
        checks.setdefault("database", f"unavailable ({type(error).__name__})")
        checks.setdefault("migrations", "unknown")
    return checks


class HealthController(Controller):
    path = "/health"
    tags = ["Operations"]
    opt = {PUBLIC_OPT: True}

    @get("/", summary="Liveness", security=[{}], responses=errors(database=False))
    async def health(self) -> Health:
        return Health(status="ok")

    @get(
        "/ready",
        summary="Readiness",
        description="200 when the database answers, migrations are at head and (when expected) a worker "
        "is alive; otherwise 503 UNAVAILABLE naming the failing checks in details.checks.",
        security=[{}],
        responses=errors(),
    )
    async def ready(self, request: Request[Any, Any, Any]) -> Response[Readiness]:
        settings: Settings = request.app.state.settings
        checks = await _database_checks(request, request.app.state.migrations_head)
        if settings.worker_enabled:
            background = getattr(request.app.state, "worker", None)
            last_beat = background.outbox.last_heartbeat if background is not None else 0.0
            stale = time.time() - last_beat > settings.worker_heartbeat_stale_seconds
            checks["worker"] = "stale heartbeat" if stale else "ok"
        failing = sorted(name for name, result in checks.items() if result != "ok")
        if failing:
            body = ErrorBody(
                code="UNAVAILABLE",
                message=f"Not ready: {', '.join(failing)}.",
                details={"checks": checks},
            )
            return Response(body, status_code=503, headers={"Retry-After": "1"})  # type: ignore[arg-type]
        return Response(Readiness(status="ready", checks=checks))
