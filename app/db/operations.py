"""Operational bookkeeping: which workers are alive, and the secrets every process shares."""

from __future__ import annotations

import datetime

from advanced_alchemy.base import DefaultBase
from sqlalchemy import CheckConstraint, DateTime, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["ServerSecret", "WorkerHeartbeat"]


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


class ServerSecret(DefaultBase):
    """A random key shared by every process on this database (e.g. the stream-ticket key when
    STREAM_TICKET_SECRET is unset), made once by whichever process starts first."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )

    __table_args__ = (CheckConstraint("octet_length(value) >= 32", name="ck_server_secrets_length"),)
