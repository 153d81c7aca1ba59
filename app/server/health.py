"""Liveness: ``GET /health`` answers while the process is up, without touching the database."""

from __future__ import annotations

import msgspec
from litestar import Controller, get

from app.lib.auth import PUBLIC_OPT

__all__ = ["HealthController"]


class Health(msgspec.Struct):
    status: str


class HealthController(Controller):
    path = "/health"
    tags = ["Operations"]
    opt = {PUBLIC_OPT: True}

    @get("/", summary="Liveness", security=[{}], include_in_schema=True)
    async def health(self) -> Health:
        return Health(status="ok")
