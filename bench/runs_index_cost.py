"""What each secondary index of ``runs`` costs a write: ``python bench/runs_index_cost.py --server-url URL``.

On a fresh database of the given server (migrated, then dropped), for the full set of indexes
and then with each secondary index dropped in turn (inside a transaction that is rolled back),
it starts ``--rows`` API runs with one ``INSERT … SELECT`` (the row shape ``POST /runs``
writes) and then finishes them all with one ``UPDATE`` (the status change ``POST
/runs/{id}/finish`` makes). Each variant runs ``--repeat`` times; the median is printed as
microseconds per row, and the difference to the full set is what that index costs.

The set with every index is measured between the variants (they take turns), and the rows a
variant rolled back are vacuumed away before the next one. A finish changes ``status``, which
two indexes hold, so PostgreSQL cannot make it a HOT update: every index of the table gets a
new entry on each finish, not only those on ``status``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.engine import upgrade_database  # noqa: E402
from app.lib.db import asyncpg_connect_kwargs  # noqa: E402

TENANT = "index-cost"
START = """
INSERT INTO runs (id, tenant_id, script_id, version, status, trigger_type, started_by_id,
                  started_at, created_at, updated_at)
SELECT gen_random_uuid(), $1, $2, 1, 'RUNNING', 'API_RUN', 'bench', now() - make_interval(secs => n),
       now(), now()
FROM generate_series(1, $3) AS n
"""
FINISH = "UPDATE runs SET status = 'SUCCEEDED', ended_at = now(), updated_at = now() WHERE tenant_id = $1"


async def _fixture(connection: asyncpg.Connection) -> uuid.UUID:
    script_id, version_id = uuid.uuid4(), uuid.uuid4()
    await connection.execute(
        """INSERT INTO scripts (id, tenant_id, name, slug, status, latest_version, created_by_id,
                                updated_by_id, created_at, updated_at)
           VALUES ($1, $2, 'cost', 'cost', 'DRAFT', 1, 'bench', 'bench', now(), now())""",
        script_id,
        TENANT,
    )
    await connection.execute(
        """INSERT INTO script_versions (id, tenant_id, script_id, version, graph_json, variables_def,
                                        is_published, created_by_id, created_at, updated_at)
           VALUES ($1, $2, $3, 1, '{"nodes": [], "edges": []}', '[]', false, 'bench', now(), now())""",
        version_id,
        TENANT,
        script_id,
    )
    return script_id


async def _variant(
    connection: asyncpg.Connection, script_id: uuid.UUID, rows: int, drop: str | None
) -> tuple[float, float]:
    transaction = connection.transaction()
    await transaction.start()
    try:
        if drop is not None:
            await connection.execute(f'DROP INDEX "{drop}"')
        started = time.perf_counter()
        await connection.execute(START, TENANT, script_id, rows)
        inserted = time.perf_counter()
        await connection.execute(FINISH, TENANT)
        finished = time.perf_counter()
    finally:
        await transaction.rollback()
    # The rolled-back rows are dead tuples: clear them so that every variant starts alike.
    await connection.execute("VACUUM runs")
    return (inserted - started) / rows * 1e6, (finished - inserted) / rows * 1e6


async def main(args: argparse.Namespace) -> None:
    server = make_url(args.server_url)
    database = f"runs_index_cost_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(**asyncpg_connect_kwargs(str(server)))
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        url = str(server.set(database=database))
        await asyncio.to_thread(upgrade_database, Settings(database_url=url))
        connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
        try:
            script_id = await _fixture(connection)
            indexes = [
                r["indexname"]
                for r in await connection.fetch(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'runs' AND indexname <> 'pk_runs' "
                    "ORDER BY indexname"
                )
            ]
            await _variant(connection, script_id, args.rows, None)  # warm-up
            # All indexes and each variant take turns, so that drift moves both alike.
            full: list[tuple[float, float]] = []
            results: dict[str, tuple[float, float]] = {}
            for drop in indexes:
                samples = []
                for _ in range(args.repeat):
                    full.append(await _variant(connection, script_id, args.rows, None))
                    samples.append(await _variant(connection, script_id, args.rows, drop))
                results[drop] = (
                    statistics.median(s[0] for s in samples),
                    statistics.median(s[1] for s in samples),
                )
        finally:
            await connection.close()
    finally:
        await admin.execute(f'DROP DATABASE "{database}"')
        await admin.close()
    full_start = statistics.median(s[0] for s in full)
    full_finish = statistics.median(s[1] for s in full)
    print(f"{args.rows:,} API runs started, then finished; median of {args.repeat}; us per row")
    print(f"{'variant':<44} {'start':>7} {'finish':>7} {'index saves (start/finish)':>28}")
    print(f"{'all indexes':<44} {full_start:7.1f} {full_finish:7.1f}")
    for name in indexes:
        start, finish = results[name]
        saved = f"{full_start - start:+.1f} / {full_finish - finish:+.1f}"
        print(f"{'without ' + name:<44} {start:7.1f} {finish:7.1f} {saved:>28}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server-url", required=True, help="postgresql+asyncpg://… of a server to use")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
