"""Stored responses of requests sent with an Idempotency-Key."""

from __future__ import annotations

import datetime
from typing import Any

from advanced_alchemy.base import DefaultBase
from sqlalchemy import DateTime, Index, Integer, LargeBinary, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["IdempotencyKey"]


class IdempotencyKey(DefaultBase):
    __tablename__ = "idempotency_keys"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Keys are scoped per tenant and actor: another actor's key of the same text is another key.
    actor_id: Mapped[str] = mapped_column(String(128), primary_key=True, server_default="")
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2048))
    response_status: Mapped[int] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_idempotency_keys_expires", "expires_at"),)
