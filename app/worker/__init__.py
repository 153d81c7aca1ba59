"""Background work: the outbox dispatcher, the scheduler, the deferred-run starter (debounced
trigger runs) and the lifecycle-hook dispatcher.

Runs inside the API process under ``scriptworks run`` (``WORKER_ENABLED``) or alone under
``scriptworks worker``; any number of workers may share one database. Each part has its own
small connection pool and its own start/stop.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import anyio
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily

from app.config import Settings
from app.db.embedded import EmbeddedPostgres
from app.db.engine import resolve_database_url, upgrade_database
from app.lib.db import asyncpg_connect_kwargs
from app.worker.deferred_runs import DeferredRunStarter
from app.worker.dispatcher import OutboxWorker
from app.worker.hooks import LifecycleHookDispatcher
from app.worker.scheduler import Scheduler

__all__ = [
    "BackgroundWork",
    "DeferredRunStarter",
    "LifecycleHookDispatcher",
    "OutboxWorker",
    "Scheduler",
    "run_standalone",
    "serve_worker_metrics",
]


class _WorkerCollector:
    def __init__(self, worker: OutboxWorker) -> None:
        self.worker = worker

    def collect(self) -> list[CounterMetricFamily]:
        return [
            CounterMetricFamily("scriptworks_worker_claimed", "Commands claimed.", value=self.worker.claimed),
            CounterMetricFamily(
                "scriptworks_worker_completed", "Commands completed.", value=self.worker.completed
            ),
            CounterMetricFamily(
                "scriptworks_worker_failed_attempts", "Handler failures.", value=self.worker.failed_attempts
            ),
        ]


def serve_worker_metrics(worker: OutboxWorker, port: int) -> None:
    """A standalone worker has no HTTP API; with METRICS_PORT it serves /metrics on its own."""
    registry = CollectorRegistry()
    registry.register(_WorkerCollector(worker))
    start_http_server(port, registry=registry)


class BackgroundWork:
    """Everything a worker runs: commands from the outbox, schedules, deferred runs, lifecycle hooks."""

    def __init__(self, settings: Settings, connect: Callable[[], dict[str, Any]]) -> None:
        self.settings = settings
        self.outbox = OutboxWorker(settings, connect)
        self.scheduler = Scheduler(settings, connect)
        self.deferred_runs = DeferredRunStarter(settings, connect)
        self.hooks = LifecycleHookDispatcher(settings, connect)

    async def start(self) -> None:
        await self.outbox.start()
        await self.scheduler.start()
        await self.deferred_runs.start()
        await self.hooks.start()

    async def stop(self) -> None:
        grace = self.settings.shutdown_grace_seconds
        await self.hooks.stop(grace)
        await self.deferred_runs.stop(grace)
        await self.scheduler.stop(grace)
        await self.outbox.stop(grace)


async def run_standalone(settings: Settings) -> None:
    """``scriptworks worker``: run until SIGTERM/SIGINT, then stop gracefully."""
    url = await anyio.to_thread.run_sync(resolve_database_url, settings)
    if settings.migrate_on_start:
        await anyio.to_thread.run_sync(upgrade_database, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    worker = BackgroundWork(settings, lambda: asyncpg_connect_kwargs(url))
    if settings.metrics_port:
        serve_worker_metrics(worker.outbox, settings.metrics_port)
    await worker.start()
    try:
        await stop.wait()
    finally:
        await worker.stop()
        if settings.uses_embedded_database:
            await anyio.to_thread.run_sync(EmbeddedPostgres.stop, settings.pgdata_dir)
