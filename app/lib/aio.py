"""Small asyncio helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from app.lib.backoff import Backoff

__all__ = ["finish_or_cancel", "repeat_until_stopped", "wait_for_event"]


async def wait_for_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set.

    ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11, ``wait_for`` can swallow
    a cancellation that arrives just as the event fires, and a loop built on it then never stops.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def finish_or_cancel(task: asyncio.Task[Any], grace_seconds: float) -> None:
    """Give ``task`` up to ``grace_seconds`` to finish, then cancel it; return once it has ended.

    What the task raised (its own cancellation included) is not raised here: the caller is
    stopping it. A cancellation of the caller still propagates, after cancelling the task too.
    ``asyncio.wait`` rather than ``asyncio.wait_for`` for the reason given above: ``wait_for``
    can swallow the caller's cancellation when it arrives just as the task finishes.
    """
    try:
        await asyncio.wait({task}, timeout=grace_seconds)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved


async def repeat_until_stopped(
    stop: asyncio.Event,
    step: Callable[[], Awaitable[bool]],
    poll_seconds: float,
    on_error: Callable[[Exception], None],
) -> None:
    """Run ``step`` until ``stop`` is set: again at once while it reports more work waiting,
    else after ``poll_seconds``; after a failure (reported to ``on_error``), after a backoff
    that doubles from 0.1 s to 5 s. A set ``stop`` ends any wait at once."""
    backoff = Backoff()
    while not stop.is_set():
        try:
            more = await step()
            backoff.reset()
            if not more:
                await wait_for_event(stop, poll_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            on_error(error)
            await wait_for_event(stop, backoff.next())
