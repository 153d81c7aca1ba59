"""Which index serves which GET /runs query: load many runs into a scratch database, print plans.

    python bench/runs_indexes.py --server-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres \
        [--runs 500000] [--keep]

Creates a scratch database on that server, migrates it, bulk-loads runs (CHECK-consistent, of
every trigger type, most of them in one large tenant), then runs EXPLAIN (ANALYZE, BUFFERS) on the
exact statement the API issues for each filter combination of GET /runs, first page and a deep
page, and prints the index used, the rows read and the time. The database is dropped afterwards
unless --keep is given.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.db.engine import upgrade_database
from app.domain.runs.repositories import list_runs
from app.lib.db import asyncpg_connect_kwargs
from app.lib.pagination import PageParams, encode_cursor

TENANT = "acme"
SCRIPTS_PER_TENANT = 50
OTHER_TENANTS = 4

# Runs over the last 30 days; 90% succeed, running ones are the newest. Scheduled and
# event-triggered runs carry their source, as the CHECK demands; events start 1-3 runs each.
LOAD_RUNS = """
WITH s AS (
    SELECT row_number() OVER (ORDER BY tenant_id, id) - 1 AS n, id, tenant_id FROM scripts
), g AS (
    SELECT i,
           CASE WHEN i % 10 < 6 THEN 0 ELSE 1 + i % $2 END AS tenant_no,
           random() AS r_status, random() AS r_trigger,
           now() - (i::float8 / $1) * interval '30 days' AS started
    FROM generate_series(0, $1 - 1) AS i
), runs_src AS (
    SELECT g.*, s.id AS script_id, s.tenant_id,
           CASE WHEN g.r_trigger < 0.40 THEN 'API_RUN'
                WHEN g.r_trigger < 0.70 THEN 'SCHEDULED_TASK'
                WHEN g.r_trigger < 0.95 THEN 'EVENT_TRIGGER'
                WHEN g.r_trigger < 0.98 THEN 'ENDPOINT_REQUEST'
                ELSE 'LIFECYCLE_HOOK' END AS trigger_type,
           CASE WHEN g.i < 2000 THEN 'RUNNING'
                WHEN g.r_status < 0.90 THEN 'SUCCEEDED'
                WHEN g.r_status < 0.97 THEN 'FAILED'
                ELSE 'CANCELLED' END AS status
    FROM g JOIN s ON s.n = g.tenant_no * $3 + (g.i::bigint * 7919) % $3
)
INSERT INTO runs (id, tenant_id, script_id, version, status, trigger_type, schedule_id, planned_at,
                  triggering_event_id, event_data, started_by_id, started_at, ended_at,
                  created_at, updated_at)
SELECT gen_random_uuid(), tenant_id, script_id, 1, status, trigger_type,
       CASE WHEN trigger_type = 'SCHEDULED_TASK' THEN md5('schedule' || (i % 97))::uuid END,
       CASE WHEN trigger_type = 'SCHEDULED_TASK' THEN date_trunc('minute', started) END,
       CASE WHEN trigger_type IN ('EVENT_TRIGGER', 'LIFECYCLE_HOOK') THEN md5('event' || (i / 2))::uuid END,
       CASE WHEN trigger_type IN ('EVENT_TRIGGER', 'LIFECYCLE_HOOK') THEN '{"subject": "device"}'::jsonb END,
       'loader', date_trunc('milliseconds', started),
       CASE WHEN status <> 'RUNNING' THEN date_trunc('milliseconds', started) + interval '2 seconds' END,
       started, started
