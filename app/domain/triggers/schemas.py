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
    "DeferredStart",
    "EndpointCreate",
    "EndpointOut",
    "EventAccepted",
    "EventIn",
    "EventOutcome",
    "EventTypeCreate",
    "EventTypeOut",
    "FlowControl",
    "HookAccepted",
    "IncomingEventOut",
    "ScheduleCreate",
    "ScheduleOut",
    "ScheduleUpdate",
    "SkippedScript",
    "StartedRun",
    "SubscriptionCreate",
    "SubscriptionOut",
    "SuppressedStart",
    "Throttle",
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


class SubscriptionOut(Out):
    id: UUID
    tenant_id: str
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


class DeferredStart(CamelStruct):
    """A debounced subscription: the event waits in a window whose run starts at ``dueAt``
    (later still if more events fold in, never after maxDelaySeconds from the first)."""

    subscription_id: UUID
    script_id: UUID
    due_at: Timestamp


class SuppressedStart(CamelStruct):
    subscription_id: UUID
    script_id: UUID
    reason: Literal["THROTTLED"]


class EventAccepted(CamelStruct):
    """What ``POST /events`` answers, and answers again for a repeated ``sourceEventId``."""

    event_id: UUID
    runs: list[StartedRun]
    deferred: list[DeferredStart]
    suppressed: list[SuppressedStart]
    skipped: list[SkippedScript]

    @classmethod
    def of_stored(cls, event_id: UUID, answer: dict[str, Any]) -> EventAccepted:
        """From the answer stored with the incoming event."""
        return cls(
            event_id=event_id,
            runs=msgspec.convert(answer.get("runs", []), list[StartedRun]),
            deferred=msgspec.convert(answer.get("deferred", []), list[DeferredStart]),
            suppressed=msgspec.convert(answer.get("suppressed", []), list[SuppressedStart]),
            skipped=msgspec.convert(answer.get("skipped", []), list[SkippedScript]),
        )


OutcomeName = Literal["STARTED", "DEFERRED", "FOLDED", "SUPPRESSED", "SKIPPED", "CANCELLED"]
OutcomeReason = Literal["THROTTLED", "SCRIPT_ARCHIVED", "NO_ACTIVE_VERSION", "SUBSCRIPTION_DEACTIVATED"]


class EventOutcome(CamelStruct):
    """What became of an incoming event for one matching subscription, as of now.

    STARTED: it started ``runId``. DEFERRED: it waits in a debounce window due at ``dueAt``.
    FOLDED: its window's run started, ``foldedInto``. SUPPRESSED: the throttle (``reason``
    THROTTLED) refused its run, or its window's. SKIPPED: the script was archived or had no active
    version (``reason``). CANCELLED: its window was cancelled before it was due (``reason``
    SCRIPT_ARCHIVED or SUBSCRIPTION_DEACTIVATED).
    """

    subscription_id: UUID
    script_id: UUID
    outcome: OutcomeName
    reason: OutcomeReason | None
    run_id: UUID | None
    due_at: TimestampOrNone
    folded_into: UUID | None


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
    deferred: list[DeferredStart]
    suppressed: list[SuppressedStart]
    skipped: list[SkippedScript]
    outcomes: list[EventOutcome]

    @classmethod
    def of(cls, row: IncomingEvent, outcomes: list[EventOutcome] | None = None) -> IncomingEventOut:
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
            deferred=answer.deferred,
            suppressed=answer.suppressed,
            skipped=answer.skipped,
            outcomes=outcomes or [],
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
