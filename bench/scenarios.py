"""The measures of ``bench/run.py``, one coroutine each, every one next to its baseline."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from bench.loadgen import LoadResult, encode_request, run_load
from tests.support.server import ServerProcess, free_port

__all__ = ["ALL", "Context"]

_UNIQUE = itertools.count()


@dataclass
class Context:
    url: str
    env: dict[str, str]
    headers: dict[str, str]
    tenant: str
    quick: bool
    repeat: int
    workers: int
    processes: list[ServerProcess]
    server: Any
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return 3.0 if self.quick else 10.0

    def start_app(self, processes: int | None = None, **env: str) -> ServerProcess:
        port = free_port()
        workers = str(processes or self.workers)
        command = ["run", "--host", "127.0.0.1", "--port", str(port), "--wc", workers]
        return self._start(ServerProcess({**self.env, **env}, command=command, port=port))

    def start_bare(
        self, factory: str = "bench.bare_app:create_app", workers: int | None = None
    ) -> ServerProcess:
        port = free_port()
        command = [
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers or self.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        return self._start(ServerProcess(self.env, module="uvicorn", command=command, port=port))

    def _start(self, process: ServerProcess) -> ServerProcess:
        process.start(timeout=120)
        self.processes.append(process)
        return process

    def stop(self, process: ServerProcess) -> None:
        process.stop()
        self.processes.remove(process)


def _json(value: Any) -> bytes:
    return msgspec.json.encode(value)


async def _fixture_script(ctx: Context, app: ServerProcess) -> str:
    """A published script with version 1 in the bench tenant (created once)."""
    if "script_id" not in ctx.cache:
        async with httpx.AsyncClient(base_url=app.url, headers=ctx.headers, timeout=30) as client:
            script = (await client.post("/scripts", json={"name": "Bench", "slug": "bench-fixture"})).json()
            graph = {"nodes": [{"id": "a", "type": "say"}, {"id": "b", "type": "wait"}], "edges": []}
            await client.post(f"/scripts/{script['id']}/versions", json={"graphJson": graph})
            await client.post(f"/scripts/{script['id']}/versions/1/publish")
        ctx.cache["script_id"] = script["id"]
    return ctx.cache["script_id"]


def _cpu_seconds(pids: list[int], *, children: bool = True) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            members = [process, *process.children(recursive=True)] if children else [process]
            for member in members:
                times = member.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def _cpu_sample(ctx: Context, server: ServerProcess | None) -> tuple[float, float, float]:
    """CPU seconds so far of the server under test, of PostgreSQL, and of this load generator."""
    import os

    server_pids = [server.process.pid] if server and server.process else []
    return (
        _cpu_seconds(server_pids),
        _cpu_seconds([ctx.server.postmaster_pid]),
        _cpu_seconds([os.getpid()], children=False),
    )


async def _throughput(
    ctx: Context,
    port: int,
    make: Callable[[int], bytes],
    *,
    connections: int = 32,
    server: ServerProcess | None = None,
) -> tuple[float, LoadResult, str]:
    """The rate of one run, and where the CPU went during it."""
    import time

    before = _cpu_sample(ctx, server)
    started = time.perf_counter()
    result = await run_load(port, make, seconds=ctx.seconds, connections=connections, warmup=0.5)
    wall = time.perf_counter() - started
    after = _cpu_sample(ctx, server)
    if result.errors:
        raise RuntimeError(f"{result.errors} unexpected answers: {result.statuses}")
    app_cpu, pg_cpu, load_cpu = (b - a for a, b in zip(before, after, strict=True))
    split = (
        f"CPU of 2 cores: app {app_cpu / wall:.0%}, PostgreSQL {pg_cpu / wall:.0%}, "
        f"load generator {load_cpu / wall:.0%}; "
        f"app {app_cpu / max(result.requests, 1) * 1e6:.0f} us/request"
    )
    return result.rate, result, split


def _row(measure: str, goal: str, result: float, baseline: float, ok: bool, unit: str = "req/s"):
    from bench.run import Row

    return Row(
        measure=measure,
        goal=goal,
        result=f"{result:,.0f} {unit}",
        baseline=f"{baseline:,.0f} {unit}",
        ratio=f"{result / baseline:.0%}" if baseline else "",
        ok=ok,
    )


async def http_writes_and_reads(ctx: Context) -> list[Any]:
    """POST /runs, POST /scripts and GET /scripts/{id}, each against the bare app's same statement."""
    app = ctx.start_app()
    bare = ctx.start_bare()
    rows = []

    async def compare(
        measure: str, goal: str, make_real: Any, make_bare: Any, ok: Callable[[float, float], bool]
    ):
        # Real and bare take turns, so a machine that speeds up or slows down meanwhile (shared
        # cores do) moves both sides alike; each side's figure is the median of its runs.
        reals: list[float] = []
        bases: list[float] = []
        for _ in range(ctx.repeat):
            rate, _, real_split = await _throughput(ctx, app.port, make_real, server=app)
            reals.append(rate)
            rate, _, base_split = await _throughput(ctx, bare.port, make_bare, server=bare)
            bases.append(rate)
        real, base = statistics.median(reals), statistics.median(bases)
        row = _row(measure, goal, real, base, ok(real, base))
        row.notes += [f"app: {real_split}", f"bare: {base_split}"]
        rows.append(row)

    try:
        script_id = await _fixture_script(ctx, app)
        auth = {**ctx.headers, "Content-Type": "application/json"}
        run_request = encode_request(
            "POST", "/runs", headers=auth, body=_json({"scriptId": script_id, "version": 1})
        )
        await compare(
            "POST /runs",
            ">= 2,200 req/s and >= 35% of bare",
            lambda _n: run_request,
            lambda _n: run_request,
            lambda real, base: real >= 2200 and real >= 0.35 * base,
        )

        def script_request(prefix: str) -> Callable[[int], bytes]:
            def make(_n: int) -> bytes:
                n = next(_UNIQUE)  # unique across repeats: a slug is taken once per tenant
                body = _json({"name": f"Script {n}", "slug": f"{prefix}-{n}"})
                return encode_request("POST", "/scripts", headers=auth, body=body)

            return make

        await compare(
            "POST /scripts (script+audit+event)",
            ">= 40% of bare insert",
            script_request("real"),
            script_request("bare"),
            lambda real, base: real >= 0.4 * base,
        )
        get_request = encode_request("GET", f"/scripts/{script_id}", headers=ctx.headers)
        await compare(
            "GET /scripts/{id}",
            ">= 50% of bare select",
            lambda _n: get_request,
            lambda _n: get_request,
            lambda real, base: real >= 0.5 * base,
        )
    finally:
        ctx.stop(app)
        ctx.stop(bare)
    return rows


