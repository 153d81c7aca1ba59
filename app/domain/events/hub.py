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
import gc
import logging
from collections import defaultdict, deque
from collections.abc import Iterator

import anyio
import asyncpg

from app.db.runtime import SharedConnections
from app.domain.events.repositories import (
    LiveEvent,
    Position,
    current_start,
    newest_event_id,
    read_all_after,
    sequence_events,
)
from app.lib.aio import wait_for_event
from app.lib.backoff import Backoff

__all__ = ["CHANNEL", "EventHub", "Subscription", "collection_deferred_past_fan_out"]

CHANNEL = "scriptworks_events"
TAIL_PAGE = 1000
OVERFLOW_GRACE_SECONDS = 1.0
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def collection_deferred_past_fan_out() -> Iterator[None]:
    """Keep the cyclic garbage collector out of the burst a fan-out starts.

    Offering an event wakes every matching stream; each then runs one step (encode, send, wait
    again) in the loop's next round. Thousands of open streams are a large, long-lived heap
    (some 250 objects each), and the allocations of such a burst are what tends to trigger a
    full collection: measured with 5,000 streams, 0.5-0.9 s with the loop stopped, every stream
    not yet served waiting behind it. Automatic collection is therefore paused while events are
    offered and until the woken streams have run (a callback queued behind their wake-ups); it
    is then due as before: the work is the same, it only no longer lands between an event and
    its readers.
    """
    if not gc.isenabled():  # someone else's choice: leave it alone
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        asyncio.get_running_loop().call_soon(gc.enable)


