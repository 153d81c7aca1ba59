"""Deferred runs: start each due debounce window's run, once (SPEC 7.1).

Every ``SCHEDULER_POLL_SECONDS`` a pass claims due windows (``deferred_runs``, ``PENDING`` with
``due_at <= now``), fairly across tenants like due schedules (``app.worker.scheduler``): a due
window's turn is its place among its tenant's due windows (most overdue first), and a pass takes
them by (turn, tenant in rotation order), the rotation going on after the tenant where this
worker's previous pass stopped. The claim locks each window and the flow row of its
(subscription, subject) ``FOR UPDATE SKIP LOCKED``: several workers share the windows without
waiting on each other or on requests, and a window is closed by exactly one of them. In ONE
transaction per batch it then decides each window (``app.domain.incoming_events.flow_control``):

- subscription deactivated or script archived meanwhile: ``CANCELLED``;
- no active version any more: ``SKIPPED`` (``NO_ACTIVE_VERSION``);
- over the subscription's throttle: ``SUPPRESSED`` (``THROTTLED``);
- otherwise an ``EVENT_TRIGGER`` run of the script's active version starts, triggered by the
  window's last event, with ``eventData.coalescedEventIds`` listing its events in arrival order.
  Should a run of that script for that event exist already (another subscription of the same
  script started it at once), the window is folded into that run.

A pass that fails (the database) rolls back and changes nothing; the loop retries it with
backoff. Windows survive restarts: they are rows. "Now" is the database's clock. Its statements
are the incoming events' SQL, in ``app.domain.incoming_events.repositories``.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections import defaultdict

import asyncpg
import msgspec
import structlog

from app.domain.incoming_events.flow_control import FLOW_METRICS, throttle_decision, update_throttle_ledgers
from app.domain.incoming_events.repositories import (
    CLAIM_DUE_WINDOWS,
    CLOSE_WINDOWS,
    EXISTING_RUNS,
    WINDOW_EVENTS,
)
from app.domain.runs.services import RunSource, TriggeredStart, start_active_runs
from app.worker.loop import DueBatchLoop, start_of

__all__ = ["DeferredRunStarter"]

logger = structlog.get_logger("app.worker.deferred_runs")
_stdlib_logger = logging.getLogger("app.worker.deferred_runs")
_decode = msgspec.json.decode


# A pass's windows: how many started (or joined) a run, and the (status, reason) of the others.
_Closed = tuple[int, list[tuple[str, str]]]


class DeferredRunStarter(DueBatchLoop[_Closed]):
    name = "deferred-run starter"
    claim_due = CLAIM_DUE_WINDOWS

    @property
    def closed_without_run(self) -> int:
        return self.claimed - self.runs_started

    def committed(self, claimed: list[asyncpg.Record], handled: _Closed) -> None:
        started, closed = handled
        self.runs_started += started
        FLOW_METRICS.runs_started.labels("debounced").inc(started)
        for status, reason in closed:
            counter = FLOW_METRICS.suppressed if status == "SUPPRESSED" else FLOW_METRICS.cancelled
            counter.labels(reason).inc()

    async def handle(
        self, connection: asyncpg.Connection, claimed: list[asyncpg.Record], now: datetime.datetime
    ) -> _Closed:
        """Decide and close every claimed window."""
        decided: dict[uuid.UUID, tuple[str, str | None]] = {}
        to_start: list[asyncpg.Record] = []
        ledgers: dict[tuple[uuid.UUID, str], list[datetime.datetime]] = {}
        # Per pair in due order, so the throttle counts this pass's earlier starts of the pair.
        by_pair: dict[tuple[uuid.UUID, str], list[asyncpg.Record]] = defaultdict(list)
        for row in claimed:
            by_pair[(row["subscription_id"], row["subject"])].append(row)
        for pair, rows in by_pair.items():
            recent = list(rows[0]["recent_starts"])
            for row in sorted(rows, key=lambda r: (r["due_at"], r["id"])):
                if not row["subscription_active"]:
                    decided[row["id"]] = ("CANCELLED", "SUBSCRIPTION_DEACTIVATED")
                elif row["archived"]:
                    decided[row["id"]] = ("CANCELLED", "SCRIPT_ARCHIVED")
                elif not row["has_active_version"]:
                    decided[row["id"]] = ("SKIPPED", "NO_ACTIVE_VERSION")
                elif row["throttle_runs"] is not None:
                    allowed, recent = throttle_decision(
                        recent, now, row["throttle_runs"], row["throttle_per_seconds"]
                    )
                    ledgers[pair] = recent
                    if allowed:
                        recent.append(now)
                        to_start.append(row)
                    else:
                        decided[row["id"]] = ("SUPPRESSED", "THROTTLED")
                else:
                    to_start.append(row)

        run_ids = await self._start(connection, to_start, now)
        for row in to_start:
            if row["id"] not in run_ids:
                decided[row["id"]] = ("SKIPPED", "NO_ACTIVE_VERSION")
        await update_throttle_ledgers(connection, ledgers, now)
        ids = [row["id"] for row in claimed]
        await connection.execute(
            CLOSE_WINDOWS,
            ids,
            [decided.get(i, ("STARTED", None))[0] for i in ids],
            [decided.get(i, ("STARTED", None))[1] for i in ids],
            [run_ids.get(i) for i in ids],
            now,
        )
        return len(run_ids), [(s, r) for s, r in decided.values() if r is not None]

    async def _start(
        self, connection: asyncpg.Connection, windows: list[asyncpg.Record], now: datetime.datetime
    ) -> dict[uuid.UUID, uuid.UUID]:
        """Start the windows' runs; the run of each window that has one."""
        if not windows:
            return {}
        sources = {
            row["id"]: row for row in await connection.fetch(WINDOW_EVENTS, [w["id"] for w in windows])
        }
        starts: list[TriggeredStart] = []
        for window in windows:
            source = sources[window["id"]]
            event_data = {
                "eventName": source["event_name"],
                "subject": source["subject"],
                "payload": None if source["payload"] is None else _decode(source["payload"]),
                "sourceEventId": source["source_event_id"],
                "coalescedEventIds": [str(event_id) for event_id in source["event_ids"]],
            }
            trigger = RunSource(
                trigger_type="EVENT_TRIGGER",
                triggering_event_id=window["last_event_id"],
                event_data=event_data,
            )
            starts.append(start_of(window, trigger, started_by_id=source["received_by_id"]))
        started = await start_active_runs(connection, starts, now=now)
        run_of = {(r["triggering_event_id"], r["script_id"]): r["id"] for r in started}
        missing = [w for w in windows if (w["last_event_id"], w["script_id"]) not in run_of]
        if missing:
            # Another subscription of the same script started a run for this event already.
            existing = await connection.fetch(
                EXISTING_RUNS, [w["last_event_id"] for w in missing], [w["script_id"] for w in missing]
            )
            run_of.update({(r["triggering_event_id"], r["script_id"]): r["id"] for r in existing})
        return {
            w["id"]: run_of[(w["last_event_id"], w["script_id"])]
            for w in windows
            if (w["last_event_id"], w["script_id"]) in run_of
        }
