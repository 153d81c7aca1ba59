"""The benchmark suite: ``python bench/run.py`` (from the project root, test extra installed).

Starts a fresh embedded PostgreSQL, the app and the bare baseline app (``bench/bare_app.py``)
as real processes, drives each measure with the loopback load generator (``bench/loadgen.py``),
bounded in time, and prints one table: measure, goal, result, the baseline measured in the same
run, and the ratio. Each throughput figure is the median of ``--repeat`` runs (3).

``--quick`` shortens every measure (for trying the harness, not for figures);
``--only name,name`` runs a subset: http (POST /runs, POST /scripts, GET /scripts/{id}), drain,
latency, fanout, seed (the 1M-run seed and the list measure on it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db.embedded import EmbeddedPostgres  # noqa: E402
from app.db.engine import upgrade_database  # noqa: E402
from bench import scenarios  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

TENANT = "bench"
TOKEN = "bench-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "x-tenant-id": TENANT}


@dataclass
class Row:
    measure: str
    goal: str
    result: str
    baseline: str = ""
    ratio: str = ""
    ok: bool | None = None
    notes: list[str] = field(default_factory=list)


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def print_table(rows: list[Row]) -> None:
    headers = ("measure", "goal", "result", "baseline", "ratio", "met")
    table = [
        (r.measure, r.goal, r.result, r.baseline, r.ratio, "" if r.ok is None else ("yes" if r.ok else "NO"))
        for r in rows
    ]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print()
    print(line)
    print("-|-".join("-" * w for w in widths))
    for t in table:
        print(" | ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))
    for r in rows:
        for note in r.notes:
            print(f"  {r.measure}: {note}")


def median(values: list[float]) -> float:
    return statistics.median(values)


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-bench-"))
    folder.chmod(0o755)
    print(f"cores: {os.cpu_count()}; data: fresh embedded PostgreSQL; repeat: {args.repeat}", flush=True)
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
        # Throughput is measured here, not the per-tenant limits: one tenant sends it all.
        "RATE_LIMIT_PER_MINUTE": "100000000",
        "RATE_LIMIT_WRITES_PER_MINUTE": "100000000",
    }
    only = set(args.only.split(",")) if args.only else None
    rows: list[Row] = []
    processes: list[ServerProcess] = []
    context = scenarios.Context(
        url=url,
        env=env,
        headers=HEADERS,
        tenant=TENANT,
        quick=args.quick,
        repeat=args.repeat,
        workers=args.workers,
        processes=processes,
        server=server,
    )
    try:
        for name, scenario in scenarios.ALL:
            if only and name not in only:
                continue
            print(f"== {name}", flush=True)
            started = time.monotonic()
            rows.extend(await scenario(context))
            print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        for process in processes:
            process.stop()
        EmbeddedPostgres.stop_all()
        shutil.rmtree(folder, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs, to try the harness")
    parser.add_argument("--only", default="", help="comma-separated measures to run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per throughput measure (median)")
    parser.add_argument("--workers", type=int, default=2, help="HTTP worker processes of each app")
    asyncio.run(main(parser.parse_args()))
