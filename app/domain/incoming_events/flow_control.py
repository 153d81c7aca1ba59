"""Flow control on trigger subscriptions (SPEC 7.1): debounce, throttle, and what became of
every incoming event. The rules, and the SQL that keeps them.

- **Debounce.** Events of a subscription on one subject (the *event's* subject: a subscription
  on ``*`` debounces each device on its own) that arrive less than ``debounceSeconds`` apart fold
  into one window, a ``deferred_runs`` row. A window is due ``debounceSeconds`` after its last
  event, but never later than ``maxDelaySeconds`` after its first; an event arriving once the
  window is due (even if the worker has not started it yet) opens the next window instead. The
  worker starts a due window's run (``app.worker.deferred_runs``): ``triggeringEventId`` is the
  last event, ``eventData.coalescedEventIds`` every folded event in arrival order.
- **Throttle.** At most ``runs`` runs per (subscription, subject) in any ``perSeconds``: a
  sliding window of start times, ``trigger_flows.recent_starts``. Without debounce an event that
  would exceed it starts nothing (``SUPPRESSED``, ``THROTTLED``); with debounce the throttle
  counts the runs the windows produce, and a window that would exceed it is suppressed.
- **One decision at a time per (subscription, subject).** Whoever decides for a pair (a
  ``POST /events``, the worker starting a window) first holds the pair's ``trigger_flows`` row
  lock: requests take it with ``INSERT … ON CONFLICT DO UPDATE`` (several pairs in subscription
  order, so two requests never wait on each other in a cycle), the worker with ``FOR UPDATE …
  SKIP LOCKED`` (it never waits). So two concurrent events fold into one window, and the
  throttle's count is exact.
- **Cancelling.** Archiving the script or deactivating the subscription cancels its pending
  windows in the same transaction; the worker also checks both when a window is due, which
  covers an event that raced with the change.
- **Outcomes.** ``incoming_event_outcomes`` keeps, per (event, matching subscription), what the
  event became; a deferred event points at its window, whose state tells the rest (``dueAt``,
  then ``foldedInto``, or why it was suppressed, skipped or cancelled).

"Now" is ``event_clock()`` for incoming events and the database clock in the worker (tests
drive both: the worker's pass takes ``now``, and the event clock can be replaced).
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import Counter

from app.domain.events.schemas import LIFECYCLE_EVENTS
from app.domain.incoming_events.repositories import (
    CANCEL_FOR_SCRIPT,
    CANCEL_FOR_SUBSCRIPTION,
    FOLD,
    LOCK_FLOWS,
    OPEN,
    OUTCOMES_OF,
    RECORD_OUTCOMES,
    SET_LEDGERS,
)
from app.domain.incoming_events.schemas import EventOutcome
from app.domain.subscriptions.schemas import FlowControl
from app.lib.db import columns
from app.lib.errors import ValidationFailed
from app.lib.schema import timestamp

__all__ = [
    "FLOW_METRICS",
    "FlowRules",
    "Outcome",
    "cancel_for_script",
    "cancel_for_subscription",
    "event_clock",
    "lock_flows",
    "outcomes_of",
    "record_outcomes",
    "throttle_decision",
    "update_throttle_ledgers",
    "validate_flow_control",
]


def event_clock() -> datetime.datetime:
    """The time an incoming event is received at (module-level so tests can replay bursts)."""
    return datetime.datetime.now(datetime.UTC)


class _FlowMetrics:
    """Counters of this process (``/metrics``): what incoming events became."""

    def __init__(self) -> None:
        self.received = Counter("scriptworks_trigger_events_received", "Incoming events received.")
        self.runs_started = Counter(
            "scriptworks_trigger_runs_started",
            "Runs started by incoming events: at once, or when a debounce window was due.",
            ["mode"],
        )
        self.deferred = Counter(
            "scriptworks_trigger_runs_deferred",
            "Events deferred into a debounce window (per matching subscription).",
        )
        self.suppressed = Counter(
            "scriptworks_trigger_runs_suppressed",
            "Runs not started by flow control, by reason (THROTTLED).",
            ["reason"],
        )
        self.cancelled = Counter(
            "scriptworks_trigger_deferred_cancelled",
            "Debounce windows closed without a run, by reason.",
            ["reason"],
        )


FLOW_METRICS = _FlowMetrics()

# ---- the rules -------------------------------------------------------------------------------


def validate_flow_control(flow: FlowControl | None, event_name: str) -> None:
    """The rules the field constraints cannot say: 400 VALIDATION_ERROR naming the field."""
    if flow is None:
        return

    def refuse(field: str, message: str) -> ValidationFailed:
        return ValidationFailed(
            f"Invalid {field}: {message}.", details=[{"field": field, "message": message, "source": "body"}]
        )

    if flow.max_delay_seconds is not None:
        if flow.debounce_seconds is None:
            raise refuse("flowControl.maxDelaySeconds", "needs debounceSeconds")
        if flow.max_delay_seconds < flow.debounce_seconds:
            raise refuse("flowControl.maxDelaySeconds", "must be at least debounceSeconds")
    if flow.debounce_seconds is None and flow.throttle is None:
        raise refuse("flowControl", "needs debounceSeconds or throttle (or leave flowControl out)")
    if event_name in LIFECYCLE_EVENTS:
        raise refuse(
            "flowControl",
            "applies to events received by POST /events; lifecycle hooks have their own loop limits",
        )


@dataclass(frozen=True, slots=True)
class FlowRules:
    """A matching subscription's flow control, as its row stores it."""

    debounce_seconds: int | None
    max_delay_seconds: int | None
    throttle_runs: int | None
    throttle_per_seconds: int | None

    @classmethod
    def of(cls, row: Any) -> FlowRules:
        return cls(row.debounce_seconds, row.max_delay_seconds, row.throttle_runs, row.throttle_per_seconds)

    @property
    def debounced(self) -> bool:
        return self.debounce_seconds is not None

    @property
    def throttled(self) -> bool:
        return self.throttle_runs is not None and self.throttle_per_seconds is not None

    @property
    def any(self) -> bool:
        return self.debounced or self.throttled


