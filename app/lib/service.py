"""The base of every domain service: advanced-alchemy's repository service, with the request's
session at hand as ``self.session`` for the statements its repositories do not wrap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.lib.uow import UnitOfWork

__all__ = ["Service", "provide_service"]

ModelT = TypeVar("ModelT")
RepoT = TypeVar("RepoT", bound=SQLAlchemyAsyncRepository[Any])
S = TypeVar("S", bound="Service[Any, Any]")


class Service(SQLAlchemyAsyncRepositoryService[ModelT, RepoT]):  # type: ignore[type-var]
    """On the request's unit of work (``app.lib.uow``): its session for the repositories, and
    ``self.uow`` for ending the change and for plain statements; ``self.settings`` for the
    limits its rules enforce (quotas, the cron minimum interval)."""

    def __init__(self, *, uow: UnitOfWork, settings: Settings, **kwargs: Any) -> None:
        # The repository, and with it the ORM session, is made when first used: a service's
        # single-statement paths (reading one script, accepting a command) make neither.
        self.uow = uow
        self.settings = settings
        self._service_options = kwargs
        self._has_repository = False

    @classmethod
    def for_request(cls: type[S], request: Request[Any, Any, Any]) -> S:
        """The service on the request's unit of work and the app's settings."""
        return cls(uow=UnitOfWork.of_request(request), settings=request.app.state.settings)

    @property
    def repository(self) -> RepoT:
        if not self._has_repository:
            super().__init__(session=self.uow.session, **self._service_options)
            self._has_repository = True
        return super().repository

    @property
    def session(self) -> AsyncSession:
        return self.uow.session


def provide_service(service_type: type[S]) -> Callable[[Request[Any, Any, Any]], Awaitable[S]]:
    """A dependency provider of ``service_type`` on the request's unit of work and the app's
    settings (in place of advanced-alchemy's ``create_service_provider``, which knows only the
    session)."""

    async def provide(request: Request[Any, Any, Any]) -> S:
        return service_type.for_request(request)

    return provide
