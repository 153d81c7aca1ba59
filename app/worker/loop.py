"""The shape every polling worker loop shares: a step again at once while it reports more work
waiting, else after a poll; backoff after a failure; a stop that lets a step in progress finish.

The scheduler, the lifecycle-hook dispatcher and the deferred runs of flow control are such
loops; each says only what one step does.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from abc import ABC, abstractmethod
from typing import ClassVar, Generic, TypeVar

import asyncpg

from app.config import Settings
from app.db.runtime import SharedConnections
from app.domain.runs.services import RunSource, TriggeredStart
from app.lib.aio import finish_or_cancel, repeat_until_stopped

__all__ = ["DueBatchLoop", "PollingLoop", "start_of"]

_logger = logging.getLogger("app.worker")

# What ``handle`` reports about its pass, for ``committed`` once the pass has committed.
Handled = TypeVar("Handled")


class PollingLoop(ABC):
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

    @abstractmethod
    async def step(self) -> bool:
        """One round of work; True when more may be waiting right now."""

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


class DueBatchLoop(PollingLoop, Generic[Handled]):
    """A loop over due rows: each pass claims a batch (``claim_due``: ``$1`` now, ``$2`` the batch
    size, ``$3`` the tenant served last; rows in the order taken, round-robin across tenants, with
    ``FOR UPDATE SKIP LOCKED`` so several workers share them) and ``handle``s it in the same
    transaction. "Now" is the database's clock, so workers with skewed clocks agree; tests pass
    their own."""

    claim_due: ClassVar[str]

    def __init__(self, settings: Settings, shared: SharedConnections) -> None:
        super().__init__(shared, settings.scheduler_poll_seconds)
        self.settings = settings
        self.batch_size = settings.worker_batch_size
        # Where the round-robin over tenants goes on from: the tenant served last in the last pass.
        self.rotation = ""
        # Counters for tests and metrics over the passes that committed: rows claimed, and runs
        # started (added by ``committed``: what a pass started only its loop knows).
        self.claimed = 0
        self.runs_started = 0

    async def step(self) -> bool:
        return await self.run_once() >= self.batch_size  # more may be due right now

    async def run_once(self, now: datetime.datetime | None = None) -> int:
        """One pass over one batch, in one transaction; the number of rows claimed."""
        async with self.pool.acquire() as connection, connection.transaction():
            if now is None:
                now = await connection.fetchval("SELECT clock_timestamp()")
            claimed = await connection.fetch(self.claim_due, now, self.batch_size, self.rotation)
            if not claimed:
                return 0
            handled = await self.handle(connection, claimed, now)
        self.rotation = claimed[-1]["tenant_id"]  # once the pass has committed
        self.claimed += len(claimed)
        self.committed(claimed, handled)
        return len(claimed)

    @abstractmethod
    async def handle(
        self, connection: asyncpg.Connection, claimed: list[asyncpg.Record], now: datetime.datetime
    ) -> Handled:
        """Act on the claimed rows, in the claim's transaction."""

    @abstractmethod
    def committed(self, claimed: list[asyncpg.Record], handled: Handled) -> None:
        """After the pass committed: counters and metrics."""


def start_of(row: asyncpg.Record, source: RunSource, started_by_id: str | None = None) -> TriggeredStart:
    """A run of the script of a claimed row (by its ``tenant_id`` and ``script_id`` columns)."""
    return TriggeredStart(
        tenant_id=row["tenant_id"], script_id=row["script_id"], source=source, started_by_id=started_by_id
    )
