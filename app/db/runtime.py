"""What one process holds of PostgreSQL besides SQLAlchemy's pool: one asyncpg pool and one
LISTEN connection, shared by everything that is not the ORM.

The pool serves the API's single-statement hot paths, the event hub (sequencing, the tail,
replays) and every worker loop (the outbox, the scheduler, lifecycle hooks, retention, the
heartbeat). The listener is one connection that LISTENs on every channel the process cares about
(the hub's events, the outbox's commands) and hands each notification to its subscribers; it
reconnects by itself, and after each (re)connect tells every subscriber to look for itself,
since whatever was notified while nobody listened is lost.

So a process holds at most ``DB_POOL_SIZE + DB_MAX_OVERFLOW`` (SQLAlchemy) plus the size of this
pool plus one connection (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.db.engine import StatementConnection, json_codecs
from app.lib.aio import wait_for_event
from app.lib.backoff import Backoff

__all__ = ["SharedConnections"]

logger = logging.getLogger("app.db")


@dataclass
class _Channel:
    on_notify: list[Callable[[str], None]] = field(default_factory=list)
    on_connect: list[Callable[[], None]] = field(default_factory=list)


class SharedConnections:
    """The process's asyncpg pool (``pool``) and its one listener (``listen``)."""

    def __init__(self, connect: Callable[[], dict[str, Any]], *, pool_size: int = 10) -> None:
        self._connect = connect
        self._pool_size = pool_size
        self._channels: dict[str, _Channel] = {}
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(
            min_size=0,
            max_size=self._pool_size,
            init=json_codecs,
            connection_class=StatementConnection,
            **self._connect(),
        )
        self._task = asyncio.create_task(self._listen(), name="listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)
        await self._close_listener()
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def __aenter__(self) -> SharedConnections:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def listen(
        self, channel: str, on_notify: Callable[[str], None], on_connect: Callable[[], None]
    ) -> None:
        """Call ``on_notify(payload)`` for each notification on ``channel``, and ``on_connect()``
        after every (re)connect of the listener (and now, if it is connected)."""
        known = channel in self._channels
        entry = self._channels.setdefault(channel, _Channel())
        entry.on_notify.append(on_notify)
        entry.on_connect.append(on_connect)
        if self._listener is not None and not self._listener.is_closed():
            if not known:
                with contextlib.suppress(Exception):  # lost meanwhile: the reconnect listens
                    await self._listener.add_listener(channel, self._dispatch)
            on_connect()

    def _dispatch(self, _connection: Any, _pid: int, channel: str, payload: str) -> None:
        entry = self._channels.get(channel)
        for callback in entry.on_notify if entry is not None else ():
            callback(payload)

    async def _listen(self) -> None:
        backoff = Backoff()
        while True:
            try:
                self._lost.clear()
                self._listener = await asyncpg.connect(**self._connect())
                self._listener.add_termination_listener(lambda _connection: self._lost.set())
                for channel in list(self._channels):
                    await self._listener.add_listener(channel, self._dispatch)
                for entry in list(self._channels.values()):
                    for callback in entry.on_connect:
                        callback()
                backoff.reset()
                while not self._listener.is_closed():
                    await wait_for_event(self._lost, 1.0)
                logger.warning("the listener lost the database; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: subscribers poll meanwhile
                logger.warning("the listener cannot reach the database (%s); retrying", type(error).__name__)
                await self._close_listener()
                await asyncio.sleep(backoff.next())

    async def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None
