"""The hub's fan-out: filters, and a subscriber that cannot keep up is cut off, alone."""

from __future__ import annotations

import asyncio
import gc

from app.domain.events.hub import EventHub, collection_deferred_past_fan_out
from app.domain.events.repositories import LiveEvent, Position


def event(n: int, tenant: str = "acme", name: str = "X.Done.v1", correlation: str | None = None) -> LiveEvent:
    return LiveEvent(Position(100, n), tenant, name, correlation, f'{{"id":{n}}}', b"")


def hub() -> EventHub:
    return EventHub(None, max_queue=5)


def test_subscribers_get_only_their_tenants_matching_events() -> None:
    h = hub()
    everything = h.subscribe("acme")
    by_name = h.subscribe("acme", events=frozenset({"Y.Done.v1"}))
    by_correlation = h.subscribe("acme", correlation_id="c-1")
    other_tenant = h.subscribe("globex")

    h.publish(event(1))
    h.publish(event(2, name="Y.Done.v1"))
    h.publish(event(3, correlation="c-1"))

    assert [e.id for e in _drain(everything)] == [1, 2, 3]
    assert [e.id for e in _drain(by_name)] == [2]
    assert [e.id for e in _drain(by_correlation)] == [3]
    assert _drain(other_tenant) == []


def test_a_subscriber_that_cannot_keep_up_is_disconnected_and_the_others_are_not() -> None:
    h = hub()
    stuck = h.subscribe("acme")
    reader = h.subscribe("acme")

    received = []
    for n in range(1, 21):
        h.publish(event(n))
        received.extend(e.id for e in _drain(reader))

    assert received == list(range(1, 21))
    assert stuck.closed_reason == "overflow"
    assert stuck.pending == 1
    assert stuck.take_nowait() is None  # the stream ends; the client reconnects and replays


def test_unsubscribe_forgets_the_subscriber() -> None:
    h = hub()
    subscription = h.subscribe("acme")
    assert h.subscriber_count == 1

    h.unsubscribe(subscription)
    h.publish(event(1))

    assert h.subscriber_count == 0
    assert subscription.pending == 0


def _drain(subscription) -> list[LiveEvent]:
    items = []
    while subscription.pending:
        items.append(subscription.take_nowait())
    return items


async def test_a_reader_waits_for_the_next_event_and_wakes_on_close() -> None:
    import asyncio

    h = hub()
    subscription = h.subscribe("acme")
    reader = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    assert not reader.done()

    h.publish(event(7))
    assert (await reader).id == 7

    closing = asyncio.create_task(subscription.get())
    await asyncio.sleep(0)
    subscription.close("shutdown")
    assert await closing is None


async def test_collection_waits_until_the_woken_streams_have_run() -> None:
    h = hub()
    subscription = h.subscribe("acme")
    collecting: list[bool] = []

    async def stream() -> None:
        await subscription.get()
        collecting.append(gc.isenabled())  # the stream's step after the wake-up

    reader = asyncio.create_task(stream())
    await asyncio.sleep(0)  # the stream waits
    assert gc.isenabled()

    with collection_deferred_past_fan_out():
        h.publish(event(1))
        assert not gc.isenabled()
    await reader

    assert collecting == [False]
    assert gc.isenabled()


async def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    try:
        with collection_deferred_past_fan_out():
            pass
        await asyncio.sleep(0)

        assert not gc.isenabled()
    finally:
        gc.enable()
