"""Caps on what a tenant or a script may hold (SPEC section 11): one check for every kind."""

from __future__ import annotations

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.errors import Conflict


async def ensure_quota(
    session: AsyncSession, scope: str, count: Select[tuple[int]], limit: int, what: str
) -> None:
    """409 QUOTA_EXCEEDED when ``count`` (of the rows ``scope`` names) has reached ``limit``.

    Creations in one scope take a transaction-scoped lock first, so two concurrent ones cannot
    both see room for one more.
    """
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"quota\x1f{scope}", 0))))
    if (await session.scalar(count) or 0) >= limit:
        raise Conflict(
            f"The limit of {limit} {what} is reached; delete one first.",
            code="QUOTA_EXCEEDED",
            details={"limit": limit},
        )