FROM runs_src
"""


async def _seed(url: str, runs: int) -> None:
    db = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        started = time.perf_counter()
        tenants = [TENANT, *(f"tenant-{n}" for n in range(1, OTHER_TENANTS + 1))]
        for tenant in tenants:
            for n in range(SCRIPTS_PER_TENANT):
                script_id = uuid.uuid4()
                await db.execute(
                    "INSERT INTO scripts (id, tenant_id, name, slug, created_by_id, updated_by_id,"
                    " created_at, updated_at, latest_version)"
                    " VALUES ($1, $2, $3, $3, 'loader', 'loader', now(), now(), 1)",
                    script_id,
                    tenant,
                    f"script-{n}",
                )
                await db.execute(
                    "INSERT INTO script_versions (id, tenant_id, script_id, version, graph_json,"
                    " created_by_id, created_at, updated_at)"
                    " VALUES ($1, $2, $3, 1, '{\"nodes\": [], \"edges\": []}', 'loader', now(), now())",
                    uuid.uuid4(),
                    tenant,
                    script_id,
                )
        await db.execute(LOAD_RUNS, runs, OTHER_TENANTS, SCRIPTS_PER_TENANT)
        await db.execute("VACUUM ANALYZE runs")
        counts = await db.fetch("SELECT trigger_type, count(*) FROM runs GROUP BY 1 ORDER BY 1")
        print(f"loaded {runs:,} runs in {time.perf_counter() - started:.1f}s:", dict(counts))
    finally:
        await db.close()


async def _cases(db: asyncpg.Connection) -> list[tuple[str, dict[str, Any]]]:
    script_id = await db.fetchval(
        "SELECT script_id FROM runs WHERE tenant_id = $1 GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", TENANT
    )
    event_id = await db.fetchval(
        "SELECT triggering_event_id FROM runs WHERE tenant_id = $1 AND triggering_event_id IS NOT NULL "
        "ORDER BY started_at LIMIT 1 OFFSET 1000",
        TENANT,
    )
    now = datetime.datetime.now(datetime.UTC)
    day = {
        "started_from": now - datetime.timedelta(days=11),
        "started_before": now - datetime.timedelta(days=10),
    }
    return [
        ("tenant only", {}),
        ("scriptId", {"script_id": script_id}),
        ("status=FAILED", {"status": "FAILED"}),
        ("status=SUCCEEDED", {"status": "SUCCEEDED"}),
        ("status=RUNNING", {"status": "RUNNING"}),
        ("triggerType=SCHEDULED_TASK", {"trigger_type": "SCHEDULED_TASK"}),
        ("triggerType=LIFECYCLE_HOOK", {"trigger_type": "LIFECYCLE_HOOK"}),
        ("triggeringEventId", {"triggering_event_id": event_id}),
        ("from+to (one day)", day),
        ("scriptId+status=FAILED", {"script_id": script_id, "status": "FAILED"}),
        ("scriptId+triggerType", {"script_id": script_id, "trigger_type": "EVENT_TRIGGER"}),
        ("scriptId+from+to", {"script_id": script_id, **day}),
        ("status=FAILED+triggerType", {"status": "FAILED", "trigger_type": "ENDPOINT_REQUEST"}),
        ("status=FAILED+from+to", {"status": "FAILED", **day}),
        ("triggerType+from+to", {"trigger_type": "LIFECYCLE_HOOK", **day}),
        (
            "scriptId+status+triggerType",
            {"script_id": script_id, "status": "FAILED", "trigger_type": "API_RUN"},
        ),
    ]


async def _explain(url: str, deep_page_after: int) -> None:
    db = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    dialect = postgresql.asyncpg.dialect()  # type: ignore[attr-defined]
    try:
        print(f"{'query':32} {'page':5} {'index':40} {'rows read':>9} {'ms':>7}")
        for name, filters in await _cases(db):
            for label, cursor in (("1", None), ("deep", "deep")):
                if cursor == "deep":
                    row = await db.fetchrow(
                        _sql(list_runs(TENANT, PageParams(limit=1, cursor=None), **filters), dialect)[
                            0
                        ].replace("LIMIT $", f"OFFSET {deep_page_after} LIMIT $"),
                        *_sql(list_runs(TENANT, PageParams(limit=1, cursor=None), **filters), dialect)[1],
                    )
                    if row is None:
                        continue
                    cursor = encode_cursor((row["started_at"], row["id"]))
                sql, params = _sql(list_runs(TENANT, PageParams(limit=50, cursor=cursor), **filters), dialect)
                plan = "\n".join(r[0] for r in await db.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *params))
                print(f"{name:32} {label:5} {_index(plan):40} {_rows_read(plan):>9} {_ms(plan):>7}")
                if "-v" in sys.argv:
                    print(plan, "\n")
    finally:
        await db.close()


def _sql(statement: Any, dialect: Any) -> tuple[str, list[Any]]:
    compiled = statement.compile(dialect=dialect)
    params = compiled.construct_params()
    return str(compiled), [params[name] for name in compiled.positiontup]


def _index(plan: str) -> str:
    names = re.findall(r"Scan(?: Backward)? using (\w+)", plan)
    if "Seq Scan" in plan:
        names.append("SEQ SCAN")
    return ", ".join(dict.fromkeys(names))[:40]


def _rows_read(plan: str) -> int:
    scans = re.findall(r"Scan.*?actual time=[\d.]+\.\.[\d.]+ rows=(\d+) loops=(\d+)", plan)
    filtered = re.findall(r"Rows Removed by (?:Filter|Index Recheck): (\d+)", plan)
    return sum(int(r) * int(n) for r, n in scans) + sum(int(f) for f in filtered)


def _ms(plan: str) -> str:
    match = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return match.group(1) if match else "?"


async def _admin(url: str, sql: str) -> None:
    db = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        await db.execute(sql)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server-url", required=True, help="postgresql+asyncpg:// URL of a server to use")
    parser.add_argument("--runs", type=int, default=500_000)
    parser.add_argument("--deep-page-after", type=int, default=3_000, help="rows skipped for the deep page")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("-v", action="store_true", help="print every plan in full")
    args = parser.parse_args()
    name = f"scriptworks_explain_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(args.server_url, f'CREATE DATABASE "{name}"'))
    url = make_url(args.server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(Settings(database_url=url))
        asyncio.run(_seed(url, args.runs))
        asyncio.run(_explain(url, args.deep_page_after))
    finally:
        if args.keep:
            print("kept database", name)
        else:
            asyncio.run(_admin(args.server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
