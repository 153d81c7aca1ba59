"""The unit of work: how one request's changes reach the database, chosen once by the request
and handed to its service.

- **Held** (the request carries an Idempotency-Key): the Idempotency-Key layer holds the
  request's transaction. Every statement runs in it, whatever the service asks for, and
  ``commit()`` only flushes (so constraint errors still surface in the service); the layer
  commits once the answer is stored beside the effect.
- **Otherwise**: ``statements()`` lends an asyncpg connection of the shared pool whose
  statements each commit on their own (one round trip, no BEGIN/COMMIT: the hot paths);
  ``autocommit()`` is the same on the engine, for SQLAlchemy Core statements; ``transaction()``
  is a transaction of its own; ``session`` is the request's ORM session, whose ``commit()``
  commits.

Services never roll back: a refused change raises, and whoever owns the transaction undoes it
(the request's session is closed, rolling back, when the response starts; a transaction of
``transaction()`` rolls back as its block raises; the Idempotency-Key layer rolls back its
savepoint and stores the 4xx under the key, still holding the key's lock).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.lib.idempotency import owned_session

if TYPE_CHECKING:
    from litestar import Request

__all__ = ["UnitOfWork", "driver_connection"]


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction (begun if it was not), for the
    plain-SQL statements that share the session's unit of work."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


class UnitOfWork:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        engine: AsyncEngine,
        session: Callable[[], AsyncSession] | AsyncSession,
        held: bool = False,
    ) -> None:
        self.pool = pool
        self.engine = engine
        self.held = held
        self._session = session

    @classmethod
    def of_request(cls, request: Request[Any, Any, Any]) -> UnitOfWork:
        """The request's unit of work: held when the Idempotency-Key layer opened a transaction
        for it (its session is the request's), else on the shared pool and a session made when
        first used (a request on the hot paths makes none)."""
        state = request.app.state
        owned = owned_session(request.scope)
        if owned is not None:
            return cls(
                pool=state.statement_pool, engine=state.database.get_engine(), session=owned, held=True
            )
        return cls(
            pool=state.statement_pool,
            engine=state.database.get_engine(),
            session=lambda: state.database.provide_session(state, request.scope),
        )

    @property
    def session(self) -> AsyncSession:
        if not isinstance(self._session, AsyncSession):
            self._session = self._session()
        return self._session

    async def commit(self) -> None:
        """End the service's change: commit, or flush when the transaction is held."""
        if self.held:
            await self.session.flush()
        else:
            await self.session.commit()

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[Any]:
        """An asyncpg connection for plain-SQL statements (see the module's docstring)."""
        if self.held:
            yield await driver_connection(self.session)
            return
        async with self.pool.acquire() as connection:
            try:
                yield connection
            except (asyncpg.InterfaceError, asyncpg.InternalClientError):
                # The driver, not the server, failed (e.g. a statement cut off by a restarting
                # server): the connection may be mid-operation. Close it rather than pool it.
                connection.terminate()
                raise

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A SQLAlchemy connection whose statements each commit on their own (or the held one)."""
        if self.held:
            yield await self.session.connection()
            return
        async with self.engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A SQLAlchemy connection in a transaction of its own, committed when the block ends
        (or the held one)."""
        if self.held:
            yield await self.session.connection()
            return
        async with self.engine.begin() as connection:
            yield connection
