"""Housekeeping the worker does between commands: purging what has outlived its retention.

Every purge deletes in small batches (each its own short transaction, rows locked with
SKIP LOCKED) so it never holds long locks or blocks writers.
"""

from __future__ import annotations

import datetime

import asyncpg

__all__ = ["purge_expired_idempotency_keys"]

BATCH = 1000

_PURGE_KEYS = """
DELETE FROM idempotency_keys
WHERE (tenant_id, key) IN (
    SELECT tenant_id, key FROM idempotency_keys
    WHERE expires_at < $2
    ORDER BY expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
"""


async def purge_expired_idempotency_keys(
    pool: asyncpg.Pool, *, now: datetime.datetime | None = None, batch: int = BATCH
) -> int:
    cutoff = now or datetime.datetime.now(datetime.UTC)
    total = 0
    while True:
        deleted = int((await pool.execute(_PURGE_KEYS, batch, cutoff)).split()[-1])
        total += deleted
        if deleted < batch:
            return total
