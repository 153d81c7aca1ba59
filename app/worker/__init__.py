"""Background work: the outbox dispatcher, the scheduler, the deferred-run starter (debounced
trigger runs) and the lifecycle-hook dispatcher.

Runs inside the API process under ``scriptworks run`` (``WORKER_ENABLED``) or alone under
``scriptworks worker``; any number of workers may share one database. Every part works on the
process's shared connections (``app.db.runtime``): one asyncpg pool and one listener.
"""

from __future__ import annotations

import asyncio
import signal

import anyio
from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import CounterMetricFamily

from app.config import Settings
from app.db.embedded import EmbeddedPostgres
from app.db.engine import resolve_database_url, upgrade_database
from app.db.runtime import SharedConnections
from app.lib.db import asyncpg_connect_kwargs
from app.worker.deferred_runs import DeferredRunStarter
from app.worker.dispatcher import OutboxWorker
from app.worker.hooks import LifecycleHookDispatcher
from app.worker.scheduler import Scheduler

__all__ = [
    "WORKER_CONNECTIONS",
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
    """A standalone worker has no HTTP API; with METRICS_PORT it serves /metrics on its own: the
    outbox counters, and this process's own (the deferred runs it started, by flow control)."""
    REGISTRY.register(_WorkerCollector(worker))
    start_http_server(port, registry=REGISTRY)


# Connections of the shared pool that an in-process worker's loops may hold at once, added to
# DB_POOL_SIZE: claims, outcome batches, lease renewals, retention, the heartbeat, a schedule pass
# and a hook batch rarely overlap, and each holds its connection for one statement or one short
# transaction.
WORKER_CONNECTIONS = 4


class BackgroundWork:
    """Everything a worker runs: commands from the outbox, schedules, deferred runs, lifecycle hooks."""

    def __init__(self, settings: Settings, shared: SharedConnections) -> None:
        self.settings = settings
        self.outbox = OutboxWorker(settings, shared)
        self.scheduler = Scheduler(settings, shared)
        self.deferred_runs = DeferredRunStarter(settings, shared)
        self.hooks = LifecycleHookDispatcher(settings, shared)

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
    shared = SharedConnections(lambda: asyncpg_connect_kwargs(url), pool_size=WORKER_CONNECTIONS + 2)
    await shared.open()
    worker = BackgroundWork(settings, shared)
    if settings.metrics_port:
        serve_worker_metrics(worker.outbox, settings.metrics_port)
    await worker.start()
    try:
        await stop.wait()
    finally:
        await worker.stop()
        await shared.close()
        if settings.uses_embedded_database:
            await anyio.to_thread.run_sync(EmbeddedPostgres.stop, settings.pgdata_dir)
