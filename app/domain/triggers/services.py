"""The rules of event types, trigger subscriptions and incoming events.

- Event names are the built-in lifecycle names plus the names a tenant registers.
- At most one *active* subscription per (tenant, subject, event name): a partial unique index
  enforces it, so two concurrent creates cannot both win (the loser gets 409
  ``SUBSCRIPTION_EXISTS``). Subscriptions are deactivated, never deleted.
- ``POST /events`` is one transaction: the incoming event, one run per matching script (on
  its active version) with the runs' ``Run.Started`` events, and the answer, stored so that the
  same ``sourceEventId`` again (even concurrently) gets the first answer and starts nothing.
  A subscription with flow control defers, throttles or folds instead (``flow_control``), and
  every matching subscription's outcome is recorded with the event.
"""

from __future__ import annotations

import datetime
import re
import uuid
from typing import Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import Select, exists, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from uuid_utils.compat import uuid7

from app.db.scripts import Script
from app.db.triggers import EventType, IncomingEvent, TriggerSubscription
from app.domain.runs.services import RunSource, TriggeredStart, start_active_runs
from app.domain.triggers import flow_control
from app.domain.triggers.flow_control import (
    FLOW_METRICS,
    Debounced,
    FlowRules,
    Outcome,
    cancel_for_subscription,
    lock_flows,
    outcomes_of,
    record_outcomes,
    throttle_decision,
    update_throttle_ledgers,
    validate_flow_control,
)
from app.domain.triggers.schemas import (
    LIFECYCLE_EVENTS,
    SUBJECT_PATTERN,
    DeferredStart,
    EventAccepted,
    EventIn,
    EventOutcome,
    EventTypeCreate,
    EventTypeOut,
    SkippedScript,
    StartedRun,
    SubscriptionCreate,
    SuppressedStart,
)
from app.lib.correlation import current_correlation_id
from app.lib.db import driver_connection
from app.lib.errors import Conflict, NotFound, ValidationFailed
from app.lib.pagination import Keyset, PageParams, decode_cursor
from app.lib.principals import Principal
from app.lib.schema import timestamp
from app.lib.timerange import TimeWindow
from app.lib.uow import commit

__all__ = [
    "EventTypeService",
    "IncomingEventService",
    "SubscriptionService",
    "ensure_quota",
    "ensure_script",
    "validate_subject",
]

_SUBJECT = re.compile(SUBJECT_PATTERN)
# Built-in names sort after every registered type (as if created first), in SPEC order.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_BUILT_IN_KEYS = {
    name: (_EPOCH, uuid.UUID(int=len(LIFECYCLE_EVENTS) - index))
    for index, name in enumerate(LIFECYCLE_EVENTS)
}

# The active subscriptions an event on (subject, event name) matches, on the subject or on '*',
# with their flow control and the state of their scripts; served by uq_trigger_subscriptions_active.
MATCHING_SUBSCRIPTIONS = text(
    """
    SELECT sub.id AS subscription_id, sub.script_id, sub.debounce_seconds, sub.max_delay_seconds,
           sub.throttle_runs, sub.throttle_per_seconds,
           s.active_version_id IS NOT NULL AS has_active_version, s.status = 'ARCHIVED' AS archived
    FROM trigger_subscriptions AS sub
    JOIN scripts AS s ON s.id = sub.script_id
    WHERE sub.tenant_id = :tenant_id AND sub.event_name = :event_name
      AND sub.subject IN (:subject, '*') AND sub.active
    ORDER BY sub.id
    """
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def validate_subject(subject: str) -> str:
    if not _SUBJECT.match(subject):
        raise ValidationFailed(
            "A subject is 1-128 letters, digits, '_', '.', ':' or '-', or '*'.",
            details=[{"field": "subject", "message": f"must match {SUBJECT_PATTERN}", "source": "path"}],
        )
    return subject


async def ensure_quota(
    session: AsyncSession, scope: str, count: Select[tuple[int]], limit: int, what: str
) -> None:
    """409 QUOTA_EXCEEDED when ``count`` (of the rows ``scope`` names) has reached ``limit``.

    Creations in one scope take a transaction-scoped lock first, so two concurrent ones cannot
    both see room for one more.
    """
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"quota\x1f{scope}", 0))))
    if (await session.scalar(count) or 0) >= limit:
        raise Conflict(
            f"The limit of {limit} {what} is reached; delete one first.",
            code="QUOTA_EXCEEDED",
            details={"limit": limit},
        )


async def ensure_script(session: AsyncSession, tenant_id: str, script_id: uuid.UUID) -> None:
    found = await session.scalar(
        select(Script.id).where(Script.id == script_id, Script.tenant_id == tenant_id)
    )
    if found is None:
        raise NotFound("No script with this id.")


