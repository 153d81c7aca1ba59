"""The declarative base every table shares (UUIDv7 ids and created/updated timestamps), and the
column types, CHECKs and indexes that recur across the table families."""

from __future__ import annotations

from typing import Any

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import DateTime, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["Base", "TenantScoped", "Time", "newest_first", "one_of"]

Base = UUIDv7AuditBase

# A point in time with its zone (timestamptz); the wire shows it in UTC.
Time = DateTime(timezone=True)


class TenantScoped:
    """Rows that belong to one tenant; every query of such a table filters on it.

    A plain mixin: declarative maps the columns of every class a mapped class inherits from.
    """

    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False)


def one_of(column: str, values: tuple[str, ...]) -> str:
    """The CHECK that keeps ``column`` to the names of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def newest_first(name: str, *leading: str, by: str = "created_at", **kw: Any) -> Index:
    """The index of a list read newest first (``by`` descending, ties by id) after equal
    ``leading`` columns: the keyset pagination of every list."""
    return Index(name, *leading, text(f"{by} DESC"), text("id DESC"), **kw)
