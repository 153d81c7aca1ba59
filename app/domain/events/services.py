"""What a stream sends: the replay of the history a client missed, then the live events, with
nothing in between lost or sent twice.

Order of work on connect: subscribe to the hub first, then replay from the table (after
``Last-Event-ID`` / ``since``, or the whole correlation with ``correlationId`` and no cursor),
then stream live, dropping anything at or before the last position already sent. The stream
holds no pooled database session: replay reads a page at a time from the shared pool.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import anyio
import msgspec
from sse_starlette import ServerSentEvent

from app.domain.events.hub import EventHub
from app.domain.events.repositories import START, Position, position_of, read_after
from app.domain.events.schemas import StreamNotice
from app.lib.schema import timestamp

__all__ = ["ping", "stream"]

_encode = msgspec.json.Encoder().encode


def ping() -> ServerSentEvent:
    return ServerSentEvent(data=timestamp(datetime.datetime.now(datetime.UTC)), event="ping")


async def stream(
    hub: EventHub,
    tenant_id: str,
    cursor: int | None,
    correlation_id: str | None,
    events: frozenset[str] | None,
    cut_off: anyio.CancelScope,
) -> AsyncIterator[ServerSentEvent | bytes]:
    """The frames of one stream of ``tenant_id`` after ``cursor`` (an event id; 0: the oldest
    retained), filtered by correlation id and event names; ``cut_off`` ends it from the hub."""
    # Subscribe before replaying: whatever commits meanwhile is queued, and deduplicated below.
    subscription = hub.subscribe(tenant_id, correlation_id=correlation_id, events=events)
    subscription.cut_off = cut_off
    try:
        await hub.ensure_tailing()
        last: Position | None = None
        if cursor is not None or correlation_id is not None:
            assert hub.pool is not None
            start: Position = START
            if cursor:  # 0 means "from the oldest retained event"
                found = await position_of(hub.pool, cursor)
                if found is None:
                    # The history the client missed is partly gone: say so, then replay all
                    # that is retained, so nothing still stored is silently dropped.
                    notice = StreamNotice(reason=f"the cursor {cursor} is not in the retained history")
                    yield ServerSentEvent(event="resync", data=_encode(notice).decode())
                else:
                    start = last = found
            async for event in read_after(
                hub.pool, tenant_id, start, correlation_id=correlation_id, events=events
            ):
                last = event.position
                yield event.frame
        while True:
            event = await subscription.get()
            if event is None:
                if subscription.closed_reason == "shutdown":
                    notice = StreamNotice(reason="server shutting down")
                    yield ServerSentEvent(event="shutdown", data=_encode(notice).decode())
                return
            if last is not None and event.position <= last:
                continue
            last = event.position
            yield event.frame
    finally:
        hub.unsubscribe(subscription)
