"""The benchmark suite: ``python bench/run.py`` (from the project root, test extra installed).

Starts a fresh embedded PostgreSQL, the app as a user runs it (``scriptworks run``: one process,
its worker on, default logging) and each measure's baseline as real processes, drives HTTP load
with ``wrk`` (a C load generator; installed with ``apt-get install -y wrk`` when missing), and
prints one table: measure, goal, result, the baseline measured in the same run, and the ratio.
App and baseline runs alternate; each throughput figure is the median of ``--repeat`` runs (3).
Every HTTP row also gives p50/p99 latency and the CPU per request of the app, of PostgreSQL
(this bench's server and its backends) and of wrk.

``--quick`` shortens every measure (for trying the harness, not for figures);
``--only name,name`` runs a subset: http (POST /runs, POST /commands, POST /scripts,
GET /scripts/{id}), drain, latency, fanout, seed (the 1M-run seed and the list measure on it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import resource
import shutil
import statistics
import subprocess
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
from bench.wrk import ensure_wrk  # noqa: E402
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


def describe_machine(postgres_version: str) -> str:
    """nproc, CPU model, RAM, and the versions that matter, as one block."""
    from importlib.metadata import version

    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    packages = ", ".join(
        f"{name} {version(name)}" for name in ("litestar", "uvicorn", "uvloop", "asyncpg", "msgspec")
    )
    wrk = subprocess.run([ensure_wrk(), "--version"], capture_output=True, text=True)
    wrk_version = (wrk.stdout or wrk.stderr).split("Copyright")[0].strip()
    return (
        f"machine: nproc {os.cpu_count()}, {model}, {memory:.1f} GiB RAM, load average {load}\n"
        f"software: Python {platform.python_version()}, PostgreSQL {postgres_version} (embedded), "
        f"{packages}, {wrk_version}"
    )


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-bench-"))
    folder.chmod(0o755)
    ensure_wrk()
    server = await asyncio.to_thread(EmbeddedPostgres.ensure_started, folder / "pgdata")
    url = server.url()
    await asyncio.to_thread(upgrade_database, Settings(database_url=url))
    postgres_version = await scenarios.server_version(url)
    print(describe_machine(postgres_version), flush=True)
    quick = "--quick, " if args.quick else ""
    print(f"run: {quick}repeat {args.repeat}, data: a fresh embedded PostgreSQL", flush=True)
    # The app as a user runs it: the defaults, but for the database, a token, and handler
    # delay 0 (the worker's fake work would otherwise be sleep, not CPU).
    env = {
        "DATABASE_URL": url,
        "AUTH_TOKENS": f"{TOKEN}=bench:admin@*",
        "MIGRATE_ON_START": "false",
        "WORKER_FAKE_DELAY_MS": "0",
        # Throughput is measured here, not the per-tenant limits: one tenant sends it all. The
        # limits are still counted on every request.
        "RATE_LIMIT_PER_MINUTE": "1000000000",
        "RATE_LIMIT_WRITES_PER_MINUTE": "1000000000",
        "RATE_LIMIT_COMMANDS_PER_MINUTE": "1000000000",
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
    arguments = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # the clients then run on the default loop
        asyncio.run(main(arguments))
    else:
        uvloop.run(main(arguments))
