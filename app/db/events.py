"""The event store: completion and lifecycle events, the source of every SSE frame.

Ids are a monotonic identity (they are the SSE ``id:``). An event's delivery position is
``(xid, id)``, where ``xid`` is stamped by the sequencer after the event committed (NULL until
then): readers deliver sequenced events in position order, so an event committed late with a
lower id can never be skipped, and no unrelated transaction holds delivery back (see
``app.domain.events.repositories``).
"""

from __future__ import annotations

import datetime
from typing import Any

from advanced_alchemy.base import IdentityBase
from sqlalchemy import Boolean, DateTime, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

__all__ = ["Event"]


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id type (``pg_current_xact_id()``)."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "xid8"


class Event(IdentityBase):
    __tablename__ = "events"

    # The sequencer's transaction id, once sequenced (see app.domain.events.repositories.sequence_events).
    xid: Mapped[int | None] = mapped_column(XID8(), nullable=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(200))
    correlation_id: Mapped[str | None] = mapped_column(String(128))
    success: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    occurred_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )

    __table_args__ = (
        Index("ix_events_position", "xid", "id"),
        Index("ix_events_tenant_position", "tenant_id", "xid", "id"),
        Index("ix_events_tenant_correlation", "tenant_id", "correlation_id", "xid", "id"),
        Index("ix_events_occurred", "occurred_at"),
        Index("ix_events_unsequenced", "id", postgresql_where=text("xid IS NULL")),
    )
