"""Fair claims between tenants: ``python bench/fair_queue.py`` (from the project root).

Starts a fresh embedded PostgreSQL, one API process (``python -m app run``, its worker off) and
one worker process (``python -m app worker``), handler delay 0, and prints three measures:

(a) drain rate: 100,000 due commands of one tenant, written at once (one INSERT ... SELECT), from
    the commit of that insert to the last completion;
(b) the same 100,000 spread over 1,000 tenants (100 each);
(c) tenant B's command latency with tenant A's backlog of 100,000 due commands, divided by B's
    latency on an idle queue. B posts one command at a time through ``POST /commands`` and waits
    for it; its latency is the command's ``completed_at`` minus its ``created_at`` (both
    written on this machine's clock: by the API process, and by the database in the worker's
    completing transaction). Samples with the backlog are taken only while A still has more than
    half of it pending.
(d) the same with handlers that take time: a worker with the default fake delay (1-2 s per
    command), A's backlog of 3,000 commands filling every slot it has.

Between measures ``VACUUM ANALYZE commands`` clears the previous measure's rows from the indexes,
so each measure starts alike. ``--quick`` makes everything ten times smaller (for trying the
harness, not for figures). Everything is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.embedded import EmbeddedPostgres  # noqa: E402
from app.db.engine import upgrade_database  # noqa: E402
from app.lib.db import asyncpg_connect_kwargs  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

TOKEN = "bench-token"
TIMEOUT = 300.0  # seconds any one wait may take

# `per_tenant` due commands for each of `tenants` tenants named <prefix>-<n>, all due now.
_BACKLOG = """
INSERT INTO commands (id, created_at, updated_at, tenant_id, correlation_id, command, actor,
                      context, payload, status, attempts, available_at)
SELECT gen_random_uuid(), now(), now(), $1 || '-' || t, 'c-' || k, 'Bench.Drain.v1',
       '{"userId": "bench"}', '{}', '{"n": 1}', 'PENDING', 0, now() - interval '1 second'
FROM generate_series(1, $2) AS t, generate_series(1, $3) AS k
"""
_BUSY = """
SELECT EXISTS (SELECT FROM commands WHERE status = 'PENDING')
    OR EXISTS (SELECT FROM commands WHERE status = 'PROCESSING')
"""


async def wait_until(probe, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not await probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


async def drain(db: asyncpg.Pool, prefix: str, tenants: int, per_tenant: int) -> float:
    """Commands per second from the commit of the backlog to its last completion."""
    await db.execute("VACUUM ANALYZE commands")
    await db.execute(_BACKLOG, prefix, tenants, per_tenant)
    started = await db.fetchval("SELECT clock_timestamp()")
    await wait_until(lambda: _idle(db), f"the {prefix} backlog to drain")
    finished = await db.fetchval(
        "SELECT max(completed_at) FROM commands WHERE tenant_id LIKE $1 || '-%'", prefix
    )
    completed = await db.fetchval(
        "SELECT count(*) FROM commands WHERE tenant_id LIKE $1 || '-%' AND status = 'COMPLETED'", prefix
    )
    return completed / (finished - started).total_seconds()


async def _idle(db: asyncpg.Pool) -> bool:
    return not await db.fetchval(_BUSY)


async def latency_of_one(http: httpx.AsyncClient, db: asyncpg.Pool, tenant: str) -> float:
    """Post one command of `tenant` through the API, wait for it; its latency in seconds."""
    correlation_id = str(uuid.uuid4())
    body = {
        "command": "Bench.Quiet.v1",
        "actor": {"userId": "b"},
        "payload": {},
        "correlationId": correlation_id,
    }
    response = await http.post("/commands", json=body, headers={"x-tenant-id": tenant})
    response.raise_for_status()
    sql = (
        "SELECT extract(epoch FROM completed_at - created_at) FROM commands"
        " WHERE tenant_id = $1 AND correlation_id = $2 AND status = 'COMPLETED'"
    )
    deadline = time.monotonic() + TIMEOUT
    while (latency := await db.fetchval(sql, tenant, correlation_id)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting for B's command")
        await asyncio.sleep(0.002)
    return float(latency)


async def latencies(
    http: httpx.AsyncClient, db: asyncpg.Pool, *, samples: int, backlog_prefix: str | None, backlog: int
) -> tuple[list[float], int]:
    """B's latencies (idle queue, or while A's backlog is more than half pending) and the
    smallest number of A's commands pending when one of them completed."""
    tenant = f"quiet-{uuid.uuid4().hex[:8]}"
    values: list[float] = []
    least_pending = backlog
    while len(values) < samples:
        await asyncio.sleep(0.02)
        latency = await latency_of_one(http, db, tenant)
        if backlog_prefix is not None:
            pending = await db.fetchval(
                "SELECT count(*) FROM commands WHERE tenant_id = $1 AND status = 'PENDING'",
                f"{backlog_prefix}-1",
            )
            if pending <= backlog // 2:
                break
            least_pending = min(least_pending, pending)
        values.append(latency)
    return values, least_pending


