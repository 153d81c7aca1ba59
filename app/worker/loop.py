"""The shape every polling worker loop shares: a step again at once while it reports more work
waiting, else after a poll; backoff after a failure; a stop that lets a step in progress finish.

The scheduler, the lifecycle-hook dispatcher and the deferred runs of flow control are such
loops; each says only what one step does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

import asyncpg

from app.db.runtime import SharedConnections
from app.lib.aio import finish_or_cancel, repeat_until_stopped

__all__ = ["PollingLoop"]

_logger = logging.getLogger("app.worker")


class PollingLoop:
    name: ClassVar[str] = "loop"

    def __init__(self, shared: SharedConnections, poll_seconds: float) -> None:
        self.shared = shared
        self.poll_seconds = poll_seconds
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        assert self.shared.pool is not None, "open the shared connections first"
        return self.shared.pool

    async def step(self) -> bool:
        """One round of work; True when more may be waiting right now."""
        raise NotImplementedError

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(
            repeat_until_stopped(self._stop, self.step, self.poll_seconds, self._failed), name=self.name
        )
        _logger.info("%s started", self.name)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop polling; a step in progress finishes (bounded by the grace time)."""
        self._stop.set()
        if self._task is not None:
            await finish_or_cancel(self._task, grace_seconds)
        _logger.info("%s stopped", self.name)

    def _failed(self, error: Exception) -> None:
        _logger.warning("%s failed (%s); retrying", self.name, type(error).__name__)
