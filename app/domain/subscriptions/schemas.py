"""Wire shapes of trigger subscriptions and their flow control."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from msgspec import Meta

from app.domain.event_types.schemas import EventName
from app.lib.schema import CamelStruct, TenantClaim, TenantResourceOut, Timestamp, TimestampOrNone

SUBJECT_PATTERN = r"^(\*|[A-Za-z0-9_.:-]{1,128})$"
Subject = Annotated[str, Meta(pattern=SUBJECT_PATTERN, description="A device, connector, script id… or *.")]


class Throttle(CamelStruct):
    runs: Annotated[int, Meta(ge=1, le=1000, description="At most this many runs (1-1000) ...")]
    per_seconds: Annotated[
        int, Meta(ge=1, le=86400, description="... in any window of this many seconds (1-86400).")
    ]


class FlowControl(CamelStruct):
    """Debounce and/or throttle (SPEC 7.1); at least one of them."""

    debounce_seconds: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=3600,
                description="Events on one subject less than this many seconds (1-3600) apart fold into "
                "one run, started this long after the last of them.",
            ),
        ]
        | None
    ) = None
    max_delay_seconds: (
        Annotated[
            int,
            Meta(
                ge=1,
                le=86400,
                description="Needs debounceSeconds and is at least it (at most 86400): a debounced run "
                "starts at the latest this long after the first event it folds.",
            ),
        ]
        | None
    ) = None
    throttle: Throttle | None = None


class SubscriptionCreate(CamelStruct):
    event_name: EventName
    script_id: UUID
    flow_control: FlowControl | None = None
    tenant_id: TenantClaim | None = None


class SubscriptionOut(TenantResourceOut):
    subject: str
    event_name: str
    script_id: UUID
    active: bool
    flow_control: FlowControl | None
    created_by_id: str
    created_at: Timestamp
    deactivated_at: TimestampOrNone

    @classmethod
    def of(cls, row: Any, /, **values: Any) -> SubscriptionOut:
        return super().of(row, flow_control=flow_control_of(row), **values)


def flow_control_of(row: Any) -> FlowControl | None:
    """The subscription's flowControl as sent (every field present, absent ones null)."""
    throttle = (
        Throttle(runs=row.throttle_runs, per_seconds=row.throttle_per_seconds)
        if row.throttle_runs is not None and row.throttle_per_seconds is not None
        else None
    )
    if row.debounce_seconds is None and throttle is None:
        return None
    return FlowControl(
        debounce_seconds=row.debounce_seconds, max_delay_seconds=row.max_delay_seconds, throttle=throttle
    )