def throttle_decision(
    recent_starts: Sequence[datetime.datetime], now: datetime.datetime, runs: int, per_seconds: int
) -> tuple[bool, list[datetime.datetime]]:
    """Whether one more run may start at ``now``, and the start times still inside the window."""
    since = now - datetime.timedelta(seconds=per_seconds)
    kept = sorted(t for t in recent_starts if t > since)
    return len(kept) < runs, kept


@dataclass(slots=True)
class Outcome:
    """One row of ``incoming_event_outcomes``."""

    subscription_id: uuid.UUID
    script_id: uuid.UUID
    outcome: str  # STARTED, DEFERRED, SUPPRESSED, SKIPPED
    reason: str | None = None
    run_id: uuid.UUID | None = None
    deferred_run_id: uuid.UUID | None = None
    position: int | None = None
    due_at: datetime.datetime | None = None


# ---- the pair's lock and the throttle ledger ---------------------------------------------------


async def lock_flows(
    connection: asyncpg.Connection,
    tenant_id: str,
    subject: str,
    subscription_ids: Sequence[uuid.UUID],
    now: datetime.datetime,
) -> dict[uuid.UUID, asyncpg.Record]:
    """Hold the flow rows of (each subscription, subject) until the transaction ends."""
    if not subscription_ids:
        return {}
    rows = await connection.fetch(LOCK_FLOWS, sorted(subscription_ids), subject, tenant_id, now)
    return {row["subscription_id"]: row for row in rows}


def _array_literal(times: Iterable[datetime.datetime]) -> str:
    return "{" + ",".join(t.isoformat() for t in times) + "}"


async def update_throttle_ledgers(
    connection: asyncpg.Connection,
    ledgers: dict[tuple[uuid.UUID, str], list[datetime.datetime]],
    now: datetime.datetime,
) -> None:
    """Store each pair's start times (read and changed under its lock)."""
    if not ledgers:
        return
    keys = list(ledgers)
    await connection.execute(
        SET_LEDGERS,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [_array_literal(ledgers[k]) for k in keys],
        now,
    )


# ---- debounce windows --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Debounced:
    subscription_id: uuid.UUID
    script_id: uuid.UUID
    rules: FlowRules
    open_window_id: uuid.UUID | None


