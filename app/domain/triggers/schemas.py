"""Wire shapes of event types, trigger subscriptions, incoming events, schedules and endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app.db.triggers import IncomingEvent
from app.lib.schema import CamelStruct, Out, Timestamp, TimestampOrNone, timestamp

__all__ = [
    "LIFECYCLE_EVENTS",
    "EndpointCreate",
    "EndpointOut",
    "EventAccepted",
    "EventIn",
    "EventTypeCreate",
    "EventTypeOut",
    "HookAccepted",
    "IncomingEventOut",
    "ScheduleCreate",
    "ScheduleOut",
    "ScheduleUpdate",
    "SkippedScript",
    "StartedRun",
    "SubscriptionCreate",
    "SubscriptionOut",
]

# The lifecycle events the API itself writes (SPEC section 6); valid event names in every tenant.
LIFECYCLE_EVENTS = (
    "Script.Created",
    "Script.Published",
    "Script.Archived",
    "Version.Created",
    "Run.Started",
    "Run.Finished",
)
EVENT_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.]{0,99}$"
SUBJECT_PATTERN = r"^(\*|[A-Za-z0-9_.:-]{1,128})$"
ROUTE_PATTERN = r"^[a-z0-9][a-z0-9/_-]*$"

EventName = Annotated[
    str,
    Meta(
        pattern=EVENT_NAME_PATTERN,
        max_length=100,
        description="A built-in lifecycle name or one registered with POST /event-types.",
    ),
]
TenantClaim = Annotated[str, Meta(max_length=64)]
Subject = Annotated[str, Meta(pattern=SUBJECT_PATTERN, description="A device, connector, script id… or *.")]
SourceEventId = Annotated[str, Meta(min_length=1, max_length=200)]
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
Route = Annotated[
    str,
    Meta(
        pattern=ROUTE_PATTERN,
        max_length=200,
        description="Without a leading slash; lowercase letters, digits, '/', '_' and '-'.",
    ),
]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


# ---- event types -----------------------------------------------------------------------------


class EventTypeCreate(CamelStruct):
    name: EventName
    description: Annotated[str, Meta(max_length=2_000)] | None = None
    tenant_id: TenantClaim | None = None


class EventTypeOut(Out):
    """A registered event type, or a built-in lifecycle name (``builtIn``, no id, no creator)."""

    id: UUID | None
    name: str
    description: str | None
    built_in: bool
    created_by_id: str | None
    created_at: TimestampOrNone

    @classmethod
    def built_in_named(cls, name: str) -> EventTypeOut:
        return cls(
            id=None,
            name=name,
            description="Lifecycle event written by the API itself.",
            built_in=True,
            created_by_id=None,
            created_at=None,
        )


# ---- subscriptions ---------------------------------------------------------------------------


class SubscriptionCreate(CamelStruct):
    event_name: EventName
    script_id: UUID
    tenant_id: TenantClaim | None = None


class SubscriptionOut(Out):
    id: UUID
    tenant_id: str
    subject: str
    event_name: str
    script_id: UUID
    active: bool
    created_by_id: str
    created_at: Timestamp
    deactivated_at: TimestampOrNone


# ---- incoming events -------------------------------------------------------------------------


class EventIn(CamelStruct):
    event_name: EventName
    subject: Subject
    payload: Any = None
    source_event_id: SourceEventId | None = None
    tenant_id: TenantClaim | None = None


class StartedRun(CamelStruct):
    run_id: UUID
    script_id: UUID


class SkippedScript(CamelStruct):
    script_id: UUID
    reason: Literal["SCRIPT_ARCHIVED", "NO_ACTIVE_VERSION"]


class EventAccepted(CamelStruct):
    """What ``POST /events`` answers, and answers again for a repeated ``sourceEventId``."""

    event_id: UUID
    runs: list[StartedRun]
    skipped: list[SkippedScript]

    @classmethod
    def of_stored(cls, event_id: UUID, answer: dict[str, Any]) -> EventAccepted:
        """From the answer stored with the incoming event."""
        return cls(
            event_id=event_id,
            runs=msgspec.convert(answer.get("runs", []), list[StartedRun]),
            skipped=msgspec.convert(answer.get("skipped", []), list[SkippedScript]),
        )


class IncomingEventOut(CamelStruct):
    id: UUID
    tenant_id: str
    event_name: str
    subject: str
    payload: Any
    source_event_id: str | None
    lifecycle_event_id: int | None
    received_by_id: str | None
    received_at: Timestamp
    runs: list[StartedRun]
    skipped: list[SkippedScript]

    @classmethod
    def of(cls, row: IncomingEvent) -> IncomingEventOut:
        answer = EventAccepted.of_stored(row.id, row.answer)
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            event_name=row.event_name,
            subject=row.subject,
            payload=row.payload,
            source_event_id=row.source_event_id,
            lifecycle_event_id=row.lifecycle_event_id,
            received_by_id=row.received_by_id,
            received_at=timestamp(row.created_at),
            runs=answer.runs,
            skipped=answer.skipped,
        )


# ---- schedules -------------------------------------------------------------------------------


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


class ScheduleOut(Out):
    id: UUID
    tenant_id: str
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


# ---- endpoints -------------------------------------------------------------------------------


SigningSecret = Annotated[
    str,
    Meta(
        min_length=32,
        max_length=256,
        pattern=r"^[\x21-\x7e]+$",
        description="Write-only (never returned): requests must then carry a Scriptworks-Signature made "
        "with it. 32-256 printable characters.",
    ),
]


class EndpointCreate(CamelStruct):
    method: HttpMethod
    route: Route
    auth_required: bool = True
    signing_secret: SigningSecret | None = None
    tenant_id: TenantClaim | None = None


class EndpointOut(Out):
    id: UUID
    tenant_id: str
    script_id: UUID
    method: HttpMethod
    route: str
    auth_required: bool
    signature_required: bool
    url_path: str
    created_by_id: str
    created_at: Timestamp

    @classmethod
    def of(cls, row: Any, /, **values: Any) -> EndpointOut:
        return super().of(
            row,
            signature_required=row.signing_secret is not None,
            url_path=f"/hooks/{row.tenant_id}/{row.route}",
            **values,
        )


class HookAccepted(CamelStruct):
    run_id: uuid.UUID