# ---- outbox drain ------------------------------------------------------------------------------


async def _copy_commands(url: str, tenant: str, count: int, prefix: str) -> None:
    import datetime
    import uuid

    import asyncpg

    from app.lib.db import asyncpg_connect_kwargs

    now = datetime.datetime.now(datetime.UTC)
    rows = [
        (
            uuid.uuid4(),
            tenant,
            f"{prefix}-{n}",
            "Bench.Drain.v1",
            '{"userId": "bench"}',
            "{}",
            f'{{"n": {n}}}',
            "PENDING",
            0,
            now,
            now,
            now,
        )
        for n in range(count)
    ]
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        await connection.copy_records_to_table(
            "commands",
            records=rows,
            columns=[
                "id",
                "tenant_id",
                "correlation_id",
                "command",
                "actor",
                "context",
                "payload",
                "status",
                "attempts",
                "available_at",
                "created_at",
                "updated_at",
            ],
        )
    finally:
        await connection.close()


async def _count(url: str, sql: str, *args: Any) -> int:
    import asyncpg

    from app.lib.db import asyncpg_connect_kwargs

    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()


async def outbox_drain(ctx: Context) -> list[Any]:
    """One standalone worker, fake delay 0, drains N pending commands written at once."""
    import asyncio
    import time

    from bench.run import Row

    count = 10_000 if ctx.quick else 100_000
    rates = []
    for attempt in range(ctx.repeat):
        worker = ServerProcess({**ctx.env, "WORKER_BATCH_SIZE": "500"}, command=["worker"])
        worker.start(wait_for_health=False)
        ctx.processes.append(worker)
        try:
            while not await _count(ctx.url, "SELECT count(*) FROM worker_heartbeats"):
                await asyncio.sleep(0.05)
            prefix = f"drain{attempt}"
            await _copy_commands(ctx.url, ctx.tenant, count, prefix)
            started = time.perf_counter()
            done_sql = "SELECT count(*) FROM commands WHERE status = 'COMPLETED' AND correlation_id LIKE $1"
            while await _count(ctx.url, done_sql, f"{prefix}-%") < count:
                await asyncio.sleep(0.05)
            rates.append(count / (time.perf_counter() - started))
        finally:
            ctx.stop(worker)
    rate = statistics.median(rates)
    return [
        Row(
            measure=f"outbox drain, 1 worker, {count:,} commands",
            goal=">= 5,000 commands/s",
            result=f"{rate:,.0f} commands/s",
            ok=rate >= 5000,
        )
    ]


