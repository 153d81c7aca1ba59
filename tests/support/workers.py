"""Worker parts as a worker process runs them: on connections of their own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from app.db.runtime import SharedConnections
from app.lib.db import asyncpg_connect_kwargs

Part = TypeVar("Part")


class Standalone(Generic[Part]):
    """A worker part (outbox worker, scheduler, hook dispatcher) with its own shared connections:
    ``open()``/``start()`` open them, ``stop()`` stops the part and closes them. Everything else is
    the part's own (``worker.claimed``, ``scheduler.run_once()``, ...)."""

    def __init__(self, make: Callable[[SharedConnections], Part], url: str) -> None:
        self.shared = SharedConnections(lambda: asyncpg_connect_kwargs(url), pool_size=6)
        self.part = make(self.shared)

    async def open(self) -> None:
        if self.shared.pool is None:
            await self.shared.open()

    async def start(self) -> None:
        await self.open()
        await self.part.start()  # type: ignore[attr-defined]

    async def stop(self, grace_seconds: float = 10.0) -> None:
        await self.part.stop(grace_seconds)  # type: ignore[attr-defined]
        await self.shared.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.part, name)
