"""The base of every domain service: advanced-alchemy's repository service, with the request's
session at hand as ``self.session`` for the statements its repositories do not wrap."""

from __future__ import annotations

from typing import Any, TypeVar

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["Service"]

ModelT = TypeVar("ModelT")
RepoT = TypeVar("RepoT", bound=SQLAlchemyAsyncRepository[Any])


class Service(SQLAlchemyAsyncRepositoryService[ModelT, RepoT]):  # type: ignore[type-var]
    @property
    def session(self) -> AsyncSession:
        return self.repository.session  # type: ignore[return-value]