async def defer(
    connection: asyncpg.Connection,
    tenant_id: str,
    subject: str,
    event_id: uuid.UUID,
    now: datetime.datetime,
    debounced: Sequence[Debounced],
    new_id: Any,
) -> list[Outcome]:
    """Fold the event into each pair's open window, or open one; under the pairs' locks."""
    if not debounced:
        return []
    by_sub = {d.subscription_id: d for d in debounced}
    candidates = [d for d in debounced if d.open_window_id is not None]
    folded = await connection.fetch(
        FOLD,
        [d.open_window_id for d in candidates],
        event_id,
        now,
        [d.rules.debounce_seconds for d in candidates],
    )
    outcomes = [
        Outcome(
            row["subscription_id"],
            by_sub[row["subscription_id"]].script_id,
            "DEFERRED",
            deferred_run_id=row["id"],
            position=row["event_count"],
            due_at=row["due_at"],
        )
        for row in folded
    ]
    done = {row["subscription_id"] for row in folded}
    fresh = [d for d in debounced if d.subscription_id not in done]
    if fresh:
        opened = await connection.fetch(
            OPEN,
            [new_id() for _ in fresh],
            tenant_id,
            subject,
            now,
            event_id,
            *columns(
                fresh, "subscription_id", "script_id", "rules.debounce_seconds", "rules.max_delay_seconds"
            ),
        )
        outcomes += [
            Outcome(
                row["subscription_id"],
                by_sub[row["subscription_id"]].script_id,
                "DEFERRED",
                deferred_run_id=row["id"],
                position=1,
                due_at=row["due_at"],
            )
            for row in opened
        ]
    return outcomes


# ---- cancelling --------------------------------------------------------------------------------


def _count_cancelled(status: str, reason: str) -> None:
    count = int(status.rsplit(" ", 1)[-1]) if status.startswith("UPDATE") else 0
    if count:
        FLOW_METRICS.cancelled.labels(reason).inc(count)


async def cancel_for_script(
    connection: asyncpg.Connection, tenant_id: str, script_id: uuid.UUID, now: datetime.datetime
) -> None:
    """An archived script's pending debounced runs are cancelled (in the archiving transaction)."""
    _count_cancelled(
        await connection.execute(CANCEL_FOR_SCRIPT, script_id, tenant_id, now), "SCRIPT_ARCHIVED"
    )


async def cancel_for_subscription(
    connection: asyncpg.Connection, tenant_id: str, subscription_id: uuid.UUID, now: datetime.datetime
) -> None:
    """A deactivated subscription's pending debounced runs are cancelled (same transaction)."""
    _count_cancelled(
        await connection.execute(CANCEL_FOR_SUBSCRIPTION, subscription_id, tenant_id, now),
        "SUBSCRIPTION_DEACTIVATED",
    )


# ---- outcomes ----------------------------------------------------------------------------------

_WINDOW_OUTCOME = {"PENDING": "DEFERRED", "STARTED": "FOLDED"}


async def record_outcomes(
    connection: asyncpg.Connection, tenant_id: str, event_id: uuid.UUID, outcomes: Sequence[Outcome]
) -> None:
    if not outcomes:
        return
    await connection.execute(
        RECORD_OUTCOMES,
        event_id,
        tenant_id,
        *columns(
            outcomes,
            "subscription_id",
            "script_id",
            "outcome",
            "reason",
            "run_id",
            "deferred_run_id",
            "position",
        ),
    )


async def outcomes_of(
    connection: asyncpg.Connection, tenant_id: str, event_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[EventOutcome]]:
    """What became of each event, per matching subscription, as of now."""
    found: dict[uuid.UUID, list[EventOutcome]] = {event_id: [] for event_id in event_ids}
    if not event_ids:
        return found
    for row in await connection.fetch(OUTCOMES_OF, list(event_ids), tenant_id):
        outcome, reason, run_id = row["outcome"], row["reason"], row["run_id"]
        due_at = folded_into = None
        if outcome == "DEFERRED":
            outcome = _WINDOW_OUTCOME.get(row["window_status"], row["window_status"])
            reason, due_at, folded_into = row["window_reason"], row["due_at"], row["window_run_id"]
        found[row["event_id"]].append(
            EventOutcome(
                subscription_id=row["subscription_id"],
                script_id=row["script_id"],
                outcome=outcome,
                reason=reason,
                run_id=run_id,
                due_at=None if due_at is None else timestamp(due_at),
                folded_into=folded_into,
            )
        )
    return found
