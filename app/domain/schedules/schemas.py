"""Wire shapes of schedules."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from msgspec import UNSET, Meta, UnsetType

from app.lib.schema import CamelStruct, TenantClaim, TenantResourceOut, Timestamp, TimestampOrNone

Cron = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=120,
        description="5 fields (minute hour day-of-month month day-of-week), or 6 with trailing seconds, "
        "or an alias such as @daily.",
    ),
]
TimeZoneName = Annotated[
    str, Meta(min_length=1, max_length=64, description="An IANA name, e.g. Europe/Berlin.")
]


class ScheduleCreate(CamelStruct):
    cron: Cron
    timezone: TimeZoneName = "UTC"
    active: bool = True
    tenant_id: TenantClaim | None = None


class ScheduleUpdate(CamelStruct):
    """Absent fields stay as they are."""

    cron: Cron | UnsetType = UNSET
    timezone: TimeZoneName | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    tenant_id: TenantClaim | UnsetType | None = UNSET


class ScheduleOut(TenantResourceOut):
    script_id: UUID
    cron: str
    timezone: str
    active: bool
    next_fire_times: list[Timestamp]
    last_fired_at: TimestampOrNone
    failed_attempts: int
    last_error: str | None
    created_by_id: str
    updated_by_id: str
    created_at: Timestamp
    updated_at: Timestamp
