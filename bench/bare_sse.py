"""The fan-out baseline: a bare Litestar + sse-starlette app that sends one message to every
open stream, each fed by its own queue. No database, no hub, no filters, no auth.

Run: ``uvicorn --factory bench.bare_sse:create_app``; open streams on ``GET /events/stream``,
then ``POST /publish`` puts one message into every stream's queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from litestar import Litestar, get, post
from litestar.types import ASGIApp
from sse_starlette import EventSourceResponse, ServerSentEvent


def create_app() -> Litestar:
    queues: set[asyncio.Queue[str]] = set()

    async def stream(queue: asyncio.Queue[str]) -> AsyncIterator[ServerSentEvent]:
        try:
            while True:
                yield ServerSentEvent(data=await queue.get(), event="message")
        finally:
            queues.discard(queue)

    @get("/events/stream")
    async def events() -> ASGIApp:
        queue: asyncio.Queue[str] = asyncio.Queue(1000)
        queues.add(queue)
        return EventSourceResponse(stream(queue), ping=600)

    @post("/publish", status_code=202)
    async def publish() -> None:
        message = '{"id":1,"event":"Bench.Fanout.v1","payload":{}}'
        for queue in tuple(queues):
            queue.put_nowait(message)

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return Litestar([events, publish, health], logging_config=None)