async def ensure_event_name(session: AsyncSession, tenant_id: str, name: str) -> None:
    """Built-in lifecycle names and the tenant's registered names are known; others are 404."""
    if name in LIFECYCLE_EVENTS:
        return
    registered = await session.scalar(
        select(exists().where(EventType.tenant_id == tenant_id, EventType.name == name))
    )
    if not registered:
        raise NotFound(
            f"No event type named {name!r}: register it with POST /event-types.",
            details=[{"field": "eventName", "message": "unknown event type"}],
        )


# ---- event types -----------------------------------------------------------------------------


class EventTypeRepository(SQLAlchemyAsyncRepository[EventType]):
    model_type = EventType


class EventTypeService(SQLAlchemyAsyncRepositoryService[EventType, EventTypeRepository]):
    repository_type = EventTypeRepository

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = self.repository.session

    async def list_event_types(
        self, tenant_id: str, page: PageParams
    ) -> list[tuple[tuple[datetime.datetime, uuid.UUID], EventTypeOut]]:
        """Registered types newest first, then the built-in names: one keyset over both."""
        registered = await self.repository.get_many(
            Keyset(("created_at", "id"), page), EventType.tenant_id == tenant_id
        )
        after = decode_cursor(page.cursor, 2) if page.cursor is not None else None
        items = [((row.created_at, row.id), EventTypeOut.of(row, built_in=False)) for row in registered]
        items += [
            (key, EventTypeOut.built_in_named(name))
            for name, key in _BUILT_IN_KEYS.items()
            if after is None or key < after
        ]
        items.sort(key=lambda item: item[0], reverse=True)
        return items[: page.limit + 1]

    async def create_event_type(self, tenant_id: str, actor: Principal, data: EventTypeCreate) -> EventType:
        if data.name in LIFECYCLE_EVENTS:
            raise _event_type_exists(data.name)
        now = _now()
        row = (
            await self.session.scalars(
                pg_insert(EventType)
                .values(
                    id=uuid7(),
                    tenant_id=tenant_id,
                    name=data.name,
                    description=data.description,
                    created_by_id=actor.id,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(constraint="uq_event_types_tenant_name")
                .returning(EventType)
            )
        ).one_or_none()
        if row is None:
            raise _event_type_exists(data.name)
        await commit(self.session)
        return row


def _event_type_exists(name: str) -> Conflict:
    return Conflict(f"The event type {name!r} exists already.", code="EVENT_TYPE_EXISTS")


# ---- subscriptions ---------------------------------------------------------------------------


class SubscriptionRepository(SQLAlchemyAsyncRepository[TriggerSubscription]):
    model_type = TriggerSubscription


class SubscriptionService(SQLAlchemyAsyncRepositoryService[TriggerSubscription, SubscriptionRepository]):
    """One service for the external (admin) and internal (service) subscription routes."""

    repository_type = SubscriptionRepository

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = self.repository.session

    async def list_subscriptions(
        self, tenant_id: str, subject: str, page: PageParams, *, active: bool | None = None
    ) -> list[TriggerSubscription]:
        validate_subject(subject)
        conditions: list[Any] = [
            TriggerSubscription.tenant_id == tenant_id,
            TriggerSubscription.subject == subject,
        ]
        if active is not None:
            conditions.append(TriggerSubscription.active == active)
        return list(await self.repository.get_many(Keyset(("created_at", "id"), page), *conditions))

    async def subscribe(
        self,
        tenant_id: str,
        actor: Principal,
        subject: str,
        data: SubscriptionCreate,
        *,
        max_per_tenant: int,
    ) -> TriggerSubscription:
        validate_subject(subject)
        validate_flow_control(data.flow_control, data.event_name)
        await ensure_event_name(self.session, tenant_id, data.event_name)
        await ensure_script(self.session, tenant_id, data.script_id)
        await ensure_quota(
            self.session,
            f"subscriptions\x1f{tenant_id}",
            select(func.count())
            .select_from(TriggerSubscription)
            .where(TriggerSubscription.tenant_id == tenant_id, TriggerSubscription.active),
            max_per_tenant,
            "active trigger subscriptions per tenant",
        )
        now = _now()
        flow = data.flow_control
        throttle = flow.throttle if flow is not None else None
        # The partial unique index decides between concurrent creates: the second one waits for
        # the first to commit, then inserts nothing.
        row = (
            await self.session.scalars(
                pg_insert(TriggerSubscription)
                .values(
                    id=uuid7(),
                    tenant_id=tenant_id,
                    subject=subject,
                    event_name=data.event_name,
                    script_id=data.script_id,
                    active=True,
                    created_by_id=actor.id,
                    created_at=now,
                    updated_at=now,
                    debounce_seconds=flow.debounce_seconds if flow is not None else None,
                    max_delay_seconds=flow.max_delay_seconds if flow is not None else None,
                    throttle_runs=throttle.runs if throttle is not None else None,
                    throttle_per_seconds=throttle.per_seconds if throttle is not None else None,
                )
                .on_conflict_do_nothing(
                    index_elements=["tenant_id", "subject", "event_name"],
                    index_where=TriggerSubscription.active,
                )
                .returning(TriggerSubscription)
            )
        ).one_or_none()
        if row is None:
            raise Conflict(
                f"An active subscription to {data.event_name!r} on subject {subject!r} exists already; "
                "delete it first.",
                code="SUBSCRIPTION_EXISTS",
            )
        await commit(self.session)
        return row

    async def unsubscribe(self, tenant_id: str, subject: str, subscription_id: uuid.UUID) -> None:
        """Deactivate; deactivating an inactive subscription changes nothing."""
        validate_subject(subject)
        now = _now()
        mine = (
            TriggerSubscription.id == subscription_id,
            TriggerSubscription.tenant_id == tenant_id,
            TriggerSubscription.subject == subject,
        )
        changed = await self.session.scalar(
            update(TriggerSubscription)
            .where(*mine, TriggerSubscription.active)
            .values(active=False, deactivated_at=now, updated_at=now)
            .returning(TriggerSubscription.id)
        )
        if changed is None:
            found = await self.session.scalar(select(exists().where(*mine)))
            if not found:
                raise NotFound("No subscription with this id on this subject.")
        else:
            # Its pending debounced runs go with it, in the same transaction.
            await cancel_for_subscription(
                await driver_connection(self.session), tenant_id, subscription_id, now
            )
        await commit(self.session)


# ---- incoming events -------------------------------------------------------------------------


class IncomingEventRepository(SQLAlchemyAsyncRepository[IncomingEvent]):
    model_type = IncomingEvent


class IncomingEventService(SQLAlchemyAsyncRepositoryService[IncomingEvent, IncomingEventRepository]):
    repository_type = IncomingEventRepository

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = self.repository.session

    async def get_event(
        self, tenant_id: str, event_id: uuid.UUID
    ) -> tuple[IncomingEvent, list[EventOutcome]]:
        """The event and what became of it per matching subscription."""
        row = await self.repository.get_one_or_none(
            IncomingEvent.id == event_id, IncomingEvent.tenant_id == tenant_id
        )
        if row is None:
            raise NotFound("No incoming event with this id.")
        outcomes = await outcomes_of(await driver_connection(self.session), tenant_id, [row.id])
        return row, outcomes[row.id]

    async def list_events(
        self,
        tenant_id: str,
        page: PageParams,
        *,
        subject: str | None = None,
        event_name: str | None = None,
        window: TimeWindow | None = None,
    ) -> list[tuple[IncomingEvent, list[EventOutcome]]]:
        """A page of the tenant's incoming events, newest first, each with its outcomes."""
        conditions: list[Any] = [IncomingEvent.tenant_id == tenant_id]
        if subject is not None:
            conditions.append(IncomingEvent.subject == subject)
        if event_name is not None:
            conditions.append(IncomingEvent.event_name == event_name)
        filters = window.filters("created_at") if window is not None else []
        rows = list(await self.repository.get_many(Keyset(("created_at", "id"), page), *filters, *conditions))
        outcomes = await outcomes_of(
            await driver_connection(self.session), tenant_id, [row.id for row in rows]
        )
        return [(row, outcomes[row.id]) for row in rows]

    async def receive(self, tenant_id: str, actor: Principal, data: EventIn) -> EventAccepted:
        """Store the event and, per matching subscription, start a run, defer it into a debounce
        window or suppress it (throttle), all in one transaction."""
        await ensure_event_name(self.session, tenant_id, data.event_name)
        now = flow_control.event_clock()
        insert = pg_insert(IncomingEvent).values(
            id=uuid7(),
            tenant_id=tenant_id,
            event_name=data.event_name,
            subject=data.subject,
            payload=data.payload,
            source_event_id=data.source_event_id,
            received_by_id=actor.id,
            created_at=now,
            updated_at=now,
        )
        if data.source_event_id is not None:
            # A concurrent request with the same sourceEventId waits here for the first to
            # commit, then inserts nothing and reads the first answer.
            insert = insert.on_conflict_do_nothing(
                index_elements=["tenant_id", "source_event_id"],
                index_where=IncomingEvent.source_event_id.is_not(None),
            )
        event_id = await self.session.scalar(insert.returning(IncomingEvent.id))
        if event_id is None:
            first = (
                await self.session.execute(
                    select(IncomingEvent.id, IncomingEvent.answer).where(
                        IncomingEvent.tenant_id == tenant_id,
                        IncomingEvent.source_event_id == data.source_event_id,
                    )
                )
            ).one()
            await commit(self.session)  # nothing was written; ends the unit of work
            return EventAccepted.of_stored(first.id, first.answer)

        matches = (
            await self.session.execute(
                MATCHING_SUBSCRIPTIONS,
                {"tenant_id": tenant_id, "event_name": data.event_name, "subject": data.subject},
            )
        ).all()
        connection = await driver_connection(self.session)
        outcomes: list[Outcome] = []
        immediate: list[Any] = []
        throttled: list[tuple[Any, FlowRules]] = []
        debounced: list[tuple[Any, FlowRules]] = []
        for match in matches:
            rules = FlowRules.of(match)
            if match.archived or not match.has_active_version:
                # An archived script, or one without an active version, is not started; reported,
                # not an error.
                reason = "SCRIPT_ARCHIVED" if match.archived else "NO_ACTIVE_VERSION"
                outcomes.append(Outcome(match.subscription_id, match.script_id, "SKIPPED", reason=reason))
            elif rules.debounced:
                debounced.append((match, rules))
            elif rules.throttled:
                throttled.append((match, rules))
            else:
                immediate.append(match)

        flows = await lock_flows(
            connection, tenant_id, data.subject, [m.subscription_id for m, _ in throttled + debounced], now
        )
        ledgers: dict[tuple[uuid.UUID, str], list[datetime.datetime]] = {}
        for match, rules in throttled:
            allowed, kept = throttle_decision(
                flows[match.subscription_id]["recent_starts"],
                now,
                rules.throttle_runs,  # type: ignore[arg-type]
                rules.throttle_per_seconds,  # type: ignore[arg-type]
            )
            ledgers[(match.subscription_id, data.subject)] = kept
            if allowed:
                immediate.append(match)
            else:
                outcomes.append(
                    Outcome(match.subscription_id, match.script_id, "SUPPRESSED", reason="THROTTLED")
                )

        event_data = {
            "eventName": data.event_name,
            "subject": data.subject,
            "payload": data.payload,
            "sourceEventId": data.source_event_id,
        }
        source = RunSource(trigger_type="EVENT_TRIGGER", triggering_event_id=event_id, event_data=event_data)
        scripts = list(dict.fromkeys(m.script_id for m in immediate))  # one run per script
        starts = [
            TriggeredStart(tenant_id=tenant_id, script_id=script_id, source=source, started_by_id=actor.id)
            for script_id in scripts
        ]
        started = await start_active_runs(
            connection, starts, correlation_id=current_correlation_id(), now=now
        )
        run_of = {row["script_id"]: row["id"] for row in started}
        for match in immediate:
            run_id = run_of.get(match.script_id)
            if run_id is None:
                outcomes.append(
                    Outcome(match.subscription_id, match.script_id, "SKIPPED", reason="NO_ACTIVE_VERSION")
                )
                continue
            outcomes.append(Outcome(match.subscription_id, match.script_id, "STARTED", run_id=run_id))
            if (ledger := ledgers.get((match.subscription_id, data.subject))) is not None:
                ledger.append(now)
        await update_throttle_ledgers(connection, ledgers, now)
        outcomes += await flow_control.defer(
            connection,
            tenant_id,
            data.subject,
            event_id,
            now,
            [
                Debounced(m.subscription_id, m.script_id, rules, flows[m.subscription_id]["open_window_id"])
                for m, rules in debounced
            ],
            uuid7,
        )
        await record_outcomes(connection, tenant_id, event_id, outcomes)

        answer = EventAccepted(
            event_id=event_id,
            runs=[StartedRun(run_id=row["id"], script_id=row["script_id"]) for row in started],
            deferred=[
                DeferredStart(
                    subscription_id=o.subscription_id, script_id=o.script_id, due_at=timestamp(o.due_at)
                )
                for o in outcomes
                if o.outcome == "DEFERRED" and o.due_at is not None
            ],
            suppressed=[
                SuppressedStart(subscription_id=o.subscription_id, script_id=o.script_id, reason="THROTTLED")
                for o in outcomes
                if o.outcome == "SUPPRESSED"
            ],
            skipped=list(
                {
                    o.script_id: SkippedScript(script_id=o.script_id, reason=o.reason)  # type: ignore[arg-type]
                    for o in outcomes
                    if o.outcome == "SKIPPED" and o.script_id not in run_of
                }.values()
            ),
        )
        await self.session.execute(
            update(IncomingEvent)
            .where(IncomingEvent.id == event_id)
            .values(answer=msgspec.to_builtins(answer))
        )
        await commit(self.session)
        FLOW_METRICS.received.inc()
        FLOW_METRICS.runs_started.labels("immediate").inc(len(started))
        FLOW_METRICS.deferred.inc(len(answer.deferred))
        if answer.suppressed:
            FLOW_METRICS.suppressed.labels("THROTTLED").inc(len(answer.suppressed))
        return answer
