"""The per-process hub: one tail of the event store, fanned out to every stream of this process.

Why not Litestar's channels plugin: its backends carry the message itself through the broker
(here it would be NOTIFY, which has an 8 kB limit and no order across transactions) and its
subscriber backlog drops messages when full. Streams here must never skip an event and a slow
client must be cut off, not silently thinned. So the store is the only source: NOTIFY (sent by
a trigger at commit) just wakes the hub, which reads new rows in safe position order (see
``store``) once per process, encodes each event once, and offers it to every matching
subscriber's bounded queue. A subscriber whose queue is full is disconnected; its client
reconnects with ``Last-Event-ID`` and replays from the table, losing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import asyncpg

from app.domain.events.store import LiveEvent, Position, current_start, read_all_after
from app.lib.aio import wait_for_event

__all__ = ["CHANNEL", "EventHub", "Subscription"]

CHANNEL = "scriptworks_events"
TAIL_PAGE = 1000
logger = logging.getLogger(__name__)


class Subscription:
    """One stream's view of the hub: a filter and a bounded queue of matching events."""

    __slots__ = ("closed_reason", "correlation_id", "events", "on_close", "queue", "tenant_id")

    def __init__(
        self,
        tenant_id: str,
        correlation_id: str | None,
        events: frozenset[str] | None,
        max_queue: int,
        on_close: Callable[[str], None] | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.correlation_id = correlation_id
        self.events = events
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(max_queue)
        self.closed_reason: str | None = None
        self.on_close = on_close

    def matches(self, event: LiveEvent) -> bool:
        return (self.correlation_id is None or event.correlation_id == self.correlation_id) and (
            self.events is None or event.event in self.events
        )

    def offer(self, event: LiveEvent) -> None:
        if self.closed_reason is not None:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.close("overflow")

    def close(self, reason: str) -> None:
        """End the stream: whatever is queued is dropped, the reader sees ``None`` next."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)
        if self.on_close is not None:
            self.on_close(reason)

    async def get(self) -> LiveEvent | None:
        return await self.queue.get()


class EventHub:
    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        max_queue: int = 1000,
        poll_seconds: float = 1.0,
    ) -> None:
        self._connect = connect
        self._max_queue = max_queue
        self._poll_seconds = poll_seconds
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._wake = asyncio.Event()
        self._announced = 0  # highest event id a NOTIFY has told us about
        self._highest_delivered = 0
        self._position: Position | None = None
        self._held_delay = 0.002
        self._listener: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self.pool: asyncpg.Pool | None = None
        self.delivered = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.pool = await asyncpg.create_pool(min_size=0, max_size=8, **self._connect())
        self._task = asyncio.create_task(self._run(), name="event-hub")

    async def stop(self) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.close("shutdown")
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
        await self._close_listener()
        if self.pool is not None:
            await self.pool.close()

    # ---- subscriptions -----------------------------------------------------------------------

    def subscribe(
        self,
        tenant_id: str,
        *,
        correlation_id: str | None = None,
        events: frozenset[str] | None = None,
        on_close: Callable[[str], None] | None = None,
    ) -> Subscription:
        """A new subscription; ``on_close(reason)`` is called when the hub ends it ("overflow" when
        its reader fell ``max_queue`` events behind, "shutdown" when the hub stops)."""
        subscription = Subscription(tenant_id, correlation_id, events, self._max_queue, on_close)
        self._subscribers[tenant_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.tenant_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, event: LiveEvent) -> None:
        for subscription in tuple(self._subscribers.get(event.tenant_id, ())):
            if subscription.matches(event):
                subscription.offer(event)

    # ---- the tail ----------------------------------------------------------------------------

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self._announced = max(self._announced, int(payload))
        self._wake.set()

    async def _open_listener(self) -> None:
        self._listener = await asyncpg.connect(**self._connect())
        await self._listener.add_listener(CHANNEL, self._on_notify)

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None

    async def _run(self) -> None:
        backoff = 0.1
        while True:
            try:
                if self._listener is None or self._listener.is_closed():
                    await self._close_listener()
                    await self._open_listener()
                    if self._position is None:
                        assert self.pool is not None
                        self._position = await current_start(self.pool)
                        newest = await self.pool.fetchval("SELECT coalesce(max(id), 0) FROM events")
                        self._announced = self._highest_delivered = newest
                    self._wake.set()  # catch up on whatever happened while not listening
                await self._tail_once()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away: retry, streams stay open
                logger.warning("event hub lost the database (%s); retrying", type(error).__name__)
                logger.debug("event hub failure", exc_info=True)
                await self._close_listener()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _tail_once(self) -> None:
        await wait_for_event(self._wake, self._poll_seconds)
        self._wake.clear()
        assert self.pool is not None
        assert self._position is not None
        while True:
            batch = await read_all_after(self.pool, self._position, TAIL_PAGE)
            for event in batch:
                self.publish(event)
                self._highest_delivered = max(self._highest_delivered, event.id)
            self.delivered += len(batch)
            if batch:
                self._position = batch[-1].position
                self._held_delay = 0.002
            if len(batch) < TAIL_PAGE:
                break
        if self._announced > self._highest_delivered:
            # Announced but not yet deliverable: an older transaction is still open. Look again
            # soon (backing off while it stays open) instead of waiting for the next notification.
            await asyncio.sleep(self._held_delay)
            self._held_delay = min(self._held_delay * 2, 0.1)
            self._wake.set()
