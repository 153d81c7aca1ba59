"""Ending a unit of work. Services call ``commit(session)`` instead of ``session.commit()``.

Normally that commits. When the request carries an Idempotency-Key, the idempotency layer
owns the transaction: ``commit`` only flushes (so constraint errors still surface in the
service), and the layer commits once the response is stored beside the effect, in the same
transaction.

Services never roll back: a refused change raises, and whoever owns the transaction undoes it
(the request's session is closed, rolling back, when the response starts; the Idempotency-Key
layer rolls back its savepoint and stores the 4xx under the key, still holding the key's lock).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["DEFER_COMMIT", "commit"]

DEFER_COMMIT = "scriptworks.defer_commit"


async def commit(session: AsyncSession) -> None:
    if session.info.get(DEFER_COMMIT):
        await session.flush()
    else:
        await session.commit()
