"""Wire shapes of incoming events and what became of them."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from app.db.triggers import IncomingEvent
from app.domain.event_types.schemas import EventName
from app.domain.subscriptions.schemas import Subject
from app.lib.schema import (
    CamelStruct,
    TenantClaim,
    TenantResourceOut,
    Timestamp,
    TimestampOrNone,
    timestamp,
)

SourceEventId = Annotated[str, Meta(min_length=1, max_length=200)]


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


class IncomingEventOut(TenantResourceOut):
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
        return super().of(
            row,
            received_at=timestamp(row.created_at),
            runs=answer.runs,
            deferred=answer.deferred,
            suppressed=answer.suppressed,
            skipped=answer.skipped,
            outcomes=outcomes or [],
        )
