"""A real streaming SSE client (httpx + httpx-sse) for tests against a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse


class EventStream:
    """``async with EventStream(url, params=..., headers=...) as stream: await stream.next()``."""

    def __init__(
        self, base_url: str, *, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.base_url = base_url
        self.params = params or {}
        self.headers = headers or {}
        self.response: httpx.Response | None = None
        self._client: httpx.AsyncClient | None = None
        self._connection: Any = None
        self._events: Any = None

    async def __aenter__(self) -> EventStream:
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(30, read=None))
        self._connection = aconnect_sse(
            self._client, "GET", "/events/stream", params=self.params, headers=self.headers
        )
        source = await self._connection.__aenter__()
        self.response = source.response
        self._events = source.aiter_sse()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.__aexit__(None, None, None)
            self._connection = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def next(self, timeout: float = 10.0, *, pings: bool = False) -> ServerSentEvent:
        """The next frame (pings skipped unless asked for); fails after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while True:
                event = await anext(self._events)
                if pings or event.event != "ping":
                    return event

    async def until(
        self, done: Callable[[list[ServerSentEvent]], bool], timeout: float = 15.0
    ) -> list[ServerSentEvent]:
        """Read frames until ``done(frames)`` holds; fails after ``timeout`` seconds."""
        frames: list[ServerSentEvent] = []
        async with asyncio.timeout(timeout):
            while not done(frames):
                frames.append(await self.next(timeout))
        return frames


def data(event: ServerSentEvent) -> dict[str, Any]:
    return json.loads(event.data)
