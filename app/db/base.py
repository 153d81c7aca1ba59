"""The declarative base every table shares: UUIDv7 ids and created/updated timestamps."""

from __future__ import annotations

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["Base", "TenantScoped"]

Base = UUIDv7AuditBase


class TenantScoped:
    """Rows that belong to one tenant; every query of such a table filters on it.

    A plain mixin: declarative maps the columns of every class a mapped class inherits from.
    """

    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)