# ---- command -> SSE latency ------------------------------------------------------------------


async def command_latency(ctx: Context) -> list[Any]:
    """POST /commands at a steady 500/s; time until each completion reaches an SSE client.

    One API process with its in-process worker (as ``scriptworks run`` starts by default): the
    whole path, request to worker to stream, on one event loop. The first second warms up
    (connections, caches) and is not counted.
    """
    import asyncio
    import json
    import time

    from bench.loadgen import _read_response
    from bench.run import Row
    from bench.sse_client import SseReader

    app = ctx.start_app(processes=1, WORKER_ENABLED="true", SSE_PING_SECONDS="60")
    rate, seconds = 500, (3 if ctx.quick else 10)
    warmup = rate  # the first second
    sent: dict[str, float] = {}
    latencies: list[float] = []

    def on_data(data: str, at: float) -> None:
        correlation = json.loads(data).get("correlationId")
        if correlation in sent:
            started = sent.pop(correlation)
            if int(correlation.rsplit("-", 1)[1]) >= warmup:
                latencies.append(at - started)

    token = ctx.headers["Authorization"].split()[1]
    reader = SseReader(app.port, {"tenantId": ctx.tenant, "access_token": token}, on_data)
    reading = asyncio.create_task(reader.run())
    try:
        await asyncio.wait_for(reader.connected.wait(), 10)
        total = rate * (seconds + 1)
        auth = {**ctx.headers, "Content-Type": "application/json"}
        connections = [await asyncio.open_connection("127.0.0.1", app.port) for _ in range(16)]
        start = time.perf_counter()

        async def sender(index: int) -> None:
            reader_, writer = connections[index]
            for n in range(index, total, len(connections)):
                due = start + n / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                correlation = f"lat-{n}"
                body = _json(
                    {"command": "Bench.Ping.v1", "actor": {"userId": "b"}, "correlationId": correlation}
                )
                sent[correlation] = time.perf_counter()
                writer.write(encode_request("POST", "/commands", headers=auth, body=body))
                await _read_response(reader_)

        await asyncio.gather(*(sender(i) for i in range(len(connections))))
        deadline = time.perf_counter() + 10
        while sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        for _, writer in connections:
            writer.close()
    finally:
        reader.close()
        reading.cancel()
        ctx.stop(app)
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    lost = len(sent)
    return [
        Row(
            measure="command -> SSE event at 500/s, delay 0",
            goal="p50 <= 10 ms, p99 <= 50 ms",
            result=f"p50 {p50:.1f} ms, p99 {p99:.1f} ms ({len(ordered):,} events, {lost} missing)",
            ok=p50 <= 10 and p99 <= 50 and lost == 0,
            notes=["one API process with its in-process worker; the first second is warm-up"],
        )
    ]


# ---- fan-out to 5,000 streams ------------------------------------------------------------------


