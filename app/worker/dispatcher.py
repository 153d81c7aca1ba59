"""The outbox worker: claim due commands, run their handlers, record outcomes, repeat.

One loop claims (``FOR UPDATE SKIP LOCKED``, so any number of workers share the table), each
claimed command runs in its own task (fake delay, then the handler), and a flusher writes
finished outcomes in batches: completion events, ``COMPLETED`` rows and the NOTIFY all commit in
one transaction.

A busy worker still serves a tenant it holds nothing of at once: on each new command that comes
while the main loop is claiming or has every slot taken, the express lane claims the oldest due
command of each tenant with nothing in this worker's hands (into a few slots beyond the batch
capacity), and records each outcome on its own. So a quiet tenant's command starts at once
instead of after the busy tenant's round in hand, however slow that round's handlers are.
Express work also goes first: from the wake-up until its commands are recorded
(``EXPRESS_PRIORITY_SECONDS`` at most), the main loop starts no claim, the flusher no flush and
no other handler starts, so its statements and handlers do not wait behind the busy tenant's.

The worker wakes on ``NOTIFY scriptworks_commands`` (sent by a trigger when a command is
inserted); polling every ``WORKER_POLL_SECONDS`` is only the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections import Counter
from typing import Any

import asyncpg
import structlog

from app.config import Settings
from app.db.runtime import SharedConnections
from app.domain.commands.handlers import (
    ClaimedCommand,
    Failure,
    HandlerRegistry,
    Success,
    default_registry,
    run_handler,
)
from app.domain.commands.outbox import Outbox
from app.lib.aio import wait_for_event
from app.lib.backoff import Backoff
from app.worker.maintenance import beat_forever, forget_worker, maintain

__all__ = ["COMMANDS_CHANNEL", "OutboxWorker"]

COMMANDS_CHANNEL = "scriptworks_commands"
# How long the main loop and the flusher hold back for express work at most: long enough for a
# claim, a quick handler and its outcome, short enough that a slow express handler costs the
# busy tenants little.
EXPRESS_PRIORITY_SECONDS = 0.05
logger = structlog.get_logger("app.worker")
_stdlib_logger = logging.getLogger("app.worker")


class OutboxWorker:
    def __init__(
        self,
        settings: Settings,
        shared: SharedConnections,
        registry: HandlerRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or default_registry()
        self.worker_id = f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"
        self._shared = shared
        self._wake = asyncio.Event()
        self._flush_wake = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[Any, tuple[ClaimedCommand, asyncio.Task[None]]] = {}
        self._held = Counter[str]()  # commands in ``_in_flight`` by tenant
        self._successes: list[Success] = []
        self._failures: list[Failure] = []
        self._pool: asyncpg.Pool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.capacity = max(settings.worker_batch_size * 2, 1)
        self.express_capacity = max(settings.worker_batch_size // 10, 1)
        self._express_wake = asyncio.Event()
        self._express: set[Any] = set()
        # Tenants whose new command was announced while this worker held nothing of theirs and
        # was busy: whichever claim takes that command (the express claim, or a main claim that
        # was already running), it is handled as express work.
        self._quiet: set[str] = set()
        self._unnamed = False  # a wake-up named no tenant (several in one statement): fair claim
        # Clear from a wake-up that calls for an express claim until no express claim is due and
        # no express command is in hand: the priority the module docstring describes.
        self._express_settled = asyncio.Event()
        self._express_settled.set()
        self.express_priority_seconds = EXPRESS_PRIORITY_SECONDS
        # One claim at a time per worker, so each claim counts exactly what is in hand: an express
        # claim running beside a main claim could take a busy tenant's oldest command while the
        # main claim takes its next ones, and they could finish out of order.
        self._claim_lock = asyncio.Lock()
        self._idle_with_room = False  # the main loop waits for work with slots free
        # Counters for metrics and tests.
        self.claimed = 0
        self.completed = 0
        self.failed_attempts = 0
        self.last_heartbeat = 0.0

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        assert self._shared.pool is not None, "open the shared connections first"
        self._pool = self._shared.pool
        await self._shared.listen(COMMANDS_CHANNEL, self._on_notify, self._wake.set)
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="outbox-claim"),
            asyncio.create_task(self._flush_loop(), name="outbox-flush"),
            asyncio.create_task(self._express_loop(), name="outbox-express"),
            asyncio.create_task(maintain(self._pool, self.settings), name="maintenance"),
            asyncio.create_task(beat_forever(self._pool, self.worker_id, self.settings), name="heartbeat"),
            asyncio.create_task(
                Outbox(self._pool).keep_leases(self._running, self.settings.worker_lease_seconds),
                name="outbox-leases",
            ),
        ]
        logger.info("worker started", worker_id=self.worker_id)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming, let in-flight commands finish (bounded), hand back the rest."""
        self._stopping = True
        self._wake.set()
        # Let the claim loop leave on its own: cancelled mid-claim, it could leave rows claimed in
        # the database that it never heard back about (stuck until their lease expires).
        claim_loop = self._tasks[0] if self._tasks else None
        if claim_loop is not None:
            await asyncio.wait({claim_loop}, timeout=5)
        pending = [task for _, task in self._in_flight.values()]
        if pending:
            await asyncio.wait(pending, timeout=grace_seconds)
        unfinished = [command for command, task in self._in_flight.values() if not task.done()]
        for _, task in self._in_flight.values():
            task.cancel()
        self._flush_wake.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self._flush()
            if unfinished and self._pool is not None:
                released = await Outbox(self._pool).release(unfinished)
                logger.info("worker released unfinished commands", count=released)
        except Exception as error:  # the database may be gone: the leases then expire on their own
            _stdlib_logger.warning("worker could not hand back its commands (%s)", type(error).__name__)
        with contextlib.suppress(Exception):
            if self._pool is not None:
                await forget_worker(self._pool, self.worker_id)
        logger.info("worker stopped", worker_id=self.worker_id)

    # ---- claiming ----------------------------------------------------------------------------

    def _on_notify(self, tenant: str) -> None:
        """A command was inserted: of ``tenant``, or of several tenants when it is empty."""
        self._wake.set()
        if tenant and tenant in self._held:
            return  # a tenant this worker already serves: the main loop's next claim is its turn
        if not self._idle_with_room:
            # Hold the next main claim and outcome batch until the express claim has run.
            if tenant:
                self._quiet.add(tenant)
            else:
                self._unnamed = True
            self._express_settled.clear()
        self._express_wake.set()

    def _settle_express(self) -> None:
        if not self._express and not self._express_wake.is_set():
            self._express_settled.set()

    async def _yield_to_express(self) -> None:
        """Let express work go first: wait while it is pending, up to EXPRESS_PRIORITY_SECONDS
        (an express handler that takes long is not waited for)."""
        if not self._express_settled.is_set():
            await wait_for_event(self._express_settled, self.express_priority_seconds)

    async def _claim_loop(self) -> None:
        assert self._pool is not None
        outbox = Outbox(self._pool)
        backoff = Backoff()
        last_reclaim = 0.0
        while not self._stopping:
            try:
                await self._yield_to_express()
                now = time.monotonic()
                if now - last_reclaim >= self.settings.worker_poll_seconds:
                    last_reclaim = now
                    reclaimed = await outbox.reclaim_expired(
                        max_attempts=self.settings.worker_max_attempts, event_for=self.registry.event_for
                    )
                    if reclaimed:
                        logger.warning("reclaimed commands with expired leases", count=reclaimed)
                self.last_heartbeat = time.time()
                free = self.capacity - len(self._in_flight)
                # Cleared here even when full: a wake-up (a NOTIFY) that came while every slot was
                # taken would otherwise end each wait at once, and this loop would spin without
                # ever yielding to the flusher that frees the slots (until the next reclaim).
                self._wake.clear()
                claimed: list[ClaimedCommand] = []
                if free > 0:
                    async with self._claim_lock:
                        claimed = await outbox.claim(
                            min(free, self.settings.worker_batch_size),
                            self.settings.worker_lease_seconds,
                            tenant_max_in_flight=self.settings.tenant_max_in_flight,
                            in_hand=self._in_hand_by_tenant(),
                        )
                        self._start(claimed)
                backoff.reset()
                if claimed and len(self._in_flight) < self.capacity:
                    continue  # there may be more due work right now
                self._idle_with_room = len(self._in_flight) < self.capacity
                try:
                    await wait_for_event(self._wake, self.settings.worker_poll_seconds)
                finally:
                    self._idle_with_room = False
            except asyncio.CancelledError:
                raise
            except Exception as error:
                _stdlib_logger.warning("worker lost the database (%s); retrying", type(error).__name__)
                await asyncio.sleep(backoff.next())

    def _in_hand_by_tenant(self) -> Counter[str]:
        """Commands of each tenant this worker holds: claimed and not yet recorded.

        TENANT_MAX_IN_FLIGHT caps what one worker runs of a tenant, so the claim counts this
        worker's own commands, known here exactly, rather than every PROCESSING row of the
        tenant: that would make it a cap shared by all workers, and a crashed worker's rows
        would hold the tenant back until their leases expire.
        """
        if self.settings.tenant_max_in_flight is None:
            return Counter()
        return Counter(self._held)  # a copy: the claim reads it after awaiting

    async def _express_loop(self) -> None:
        """Claim for tenants this worker holds nothing of while it is busy claiming or full.

        A wake-up names its command's tenant: the claim takes the oldest due command of each
        tenant so named that this worker holds nothing of (one index descent each). A wake-up
        that names none (one statement inserted commands of several tenants) makes it the fair
        claim with a cap of one command per tenant, counting everything in hand, so it passes
        over every tenant already being served; it has a rotation of its own, so as not to move
        the main claims' place in the round-robin. A wake-up that finds the main loop waiting for
        work with free slots is left to it: it claims at once anyway, in its batch.
        """
        assert self._pool is not None
        outbox = Outbox(self._pool)
        while not self._stopping:
            await self._express_wake.wait()
            self._express_wake.clear()
            async with self._claim_lock:
                # Wake-ups that come during this claim are for the next one.
                quiet, self._quiet = self._quiet, set()
                unnamed, self._unnamed = self._unnamed, False
                try:
                    room = self.express_capacity - len(self._express)
                    if self._stopping or room <= 0 or self._idle_with_room:
                        continue
                    try:
                        if unnamed:
                            claimed = await outbox.claim(
                                room,
                                self.settings.worker_lease_seconds,
                                tenant_max_in_flight=1,
                                in_hand=Counter(self._held),
                            )
                        else:
                            tenants = [tenant for tenant in quiet if tenant not in self._held][:room]
                            claimed = (
                                await outbox.claim_heads(tenants, self.settings.worker_lease_seconds)
                                if tenants
                                else []
                            )
                    except asyncio.CancelledError:
                        raise
                    except Exception as error:  # the main loop backs off and retries, so does the next wake
                        _stdlib_logger.warning("express claim failed (%s)", type(error).__name__)
                        continue
                    self._express.update(command.id for command in claimed)
                    self._start(claimed)
                finally:
                    self._settle_express()

    def _start(self, claimed: list[ClaimedCommand]) -> None:
        for command in claimed:
            if command.tenant_id in self._quiet and len(self._express) < self.express_capacity:
                self._quiet.discard(command.tenant_id)
                self._express.add(command.id)
            self._in_flight[command.id] = (command, asyncio.create_task(self._process(command)))
            self._held[command.tenant_id] += 1
        self.claimed += len(claimed)

    async def _process(self, command: ClaimedCommand) -> None:
        if command.id not in self._express:
            await self._yield_to_express()  # a batch's handlers must not delay the express ones
        outcome = await run_handler(
            self.registry,
            command,
            fake_delay_ms=self.settings.worker_fake_delay_ms,
            timeout_seconds=self.settings.handler_timeout_seconds,
        )
        if command.id in self._express:
            await self._record_express(outcome)
        else:
            self._queue(outcome)

    def _queue(self, outcome: Success | Failure) -> None:
        """Hand an outcome to the flusher."""
        if isinstance(outcome, Success):
            self._successes.append(outcome)
        else:
            self._failures.append(outcome)
        self._flush_wake.set()

    async def _record_express(self, outcome: Success | Failure) -> None:
        """Record an express outcome at once, on its own: waiting for the flusher would put it
        behind the busy tenant's batch being written. If that fails, the flusher takes it over
        (and retries with backoff)."""
        assert self._pool is not None
        try:
            await Outbox(self._pool).record(
                [outcome] if isinstance(outcome, Success) else [],
                [outcome] if isinstance(outcome, Failure) else [],
                max_attempts=self.settings.worker_max_attempts,
                retry_base_seconds=self.settings.worker_retry_base_seconds,
                retry_max_seconds=self.settings.worker_retry_max_seconds,
            )
        except Exception as error:
            _stdlib_logger.warning("worker could not record an outcome (%s); queued", type(error).__name__)
            self._queue(outcome)
        else:
            self._forget(outcome.command)
            self.completed += isinstance(outcome, Success)
            self.failed_attempts += isinstance(outcome, Failure)
        finally:
            self._express.discard(outcome.command.id)
            self._settle_express()

    def _forget(self, command: ClaimedCommand) -> None:
        """A command's outcome is recorded: it is no longer in hand."""
        if self._in_flight.pop(command.id, None) is not None:
            self._held[command.tenant_id] -= 1
            if not self._held[command.tenant_id]:
                del self._held[command.tenant_id]

    def _running(self) -> list[ClaimedCommand]:
        return [command for command, task in self._in_flight.values() if not task.done()]

    # ---- recording outcomes ------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        backoff = Backoff()
        while True:
            await self._flush_wake.wait()
            await self._yield_to_express()
            self._flush_wake.clear()
            try:
                await self._flush()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Keep the outcomes and retry: leases are still ours until they expire.
                _stdlib_logger.warning(
                    "worker could not record outcomes (%s); retrying", type(error).__name__
                )
                await asyncio.sleep(backoff.next())
                self._flush_wake.set()

    async def _flush(self) -> None:
        if not (self._successes or self._failures) or self._pool is None:
            return
        successes, self._successes = self._successes, []
        failures, self._failures = self._failures, []
        try:
            await Outbox(self._pool).record(
                successes,
                failures,
                max_attempts=self.settings.worker_max_attempts,
                retry_base_seconds=self.settings.worker_retry_base_seconds,
                retry_max_seconds=self.settings.worker_retry_max_seconds,
            )
        except BaseException:
            self._successes[:0] = successes
            self._failures[:0] = failures
            raise
        for outcome in (*successes, *failures):
            self._forget(outcome.command)
        self.completed += len(successes)
        self.failed_attempts += len(failures)
        if successes or failures:
            self._wake.set()  # capacity freed: claim more