class Subscription:
    """One stream's view of the hub: a filter and a bounded buffer of matching events.

    A deque and one waiter future rather than an ``asyncio.Queue``: thousands of these live at
    once, and each stream only ever has one reader.
    """

    __slots__ = (
        "_buffer",
        "_limit",
        "_waiter",
        "closed_reason",
        "correlation_id",
        "cut_off",
        "events",
        "tenant_id",
    )

    def __init__(
        self, tenant_id: str, correlation_id: str | None, events: frozenset[str] | None, max_queue: int
    ) -> None:
        self.tenant_id = tenant_id
        self.correlation_id = correlation_id
        self.events = events
        self.closed_reason: str | None = None
        self._buffer: deque[LiveEvent | None] = deque()
        self._limit = max_queue
        self._waiter: asyncio.Future[None] | None = None
        # Cancels the stream's response: set by the stream, used when the reader stops reading.
        self.cut_off: anyio.CancelScope | None = None

    def matches(self, event: LiveEvent) -> bool:
        return (self.correlation_id is None or event.correlation_id == self.correlation_id) and (
            self.events is None or event.event in self.events
        )

    def offer(self, event: LiveEvent) -> None:
        if self.closed_reason is not None:
            return
        if len(self._buffer) >= self._limit:
            self.close("overflow")
            return
        self._buffer.append(event)
        self._wake()

    def close(self, reason: str) -> None:
        """End the stream: whatever is buffered is dropped, the reader gets ``None`` next."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self._buffer.clear()
        self._buffer.append(None)
        self._wake()
        if reason == "overflow" and self.cut_off is not None:
            # A reader that stopped reading leaves its stream blocked in a send (TCP buffers
            # full), where it cannot see this close. After a short grace (a merely slow reader
            # ends normally and reconnects with Last-Event-ID) the response is cancelled and the
            # connection closed.
            asyncio.get_running_loop().call_later(OVERFLOW_GRACE_SECONDS, self.cut_off.cancel)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def take_nowait(self) -> LiveEvent | None:
        return self._buffer.popleft()

    async def get(self) -> LiveEvent | None:
        while not self._buffer:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buffer.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class EventHub:
    def __init__(
        self,
        shared: SharedConnections | None,
        *,
        max_queue: int = 1000,
        poll_seconds: float = 1.0,
    ) -> None:
        self._shared = shared
        self._max_queue = max_queue
        self._poll_seconds = poll_seconds
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)
        self._wake = asyncio.Event()
        self._announced = 0  # highest event id a NOTIFY has told us about
        self._highest_delivered = 0
        self._position: Position | None = None
        self._held_delay = 0.002
        self._task: asyncio.Task[None] | None = None
        self._shutdown_task: asyncio.Task[None] | None = None
        self.shutdown_event: anyio.Event | None = None
        self.pool: asyncpg.Pool | None = None
        self.delivered = 0

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        assert self._shared is not None, "a hub without connections only fans out"
        assert self._shared.pool is not None, "open the shared connections first"
        self.pool = self._shared.pool
        # After a reconnect, look for what was notified while nobody listened.
        await self._shared.listen(CHANNEL, self._on_notify, self._wake.set)
        # One event for every stream of this process: sse-starlette sets it when the server
        # begins to shut down, and one task then ends every stream with a final frame.
        self.shutdown_event = anyio.Event()
        self._task = asyncio.create_task(self._run(), name="event-hub")
        self._shutdown_task = asyncio.create_task(self._close_streams_on_shutdown(), name="hub-shutdown")

    async def _close_streams_on_shutdown(self) -> None:
        await self.shutdown_event.wait()
        self._close_all("shutdown")

    def _close_all(self, reason: str) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.close(reason)

    async def stop(self) -> None:
        self._close_all("shutdown")
        for task in (self._task, self._shutdown_task):
            if task is not None:
                task.cancel()
                await asyncio.wait({task}, timeout=5)

    # ---- subscriptions -----------------------------------------------------------------------

    def subscribe(
        self, tenant_id: str, *, correlation_id: str | None = None, events: frozenset[str] | None = None
    ) -> Subscription:
        subscription = Subscription(tenant_id, correlation_id, events, self._max_queue)
        self._subscribers[tenant_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.tenant_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.tenant_id]

    async def ensure_tailing(self) -> None:
        """Make sure the tail runs from a position no later than any replay that follows.

        With no subscribers the hub stops reading (a busy API with no open streams would otherwise
        read every event it writes back). A stream calls this after subscribing and before its
        replay: the start position taken now precedes the replay's snapshot, so whatever the
        replay cannot see yet, the tail delivers.
        """
        if self._position is not None:
            return
        assert self.pool is not None
        start = await current_start(self.pool)
        newest = await newest_event_id(self.pool)
        # Events up to `newest` are either history or will be read by the tail anyway: no need
        # to re-poll for them as "announced but not delivered".
        self._announced = max(self._announced, newest)
        self._highest_delivered = max(self._highest_delivered, newest)
        if self._position is None or start < self._position:
            self._position = start
        self._wake.set()

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, event: LiveEvent) -> None:
        for subscription in tuple(self._subscribers.get(event.tenant_id, ())):
            if subscription.matches(event):
                subscription.offer(event)

    # ---- the tail ----------------------------------------------------------------------------

    def _on_notify(self, payload: str) -> None:
        if not self._subscribers:
            return  # idle: a new stream restarts the tail from the table anyway
        with contextlib.suppress(ValueError):
            self._announced = max(self._announced, int(payload))
        self._wake.set()

    async def _run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                await self._tail_once()
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database went away: retry, streams stay open
                logger.warning("event hub lost the database (%s); retrying", type(error).__name__)
                logger.debug("event hub failure", exc_info=True)
                await asyncio.sleep(backoff.next())

    async def _tail_once(self) -> None:
        await wait_for_event(self._wake, self._poll_seconds)
        self._wake.clear()
        if not self._subscribers:
            self._position = None  # idle: nobody to deliver to; a new stream restarts the tail
            self._announced = self._highest_delivered = 0
            return
        if self._position is None:
            await self.ensure_tailing()
        assert self.pool is not None
        assert self._position is not None
        # Whatever committed before this point is given its position now (by us, or by the
        # sequencer of another process that we wait for), so the reads below see it.
        await sequence_events(self.pool)
        while True:
            batch = await read_all_after(self.pool, self._position, TAIL_PAGE)
            with collection_deferred_past_fan_out():
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
