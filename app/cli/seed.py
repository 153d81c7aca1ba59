"""``scriptworks seed runs`` and ``scriptworks seed clean``: a million runs, and away again.

Seeding creates what runs need — published scripts, their (inactive) schedules and incoming
events — then bulk-loads runs with binary ``COPY`` in batches: half scheduled, half event-
triggered by default, every row valid under the runs CHECK and the exactly-once keys (one run per
(schedule, plannedAt) and per (event, script)). Run ids are UUIDv7 minted at each run's
``startedAt``, as the API mints them, so retention and keyset order treat seeded runs like any.
Everything seeded is marked (scripts labelled ``scriptworks-seed``, events ``seed:…``), and
``clean`` removes exactly that, in batches.
"""

from __future__ import annotations

import datetime
import itertools
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg

__all__ = ["SeedPlan", "clean", "prepare", "run_rows", "seed_runs", "verify"]

SEED_LABEL = "scriptworks-seed"
RUN_COLUMNS = (
    "id",
    "tenant_id",
    "script_id",
    "version",
    "status",
    "trigger_type",
    "schedule_id",
    "planned_at",
    "triggering_event_id",
    "event_data",
    "started_by_id",
    "connector_type",
    "connector_key",
    "started_at",
    "ended_at",
    "created_at",
    "updated_at",
)
GRAPH = {
    "nodes": [
        {"id": "greet", "type": "say"},
        {"id": "ask", "type": "closedQuestion"},
        {"id": "report", "type": "report"},
    ],
    "edges": [{"source": "greet", "target": "ask"}, {"source": "ask", "target": "report"}],
}
# Final statuses, weighted like a healthy fleet: mostly successes, some failures, a few running.
STATUSES = ("SUCCEEDED",) * 85 + ("FAILED",) * 10 + ("CANCELLED",) * 3 + ("RUNNING",) * 2
FIRE_SPACING = datetime.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class SeedPlan:
    tenant: str
    count: int
    scheduled_ratio: float
    scripts: int
    batch: int
    now: datetime.datetime

    @property
    def scheduled(self) -> int:
        return round(self.count * self.scheduled_ratio)

    @property
    def triggered(self) -> int:
        return self.count - self.scheduled

    @property
    def events(self) -> int:
        """Incoming events: each starts one run of every seeded script."""
        return -(-self.triggered // self.scripts)


@dataclass(frozen=True, slots=True)
class Prepared:
    script_ids: list[uuid.UUID]
    schedule_ids: list[uuid.UUID]
    event_ids: list[uuid.UUID]
    event_times: list[datetime.datetime]


def uuid7_at(moment: datetime.datetime, rng: random.Random) -> uuid.UUID:
    """A UUIDv7 for ``moment``'s millisecond (random bits from ``rng``)."""
    millis = int(moment.timestamp() * 1000)
    return uuid.UUID(
        int=(millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    )


async def prepare(connection: asyncpg.Connection, plan: SeedPlan) -> Prepared:
    """Scripts with a published version 1, one inactive schedule each, and the incoming events."""
    rng = random.Random(7)
    now = plan.now
    script_ids = [uuid7_at(now, rng) for _ in range(plan.scripts)]
    version_ids = [uuid7_at(now, rng) for _ in range(plan.scripts)]
    schedule_ids = [uuid7_at(now, rng) for _ in range(plan.scripts)]
    stamp = int(now.timestamp())
    async with connection.transaction():
        await connection.executemany(
            """INSERT INTO scripts (id, tenant_id, name, slug, status, latest_version, labels, intents,
                                    language_codes, created_by_id, updated_by_id, created_at, updated_at)
               VALUES ($1, $2, $3, $4, 'PUBLISHED', 1, $5, '{}', '{}', 'seed', 'seed', $6, $6)""",
            [
                (sid, plan.tenant, f"Seeded script {n}", f"seed-{stamp}-{n}", [SEED_LABEL], now)
                for n, sid in enumerate(script_ids)
            ],
        )
        await connection.executemany(
            """INSERT INTO script_versions (id, tenant_id, script_id, version, graph_json, is_published,
                                            created_by_id, created_at, updated_at)
               VALUES ($1, $2, $3, 1, $4::jsonb, true, 'seed', $5, $5)""",
            [
                (vid, plan.tenant, sid, json.dumps(GRAPH), now)
                for vid, sid in zip(version_ids, script_ids, strict=True)
            ],
        )
        await connection.executemany(
            "UPDATE scripts SET active_version_id = $2 WHERE id = $1",
            list(zip(script_ids, version_ids, strict=True)),
        )
        # Inactive: seeded history, not a load for the scheduler.
        await connection.executemany(
            """INSERT INTO schedules (id, tenant_id, script_id, cron, timezone, active, created_by_id,
                                      updated_by_id, created_at, updated_at)
               VALUES ($1, $2, $3, '* * * * *', 'UTC', false, 'seed', 'seed', $4, $4)""",
            [(schid, plan.tenant, sid, now) for schid, sid in zip(schedule_ids, script_ids, strict=True)],
        )
    event_times = [plan.now - datetime.timedelta(seconds=30 * (plan.events - n)) for n in range(plan.events)]
    event_ids = [uuid7_at(t, rng) for t in event_times]
    await connection.copy_records_to_table(
        "incoming_events",
        columns=[
            "id",
            "tenant_id",
            "event_name",
            "subject",
            "payload",
            "source_event_id",
            "created_at",
            "updated_at",
        ],
        records=[
            (eid, plan.tenant, "SEED_EVENT", "*", '{"seeded": true}', f"seed:{stamp}:{n}", t, t)
            for n, (eid, t) in enumerate(zip(event_ids, event_times, strict=True))
        ],
    )
    return Prepared(script_ids, schedule_ids, event_ids, event_times)


def run_rows(plan: SeedPlan, prepared: Prepared) -> Iterator[tuple[object, ...]]:
    """Every run row, in COPY column order: scheduled first, then event-triggered."""
    rng = random.Random(11)
    scripts = prepared.script_ids
    tenant = plan.tenant
    fires_per_schedule = -(-plan.scheduled // len(scripts))
    for n in range(plan.scheduled):
        slot, fire = divmod(n, fires_per_schedule)
        planned = plan.now - FIRE_SPACING * (fires_per_schedule - fire)
        yield _run(
            rng, tenant, scripts[slot], "SCHEDULED_TASK", prepared.schedule_ids[slot], planned, None, planned
        )
    for n in range(plan.triggered):
        event, slot = divmod(n, len(scripts))
        started = prepared.event_times[event] + datetime.timedelta(milliseconds=slot)
        yield _run(
            rng, tenant, scripts[slot], "EVENT_TRIGGER", None, None, prepared.event_ids[event], started
        )


def _run(
    rng: random.Random,
    tenant: str,
    script_id: uuid.UUID,
    trigger: str,
    schedule_id: uuid.UUID | None,
    planned_at: datetime.datetime | None,
    event_id: uuid.UUID | None,
    started: datetime.datetime,
) -> tuple[object, ...]:
    status = STATUSES[rng.randrange(len(STATUSES))]
    ended = (
        None
        if status == "RUNNING"
        else started + datetime.timedelta(milliseconds=rng.randrange(500, 120_000))
    )
    return (
        uuid7_at(started, rng),
        tenant,
        script_id,
        1,
        status,
        trigger,
        schedule_id,
        planned_at,
        event_id,
        None,
        "seed",
        "seed",
        None,
        started,
        ended,
        started,
        ended or started,
    )


class Progress:
    """One line, rewritten: done/total, rate, ETA."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total = total
        self.stream = stream
        self.started = time.perf_counter()

    def update(self, done: int) -> None:
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if elapsed else 0.0
        eta = (self.total - done) / rate if rate else 0.0
        width = 30
        filled = int(width * done / self.total) if self.total else width
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,} runs "
            f"{rate:,.0f}/s ETA {eta:,.0f} s "
        )
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


async def copy_runs(
    connection: asyncpg.Connection, rows: Iterator[tuple[object, ...]], batch: int, progress: Progress | None
) -> int:
    """COPY the rows ``batch`` at a time, each COPY its own transaction.

    One COPY of a million rows would be one long transaction: every reader of the event store
    waits for transactions older than what it reads, so a long one holds back live delivery and
    hooks for as long as it runs. A batch commits in about a second.
    """
    done = 0
    while True:
        chunk = list(itertools.islice(rows, batch))
        if not chunk:
            break
        await connection.copy_records_to_table("runs", records=chunk, columns=RUN_COLUMNS)
        done += len(chunk)
        if progress:
            progress.update(done)
    return done


async def verify(connection: asyncpg.Connection, tenant: str) -> dict[str, int]:
    """Counts of the tenant's seeded runs by trigger type, and rows breaking the source rule."""
    rows = await connection.fetch(
        """SELECT trigger_type, count(*) AS n FROM runs
           WHERE tenant_id = $1 AND script_id IN (
               SELECT id FROM scripts WHERE tenant_id = $1 AND $2 = ANY(labels))
           GROUP BY trigger_type""",
        tenant,
        SEED_LABEL,
    )
    counts = {r["trigger_type"]: r["n"] for r in rows}
    counts["constraint violations"] = await connection.fetchval(
        """SELECT count(*) FROM runs WHERE tenant_id = $1 AND NOT (
             (trigger_type = 'SCHEDULED_TASK' AND schedule_id IS NOT NULL AND planned_at IS NOT NULL
                AND triggering_event_id IS NULL)
          OR (trigger_type IN ('EVENT_TRIGGER', 'LIFECYCLE_HOOK') AND triggering_event_id IS NOT NULL
                AND schedule_id IS NULL AND planned_at IS NULL)
          OR (trigger_type IN ('API_RUN', 'ENDPOINT_REQUEST') AND schedule_id IS NULL
                AND planned_at IS NULL AND triggering_event_id IS NULL))""",
        tenant,
    )
    return counts


async def seed_runs(connection: asyncpg.Connection, plan: SeedPlan, *, show_progress: bool = True) -> dict:
    started = time.perf_counter()
    prepared = await prepare(connection, plan)
    progress = Progress(plan.count) if show_progress else None
    loaded = await copy_runs(connection, run_rows(plan, prepared), plan.batch, progress)
    if progress:
        progress.finish()
    await connection.execute("ANALYZE runs")
    counts = await verify(connection, plan.tenant)
    return {"loaded": loaded, "counts": counts, "seconds": time.perf_counter() - started}


async def clean(connection: asyncpg.Connection, tenant: str, batch: int = 20_000) -> dict[str, int]:
    """Remove exactly what seeding created in ``tenant``: runs, events, schedules, scripts."""
    script_ids = [
        r["id"]
        for r in await connection.fetch(
            "SELECT id FROM scripts WHERE tenant_id = $1 AND $2 = ANY(labels)", tenant, SEED_LABEL
        )
    ]
    removed = {"runs": 0, "incoming events": 0, "scripts": 0}
    while True:
        status = await connection.execute(
            """DELETE FROM runs WHERE id IN (
                   SELECT id FROM runs WHERE tenant_id = $1 AND script_id = ANY($2::uuid[]) LIMIT $3)""",
            tenant,
            script_ids,
            batch,
        )
        deleted = int(status.split()[-1])
        removed["runs"] += deleted
        if deleted < batch:
            break
    async with connection.transaction():
        status = await connection.execute(
            """DELETE FROM incoming_events WHERE tenant_id = $1 AND source_event_id LIKE 'seed:%'
                 AND NOT EXISTS (SELECT FROM runs WHERE runs.triggering_event_id = incoming_events.id)""",
            tenant,
        )
        removed["incoming events"] = int(status.split()[-1])
        await connection.execute("DELETE FROM schedules WHERE script_id = ANY($1::uuid[])", script_ids)
        status = await connection.execute("DELETE FROM scripts WHERE id = ANY($1::uuid[])", script_ids)
        removed["scripts"] = int(status.split()[-1])
    return removed