def describe(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (
        f"median {statistics.median(ordered) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms ({len(ordered)} samples)"
    )


async def noisy_neighbour(
    api_url: str,
    db: asyncpg.Pool,
    label: str,
    condition: str,
    *,
    backlog_prefix: str,
    backlog: int,
    samples: int,
) -> None:
    """B's latency on an idle queue, then while A's ``backlog`` due commands wait; prints both
    and the ratio of their medians."""
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    ) as http:
        await db.execute("VACUUM ANALYZE commands")
        await latency_of_one(http, db, f"warm-up-{backlog_prefix}")
        idle, _ = await latencies(http, db, samples=samples, backlog_prefix=None, backlog=0)
        await db.execute(_BACKLOG, backlog_prefix, 1, backlog)
        loaded, least_pending = await latencies(
            http, db, samples=samples, backlog_prefix=backlog_prefix, backlog=backlog
        )
        await wait_until(lambda: _idle(db), f"the {backlog_prefix} backlog to drain")
    print(f"{label} {condition}B's latency, idle queue: {describe(idle)}")
    print(
        f"    B's latency, A's {backlog:,}-command backlog (A still had >= {least_pending:,} pending): "
        f"{describe(loaded)}"
    )
    ratio = statistics.median(loaded) / statistics.median(idle)
    print(f"    ratio of medians (backlog / idle): {ratio:.2f}", flush=True)


async def main(args: argparse.Namespace) -> None:
    scale = 10 if args.quick else 1
    count = 100_000 // scale
    spread = 1_000
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-fair-"))
    folder.chmod(0o755)  # the embedded server may run as another user
    processes: list[ServerProcess] = []
    try:
        server = await asyncio.to_thread(EmbeddedPostgres.ensure_started, folder / "pgdata")
        url = server.url()
        await asyncio.to_thread(upgrade_database, Settings(database_url=url))
        env = {
            "DATABASE_URL": url,
            "AUTH_TOKENS": f"{TOKEN}=bench:admin@*",
            "MIGRATE_ON_START": "false",
            "LOG_LEVEL": "WARNING",
            "WORKER_ENABLED": "false",
            "WORKER_FAKE_DELAY_MS": "0",
            "WORKER_BATCH_SIZE": str(args.batch),
            "RATE_LIMIT_PER_MINUTE": "1000000",
        }
        api = ServerProcess(env).start(timeout=120)
        processes.append(api)
        worker = ServerProcess(env, command=["worker"]).start(wait_for_health=False)
        processes.append(worker)
        db = await asyncpg.create_pool(min_size=1, max_size=2, **asyncpg_connect_kwargs(url))
        await wait_until(lambda: db.fetchval("SELECT count(*) > 0 FROM worker_heartbeats"), "the worker")
        print(f"fresh embedded PostgreSQL; 1 worker process, WORKER_BATCH_SIZE={args.batch}, handler delay 0")

        if "a" in args.only:
            one = await drain(db, "solo", 1, count)
            print(f"(a) drain, {count:,} commands of 1 tenant: {one:,.0f} commands/s", flush=True)
        if "b" in args.only:
            many = await drain(db, "crowd", spread, count // spread)
            shape = f"{count:,} commands over {spread:,} tenants ({count // spread} each)"
            print(f"(b) drain, {shape}: {many:,.0f} commands/s", flush=True)
        if "c" in args.only:
            await noisy_neighbour(
                api.url, db, "(c)", "", backlog_prefix="noisy", backlog=count, samples=args.samples
            )
        if "d" not in args.only:
            await db.close()
            return

        # (d): the default fake delay, so A's commands hold the worker's slots for 1-2 s each.
        worker.stop()
        processes.remove(worker)
        slow_env = {key: value for key, value in env.items() if key != "WORKER_FAKE_DELAY_MS"}
        processes.append(ServerProcess(slow_env, command=["worker"]).start(wait_for_health=False))
        await noisy_neighbour(
            api.url,
            db,
            "(d)",
            "handlers of 1-2 s: ",
            backlog_prefix="sluggish",
            backlog=3_000 // scale,
            samples=args.slow_samples,
        )
        await db.close()
    finally:
        for process in processes:
            process.stop()
        EmbeddedPostgres.stop_all()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="ten times smaller, to try the harness")
    parser.add_argument("--batch", type=int, default=100, help="WORKER_BATCH_SIZE of the worker (100)")
    parser.add_argument("--only", default="abcd", help="the measures to take, as letters (abcd: all)")
    parser.add_argument("--samples", type=int, default=30, help="latency samples per condition (30)")
    parser.add_argument(
        "--slow-samples", type=int, default=5, help="latency samples per condition of (d), 1-2 s each (5)"
    )
    asyncio.run(main(parser.parse_args()))
