"""Operational bookkeeping: which workers are alive."""

from __future__ import annotations

import datetime

from advanced_alchemy.base import DefaultBase
from sqlalchemy import DateTime, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["WorkerHeartbeat"]


class WorkerHeartbeat(DefaultBase):
    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    last_seen_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )

    __table_args__ = (Index("ix_worker_heartbeats_last_seen", "last_seen_at"),)
