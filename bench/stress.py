"""The long versions of the hardening checks, against real processes, with one results table.

    python bench/stress.py                      # everything, about 15 minutes on 2 cores
    python bench/stress.py --only fuzz,soak     # some phases
    python bench/stress.py --quick              # small sizes, to try the script itself

Starts its own embedded PostgreSQL in a temporary folder (or uses DATABASE_URL's server, in
databases of its own that it drops), real API and worker processes, and runs:

- fuzz:      schemathesis on every operation of openapi.yaml (>= 10,000 cases), then a pass with
             hostile header values; counts server errors and answers off the documented schema
- isolation: the tenant isolation matrix (tests/integration/platform/test_isolation_matrix.py)
- kills:     the worker SIGKILLed 20 times during 5,000 commands, SSE readers resuming with
             Last-Event-ID throughout
- restart:   PostgreSQL stopped and started under mixed load
- reader:    a client that stops reading its stream, next to one that reads
- pool:      the connection pool held by a request stuck on a row lock
- soak:      2 minutes of mixed traffic at a steady rate with SSE clients attached; latency,
             errors and the API process's memory

Each phase is bounded in time; the table says what each line means (see docs/hardening.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.engine import upgrade_database  # noqa: E402
from tests.conftest import process_env  # noqa: E402
from tests.support.database import scratch_database, test_server_url  # noqa: E402
from tests.support.faults import pool_exhaustion, postgres_restart, processes, slow_reader, worker_kills  # noqa: E402
from tests.support.fuzzing import run_schemathesis, seed  # noqa: E402
from tests.support.load import (  # noqa: E402
    MixedTraffic,
    Recorder,
    ResumingReader,
    RssSampler,
    headers,
    paced,
    percentile,
)
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.waiting import eventually  # noqa: E402

PHASES = ("fuzz", "isolation", "kills", "restart", "reader", "pool", "soak")


class Bench:
    def __init__(self, args: argparse.Namespace, server_url: str, work: Path) -> None:
        self.args = args
        self.server_url = server_url
        self.work = work
        self.results: dict[str, dict[str, Any]] = {}

    @contextmanager
    def database(self) -> Iterator[str]:
        """A freshly migrated database of its own for one phase."""
        with scratch_database(self.server_url, prefix="scriptworks_stress") as url:
            upgrade_database(Settings(database_url=url))
            yield url

    # ---- phases ---------------------------------------------------------------------------------

    def fuzz(self) -> dict[str, Any]:
        with self.database() as url, processes() as running:
            api = ServerProcess(process_env(url, WORKER_ENABLED="true")).start()
            running.append(api)
            tenant = f"fuzz-{uuid.uuid4().hex[:8]}"
            ids = seed(api.url, tenant)
            runs = [
                run_schemathesis(
                    api.url,
                    tenant,
                    self.work / "fuzz",
                    max_examples=self.args.fuzz_examples,
                    ids=ids,
                    timeout=3600,
                ),
                run_schemathesis(
                    api.url,
                    tenant,
                    self.work / "fuzz",
                    max_examples=max(5, self.args.fuzz_examples // 3),
                    phases="fuzzing",
                    hostile_headers=True,
                    ids=ids,
                    timeout=3600,
                ),
            ]
            log = api.log()
        failures = [f for r in runs for f in r.failures]
        for run in runs:
            if not run.ok:
                print(run.output[-6000:], file=sys.stderr)
        return {
            "cases": sum(r.cases for r in runs),
            "hostile_header_cases": runs[1].cases,
            "server_errors": sum(r.server_errors for r in runs),
            "other_failures": sum(f.get("count", 0) for f in failures if f.get("type") != "ServerError"),
            "failure_kinds": sorted({f.get("title", "?") for f in failures}),
            "errors": sum(len(r.errors) for r in runs),
            "unhandled_in_log": log.count("unhandled error"),
        }

    def isolation(self) -> dict[str, Any]:
        env = {**os.environ, "DATABASE_URL": self.server_url}
        finished = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/integration/platform/test_isolation_matrix.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        tail = finished.stdout.strip().splitlines()[-1] if finished.stdout.strip() else finished.stderr[-500:]
        passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", tail)) else 0
        failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", tail)) else 0
        if failed or finished.returncode:
            print(finished.stdout[-6000:], file=sys.stderr)
        return {"checks": passed + failed, "leaks": failed, "exit_code": finished.returncode}

    def kills(self) -> dict[str, Any]:
        with self.database() as url:
            report = asyncio.run(
                worker_kills(url, commands=self.args.commands, kills=self.args.kills, readers=3, rate=100)
            )
        return report.__dict__

    def restart(self) -> dict[str, Any]:
        folder = self.work / "restart"
        folder.mkdir(mode=0o755)
        duration, outage = (30.0, 5.0) if not self.args.quick else (10.0, 2.0)
        report = asyncio.run(postgres_restart(folder, duration=duration, rate=60, outage_seconds=outage))
        return report.__dict__

    def reader(self) -> dict[str, Any]:
        with self.database() as url, processes() as running:
            api = ServerProcess(process_env(url, WORKER_ENABLED="false", SSE_PING_SECONDS="1")).start()
            running.append(api)
            report = asyncio.run(slow_reader(api.url, url, batches=40))
        return report.__dict__

    def pool(self) -> dict[str, Any]:
        with self.database() as url:
            report = asyncio.run(pool_exhaustion(url, excess=50, pool_timeout=0.5))
        return report.__dict__

    def soak(self) -> dict[str, Any]:
        with self.database() as url, processes() as running:
            env = process_env(url, WORKER_ENABLED="true", WORKER_FAKE_DELAY_MS="0-100", SSE_PING_SECONDS="5")
            api = ServerProcess(env).start()
            running.append(api)
            assert api.process is not None
            return asyncio.run(
                _soak(
                    api, self.args.soak_seconds, self.args.soak_rate, self.args.sse_clients, self.args.quick
                )
            )

    # ---- the table --------------------------------------------------------------------------------

    def table(self) -> list[tuple[str, str, str]]:
        r = self.results
        rows: list[tuple[str, str, str]] = []

        def add(phase: str, label: str, goal: str, value: Callable[[dict[str, Any]], str]) -> None:
            if phase in r:
                rows.append((label, value(r[phase]), goal))

        add(
            "fuzz",
            "Cases fuzzed (all operations; valid and hostile headers)",
            ">= 10,000",
            lambda f: f"{f['cases']:,} ({f['hostile_header_cases']:,} with hostile headers)",
        )
        add("fuzz", "5xx found", "0", lambda f: str(f["server_errors"] + f["unhandled_in_log"]))
        add(
            "fuzz",
            "Answers off the documented schema / status / type",
            "0",
            lambda f: str(f["other_failures"]),
        )
        add(
            "isolation",
            "Tenant leaks (isolation matrix checks)",
            "0",
            lambda i: f"{i['leaks']} of {i['checks']}",
        )
        add(
            "kills",
            "Worker SIGKILLs survived (of them mid-batch)",
            "all",
            lambda k: f"{k['kills']} ({k.get('kills_mid_batch', '?')}) during {k['commands']:,} commands",
        )
        add(
            "kills",
            "Commands lost / duplicate completion events",
            "0 / 0",
            lambda k: f"{k['lost']} / {k['duplicate_events']}",
        )
        add(
            "kills",
            "Events skipped by resuming SSE readers (dupes)",
            "0 (0)",
            lambda k: (
                f"{k['events_skipped']} ({k['reader_duplicates']}) over {k['reader_connections']} connections"
            ),
        )
        add(
            "restart",
            "PostgreSQL restart: 503s / other errors / writes lost",
            "- / 0 / 0",
            lambda p: f"{p['unavailable']} / {p['failed']} / {p['lost']} of {p['acknowledged_writes']}",
        )
        add(
            "restart",
            "PostgreSQL restart: slowest 503, recovery after restart",
            "fast",
            lambda p: (
                f"{p['slowest_503']:.2f} s, {p['recovery_seconds']:.2f} s "
                f"(outage {p['outage_seconds']:.1f} s)"
            ),
        )
        add(
            "reader",
            "Stuck SSE reader dropped; reading client's worst lag",
            "yes; low",
            lambda s: (
                f"{'yes' if s['dropped'] else 'NO'} after {s['seconds_to_drop']:.1f} s; "
                f"{s['healthy_worst_lag'] * 1000:.0f} ms over {s['events']:,} events"
            ),
        )
        add(
            "pool",
            "Pool exhausted: 503s, slowest 503, all answered in",
            "all; ~0.5 s",
            lambda p: (
                f"{p['unavailable']}/{p['excess_requests']}, {p['slowest_503']:.2f} s, "
                f"{p['all_answered_in']:.2f} s"
            ),
        )
        add(
            "soak",
            "Soak: requests at a steady rate, errors",
            "0 errors",
            lambda s: f"{s['requests']:,} in {s['seconds']:.0f} s ({s['rate']:.0f}/s), {s['errors']} errors",
        )
        add("soak", "Soak: latency p50 / p99", "-", lambda s: f"{s['p50_ms']:.1f} ms / {s['p99_ms']:.1f} ms")
        add(
            "soak",
            "Soak: SSE clients, events skipped",
            "0",
            lambda s: f"{s['sse_clients']} clients, {s['events_skipped']} skipped",
        )
        add(
            "soak",
            "Soak: API RSS after warm-up -> end (growth)",
            "flat",
            lambda s: (
                f"{s['rss_warm_mib']:.0f} -> {s['rss_end_mib']:.0f} MiB ({s['rss_growth_mib']:+.1f} MiB)"
            ),
        )
        return rows  # fmt: skip


async def _soak(api: ServerProcess, seconds: float, rate: float, clients: int, quick: bool) -> dict[str, Any]:
    assert api.process is not None
    tenant = f"soak-{uuid.uuid4().hex[:8]}"
    warm_up = min(30.0, seconds / 4)
    sampler = RssSampler(api.process.pid, every=2.0)
    stop = asyncio.Event()
    readers = [ResumingReader(api.url, tenant, resume_every=(200, 2000)) for _ in range(clients)]
    background = [asyncio.create_task(sampler.run(stop))] + [
        asyncio.create_task(r.run(stop)) for r in readers
    ]
    recorder = Recorder()
    async with httpx.AsyncClient(
        base_url=api.url, headers=headers(tenant), timeout=30, limits=httpx.Limits(max_connections=100)
    ) as client:
        traffic = MixedTraffic(client, recorder)
        await traffic.setup()
        started = time.monotonic()
        sent = await paced(rate, None, seconds, traffic.step)
        elapsed = time.monotonic() - started
        expected = set(traffic.commands)

        async def all_delivered() -> bool:
            return all(not r.missing(expected) for r in readers)

        with contextlib.suppress(AssertionError):  # what is still missing after a minute is reported
            await eventually(all_delivered, bool, timeout=60, every=0.2)
    stop.set()
    for task in background[1:]:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    measured = [o for o in recorder.outcomes if o.at - started >= 0]
    errors = [o for o in measured if o.status == 0 or o.status >= 400]
    latencies = [o.seconds for o in measured]
    warm = sampler.at(warm_up)
    end = sampler.samples[-1][1]
    return {
        "requests": sent,
        "seconds": elapsed,
        "rate": sent / elapsed,
        "errors": len(errors),
        "error_kinds": sorted({f"{o.kind} {o.status}" for o in errors}),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "p99_ms_by_kind": {
            kind: round(percentile([o.seconds for o in measured if o.kind == kind], 0.99) * 1000, 1)
            for kind in sorted({o.kind for o in measured})
        },
        "sse_clients": clients,
        "commands": len(expected),
        "events_skipped": sum(len(r.missing(expected)) for r in readers),
        "rss_warm_mib": warm,
        "rss_end_mib": end,
        "rss_growth_mib": end - warm,
        "rss_samples": [
            (round(t), round(m, 1)) for t, m in sampler.samples[:: max(1, len(sampler.samples) // 20)]
        ],
    }


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in [*rows, ("Check", "Result", "Goal")]) for i in range(3)]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(line)
    print(
        "| " + " | ".join(h.ljust(w) for h, w in zip(("Check", "Result", "Goal"), widths, strict=True)) + " |"
    )
    print(line)
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(line)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated phases of {', '.join(PHASES)}"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the script")
    parser.add_argument(
        "--fuzz-examples", type=int, default=None, help="schemathesis max examples per operation"
    )
    parser.add_argument("--commands", type=int, default=None)
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--soak-seconds", type=float, default=None)
    parser.add_argument("--soak-rate", type=float, default=60.0)
    parser.add_argument("--sse-clients", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    sizes = {"fuzz_examples": (500, 10), "commands": (5000, 300), "kills": (20, 2), "soak_seconds": (120, 15)}
    for name, (full, quick) in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")

    work = Path(tempfile.mkdtemp(prefix="scriptworks-stress-"))
    work.chmod(0o755)  # the embedded server may run as another user
    started = time.monotonic()
    try:
        with test_server_url() as (server_url, _embedded):
            bench = Bench(args, server_url, work)
            for phase in phases:
                print(f"== {phase} ...", file=sys.stderr, flush=True)
                phase_started = time.monotonic()
                bench.results[phase] = getattr(bench, phase)()
                bench.results[phase]["phase_seconds"] = round(time.monotonic() - phase_started, 1)
                print(
                    f"   {phase}: {json.dumps(bench.results[phase], default=str)}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"Scriptworks stress run: {os.cpu_count()} cores, {time.monotonic() - started:.0f} s in all")
    print_table(bench.table())
    if args.json:
        args.json.write_text(json.dumps(bench.results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
