"""The values every controller asks for, by the names the app provides them under
(``app.server.core``): the checked tenant, the caller, and the page of a list."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.lib.pagination import PageParams
from app.lib.principals import Principal
from app.lib.timerange import TimeWindow

__all__ = ["CurrentActor", "Paging", "Tenant", "Window"]

Tenant = NamedDependency[str]  # x-tenant-id, validated and granted (app.lib.tenancy)
CurrentActor = NamedDependency[Principal]
Paging = NamedDependency[PageParams]
Window = NamedDependency[TimeWindow]  # from/to of lists that filter by time