async def _fanout_once(
    port: int, params: dict[str, str], clients: int, publish: Callable[[], Awaitable[float]], pid: int
) -> tuple[list[float], float]:
    """Open ``clients`` streams, publish once; returns receive delays (s) and KiB per connection."""
    import asyncio

    import psutil

    from bench.sse_client import SseReader

    received: list[float] = []
    readers = [SseReader(port, params, lambda _d, at: received.append(at)) for _ in range(clients)]
    process = psutil.Process(pid)
    before = process.memory_info().rss
    tasks = []
    for start in range(0, clients, 250):
        batch = readers[start : start + 250]
        tasks += [asyncio.create_task(r.run()) for r in batch]
        await asyncio.gather(*(asyncio.wait_for(r.connected.wait(), 30) for r in batch))
    await asyncio.sleep(1)  # let the server settle every stream before measuring memory
    per_connection = (process.memory_info().rss - before) / clients / 1024
    published_at = await publish()
    deadline = asyncio.get_running_loop().time() + 30
    while len(received) < clients and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    for reader in readers:
        reader.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return [at - published_at for at in received], per_connection


async def sse_fanout(ctx: Context) -> list[Any]:
    """One event to 5,000 streams on one API process, against a bare sse-starlette fan-out."""
    import time

    import asyncpg

    from app.lib.db import asyncpg_connect_kwargs
    from bench.run import Row

    clients = 500 if ctx.quick else 5000
    token = ctx.headers["Authorization"].split()[1]
    saved_workers, ctx.workers = ctx.workers, 1
    try:
        app = ctx.start_app(SSE_PING_SECONDS="600")
        assert app.process is not None

        async def publish_real() -> float:
            connection = await asyncpg.connect(**asyncpg_connect_kwargs(ctx.url))
            try:
                async with connection.transaction():
                    await connection.execute(
                        "INSERT INTO events (tenant_id, event, payload) VALUES ($1, 'Bench.Fanout.v1', '{}')",
                        ctx.tenant,
                    )
                return time.perf_counter()
            finally:
                await connection.close()

        try:
            delays, memory = await _fanout_once(
                app.port,
                {"tenantId": ctx.tenant, "access_token": token},
                clients,
                publish_real,
                app.process.pid,
            )
        finally:
            ctx.stop(app)

        bare = ctx.start_bare("bench.bare_sse:create_app", workers=1)
        assert bare.process is not None

        async def publish_bare() -> float:
            async with httpx.AsyncClient() as client:
                started = time.perf_counter()
                await client.post(f"{bare.url}/publish")
                return started

        try:
            bare_delays, bare_memory = await _fanout_once(
                bare.port, {}, clients, publish_bare, bare.process.pid
            )
        finally:
            ctx.stop(bare)
    finally:
        ctx.workers = saved_workers

    def p99(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else float("inf")

    real_p99, bare_p99 = p99(delays), p99(bare_delays)
    return [
        Row(
            measure=f"one event to {clients:,} SSE clients",
            goal="p99 <= 1.5x bare fan-out",
            result=f"p99 {real_p99:.0f} ms ({len(delays):,} got it)",
            baseline=f"p99 {bare_p99:.0f} ms",
            ratio=f"{real_p99 / bare_p99:.2f}x" if bare_p99 else "",
            ok=real_p99 <= 1.5 * bare_p99 and len(delays) == clients,
        ),
        Row(
            measure="memory per SSE connection",
            goal="<= 40 KiB",
            result=f"{memory:.1f} KiB",
            baseline=f"{bare_memory:.1f} KiB",
            ratio=f"{memory / bare_memory:.2f}x" if bare_memory > 0 else "",
            ok=memory <= 40,
        ),
    ]


ALL = [
    ("http", http_writes_and_reads),
    ("drain", outbox_drain),
    ("latency", command_latency),
    ("fanout", sse_fanout),
]


# ---- seeding a million runs --------------------------------------------------------------------


async def seed_and_list(ctx: Context) -> list[Any]:
    """`scriptworks seed runs` against a raw generate-and-COPY of the same rows; then GET /runs
    on the seeded million, first page against page 10,000."""
    import asyncio
    import datetime
    import os
    import sys
    import time

    import asyncpg

    from app.cli.seed import RUN_COLUMNS, SeedPlan, clean, prepare, run_rows
    from app.lib.db import asyncpg_connect_kwargs
    from app.lib.pagination import encode_cursor
    from bench.run import Row

    count = 100_000 if ctx.quick else 1_000_000
    tenant = "seeded"
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(ctx.url))
    try:
        # The baseline: the same rows, generated and copied with nothing else around them.
        plan = SeedPlan(tenant, count, 0.5, 100, 50_000, datetime.datetime.now(datetime.UTC))
        prepared = await prepare(connection, plan)
        started = time.perf_counter()
        await connection.copy_records_to_table("runs", records=run_rows(plan, prepared), columns=RUN_COLUMNS)
        raw_seconds = time.perf_counter() - started
        await clean(connection, tenant)
        await connection.execute("VACUUM ANALYZE runs")

        started = time.perf_counter()
        seeding = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            "seed",
            "runs",
            "--count",
            str(count),
            "--tenant",
            tenant,
            env={**os.environ, **ctx.env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert await seeding.wait() == 0
        seed_seconds = time.perf_counter() - started
        counts = {
            r["trigger_type"]: r["n"]
            for r in await connection.fetch(
                "SELECT trigger_type, count(*) AS n FROM runs WHERE tenant_id = $1 GROUP BY 1", tenant
            )
        }
        # The cursor of page 10,000 (limit 50) of the successful runs, newest first.
        deep = await connection.fetchrow(
            """SELECT started_at, id FROM runs WHERE tenant_id = $1 AND status = 'SUCCEEDED'
               ORDER BY started_at DESC, id DESC OFFSET $2 LIMIT 1""",
            tenant,
            50 * 9_999 - 1 if not ctx.quick else 50 * 999 - 1,
        )
    finally:
        await connection.close()
    rows = [
        Row(
            measure=f"seed runs --count {count:,}",
            goal="<= 1.25x raw generate + COPY",
            result=f"{seed_seconds:.1f} s ({count / seed_seconds:,.0f} runs/s)",
            baseline=f"{raw_seconds:.1f} s",
            ratio=f"{seed_seconds / raw_seconds:.2f}x",
            ok=seed_seconds <= 1.25 * raw_seconds,
            notes=[f"verified: {counts}"],
        )
    ]

    app = ctx.start_app()
    try:
        headers = {**ctx.headers, "x-tenant-id": tenant}
        first = encode_request("GET", "/runs?status=SUCCEEDED&limit=50", headers=headers)
        cursor = encode_cursor((deep["started_at"], deep["id"]))
        deep_request = encode_request(
            "GET", f"/runs?status=SUCCEEDED&limit=50&cursor={cursor}", headers=headers
        )
        seconds = 3 if ctx.quick else 10
        page_one = await run_load(app.port, lambda _n: first, seconds=seconds, connections=1)
        page_deep = await run_load(app.port, lambda _n: deep_request, seconds=seconds, connections=1)
    finally:
        ctx.stop(app)
    p99_first, p99_deep = page_one.percentile(0.99) * 1000, page_deep.percentile(0.99) * 1000
    page = "10,000" if not ctx.quick else "1,000"
    rows.append(
        Row(
            measure=f"GET /runs?status=SUCCEEDED on {count:,} runs, page 1 vs page {page}",
            goal="p99 <= 20 ms; deep/first <= 1.5",
            result=f"p99 {p99_first:.1f} ms / {p99_deep:.1f} ms",
            ratio=f"{p99_deep / p99_first:.2f}",
            ok=p99_first <= 20 and p99_deep <= 20 and p99_deep / p99_first <= 1.5,
            notes=[f"p50 {page_one.median * 1000:.1f} ms / {page_deep.median * 1000:.1f} ms"],
        )
    )
    return rows


ALL.append(("seed", seed_and_list))
