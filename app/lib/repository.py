"""The base of the areas' repositories: advanced-alchemy's, plus the two statements every area
needs for its own rows — a newest-first keyset page of one tenant's rows, and an insert that
stamps a new UUIDv7 id and the creation time and gives the row back — and the quota rule that
counts a kind of row before one more is created.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

from advanced_alchemy.filters import StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from app.lib.pagination import Keyset, PageParams
from app.lib.quotas import ensure_quota
from app.lib.timerange import TimeWindow

__all__ = ["NewestFirstFilters", "Quota", "Repository", "apply_filters", "newest_first"]

ModelT = TypeVar("ModelT")


class NewestFirstFilters(TypedDict, total=False):
    """The filters of a list of one tenant's rows (see ``newest_first``); an area's list adds
    the columns it is narrowed by."""

    window: TimeWindow | None  # on createdAt


def newest_first(
    model: Any, tenant_id: str, page: PageParams, *, window: TimeWindow | None = None, **equal: Any
) -> list[Any]:
    """The filters of a page of the tenant's rows of ``model``, newest first by (createdAt, id):
    equal to each value of ``equal`` in the column of its name (a None value narrows nothing)
    and inside ``window`` on createdAt. Every list has an index in this order (``app.db``)."""
    filters: list[Any] = [Keyset(("created_at", "id"), page), model.tenant_id == tenant_id]
    filters += [getattr(model, column) == value for column, value in equal.items() if value is not None]
    if window is not None:
        filters += window.filters("created_at")
    return filters


def apply_filters(statement: Select[Any], model: Any, filters: list[Any]) -> Select[Any]:
    """``filters`` (as ``newest_first`` makes them) on a Core statement of ``model``'s table."""
    for condition in filters:
        if isinstance(condition, StatementFilter):
            statement = condition.append_to_statement(statement, model)
        else:
            statement = statement.where(condition)
    return statement


class Repository(SQLAlchemyAsyncRepository[ModelT]):
    """An area's repository of one model (set ``model_type``)."""

    async def newest_first(
        self,
        tenant_id: str,
        page: PageParams,
        *conditions: Any,
        window: TimeWindow | None = None,
        **equal: Any,
    ) -> list[ModelT]:
        """A page of the tenant's rows (see ``newest_first``), also narrowed by ``conditions``."""
        return list(
            await self.get_many(
                *newest_first(self.model_type, tenant_id, page, window=window, **equal), *conditions
            )
        )

    async def insert_returning(
        self,
        now: datetime.datetime,
        *,
        on_conflict: Mapping[str, Any] | None = None,
        returning: Any = None,
        **values: Any,
    ) -> Any:
        """Insert a row of ``values`` with a new id, created and updated ``now``, and return it
        (or only its ``returning`` column, where the caller needs no more of a large row).
        With ``on_conflict`` (the arguments of ON CONFLICT DO NOTHING) a row that a unique rule
        says exists already inserts nothing and returns None; a concurrent insert of the same one
        waits for the first to commit, then inserts nothing."""
        statement = pg_insert(self.model_type).values(id=uuid7(), created_at=now, updated_at=now, **values)
        if on_conflict is not None:
            statement = statement.on_conflict_do_nothing(**on_conflict)
        returned = self.model_type if returning is None else returning
        return (await self.session.scalars(statement.returning(returned))).one_or_none()


@dataclass(frozen=True, slots=True)
class Quota:
    """How many of one kind of row an owner (a tenant, a script) may hold (SPEC section 11)."""

    scope: str  # names the owner's lock, with the owner's id
    what: str  # names the rows in the 409 QUOTA_EXCEEDED message
    model: Any
    counted: Callable[[Any], tuple[Any, ...]]  # the conditions of the owner's rows that count

    def count(self, owner: Any) -> Select[tuple[int]]:
        return select(func.count()).select_from(self.model).where(*self.counted(owner))

    async def ensure_room(self, session: AsyncSession, owner: Any, limit: int) -> None:
        """409 QUOTA_EXCEEDED when the owner holds ``limit`` already (see ``ensure_quota``)."""
        await ensure_quota(session, f"{self.scope}\x1f{owner}", self.count(owner), limit, self.what)
