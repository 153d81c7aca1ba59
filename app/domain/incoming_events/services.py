"""The rules of incoming events.

``POST /events`` is one transaction: the incoming event, one run per matching script (on its
active version) with the runs' ``Run.Started`` events, and the answer, stored so that the same
``sourceEventId`` again (even concurrently) gets the first answer and starts nothing. A
subscription with flow control defers, throttles or folds instead (``flow_control``), and every
matching subscription's outcome is recorded with the event.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, Unpack

import msgspec
from uuid_utils.compat import uuid7

from app.db.triggers import IncomingEvent
from app.domain.event_types.services import ensure_event_name
from app.domain.incoming_events import flow_control
from app.domain.incoming_events.flow_control import (
    FLOW_METRICS,
    Debounced,
    FlowRules,
    Outcome,
    lock_flows,
    outcomes_of,
    record_outcomes,
    throttle_decision,
    update_throttle_ledgers,
)
from app.domain.incoming_events.repositories import IncomingEventFilters, IncomingEventRepository
from app.domain.incoming_events.schemas import (
    DeferredStart,
    EventAccepted,
    EventIn,
    EventOutcome,
    SkippedScript,
    StartedRun,
    SuppressedStart,
)
from app.domain.runs.services import RunSource, TriggeredStart, start_active_runs
from app.lib.correlation import current_correlation_id
from app.lib.errors import NotFound
from app.lib.pagination import PageParams
from app.lib.principals import Principal
from app.lib.schema import timestamp
from app.lib.service import Service
from app.lib.uow import driver_connection

__all__ = ["IncomingEventService"]


class IncomingEventService(Service[IncomingEvent, IncomingEventRepository]):
    repository_type = IncomingEventRepository

    async def get_event(
        self, tenant_id: str, event_id: uuid.UUID
    ) -> tuple[IncomingEvent, list[EventOutcome]]:
        """The event and what became of it per matching subscription."""
        row = await self.repository.get_of_tenant(event_id, tenant_id)
        if row is None:
            raise NotFound("No incoming event with this id.")
        outcomes = await outcomes_of(await driver_connection(self.session), tenant_id, [row.id])
        return row, outcomes[row.id]

    async def list_events(
        self, tenant_id: str, page: PageParams, **filters: Unpack[IncomingEventFilters]
    ) -> list[tuple[IncomingEvent, list[EventOutcome]]]:
        """A page of the tenant's incoming events, newest first, each with its outcomes."""
        rows = await self.repository.newest_first(tenant_id, page, **filters)
        outcomes = await outcomes_of(
            await driver_connection(self.session), tenant_id, [row.id for row in rows]
        )
        return [(row, outcomes[row.id]) for row in rows]

    async def receive(self, tenant_id: str, actor: Principal, data: EventIn) -> EventAccepted:
        """Store the event and, per matching subscription, start a run, defer it into a debounce
        window or suppress it (throttle), all in one transaction."""
        await ensure_event_name(self.session, tenant_id, data.event_name)
        now = flow_control.event_clock()
        # A concurrent request with the same sourceEventId waits here for the first to commit,
        # then inserts nothing and reads the first answer.
        event_id = await self.repository.insert_unless_repeated(
            now,
            data.source_event_id,
            tenant_id=tenant_id,
            event_name=data.event_name,
            subject=data.subject,
            payload=data.payload,
            received_by_id=actor.id,
        )
        if event_id is None:
            first_id, first_answer = await self.repository.first_answer(
                tenant_id,
                data.source_event_id,  # type: ignore[arg-type]  # only a repeated one inserts nothing
            )
            await self.uow.commit()  # nothing was written; ends the unit of work
            return EventAccepted.of_stored(first_id, first_answer)

        matches = await self.repository.matching_subscriptions(tenant_id, data.event_name, data.subject)
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
        await self.repository.store_answer(event_id, msgspec.to_builtins(answer))
        await self.uow.commit()
        FLOW_METRICS.received.inc()
        FLOW_METRICS.runs_started.labels("immediate").inc(len(started))
        FLOW_METRICS.deferred.inc(len(answer.deferred))
        if answer.suppressed:
            FLOW_METRICS.suppressed.labels("THROTTLED").inc(len(answer.suppressed))
        return answer
