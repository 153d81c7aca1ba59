"""The measures of ``bench/run.py``, one coroutine each, every one next to its baseline."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from bench.loadgen import encode_request
from bench.wrk import Request, WrkResult
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
    processes: list[ServerProcess]
    server: Any
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return 3.0 if self.quick else 10.0

    @property
    def pool_size(self) -> int:
        """The size of the app's asyncpg pool as ``scriptworks run`` opens it (worker on)."""
        from app.config import Settings
        from app.worker import WORKER_CONNECTIONS

        return Settings(database_url=self.url).db_pool_size + WORKER_CONNECTIONS

    def start_app(self, **env: str) -> ServerProcess:
        """``scriptworks run``: one process, its in-process worker on, as a user starts it."""
        port = free_port()
        command = ["run", "--host", "127.0.0.1", "--port", str(port)]
        return self._start(ServerProcess({**self.env, **env}, command=command, port=port))

    def start_bare(self, factory: str = "bench.bare_app:create_app") -> ServerProcess:
        """The baseline on the same server as the app: uvicorn, one process, its default loop and
        HTTP parser, no access log (the app's uvicorn access log has no handler either)."""
        port = free_port()
        command = [
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        env = {**self.env, "BARE_POOL_SIZE": str(self.pool_size)}
        return self._start(ServerProcess(env, module="uvicorn", command=command, port=port))

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


async def _probe(server: ServerProcess, request: Request, prefix: str) -> None:
    """One request before the load: a wrong answer stops the bench with the body to read."""
    body = request.body.replace("{n}", f"{prefix}-probe")
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        response = await client.request(
            request.method, request.path, headers=request.headers, content=body or None
        )
    if response.status_code >= 300:
        raise RuntimeError(f"{request.method} {request.path}: {response.status_code} {response.text[:500]}")


async def _outbox_idle(ctx: Context, timeout: float = 120.0) -> float:
    """Wait until the app's worker has finished every command (its backlog must not eat into
    the next run's CPU); returns the seconds waited."""
    import asyncio
    import time

    started = time.monotonic()
    sql = "SELECT count(*) FROM commands WHERE status IN ('PENDING', 'PROCESSING')"
    while await _count(ctx.url, sql) and time.monotonic() - started < timeout:
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def http_writes_and_reads(ctx: Context) -> list[Any]:
    """POST /runs, POST /commands, POST /scripts and GET /scripts/{id} under wrk, each against
    the bare app's same statement (for POST /commands: the bare insert of POST /runs)."""
    import asyncio

    from bench.wrk import CpuMeter, run_wrk

    app = ctx.start_app()
    bare = ctx.start_bare()
    assert app.process is not None
    assert bare.process is not None
    app_meter = CpuMeter(app.process.pid, ctx.server.postmaster_pid)
    bare_meter = CpuMeter(bare.process.pid, ctx.server.postmaster_pid)
    rows = []
    runs = itertools.count()

    async def once(server: ServerProcess, meter: CpuMeter, request: Request) -> WrkResult:
        prefix = f"w{next(runs)}"
        # A short warm-up (connections, statement caches), then the measured run.
        await asyncio.to_thread(run_wrk, server.port, request, seconds=1, meter=meter, prefix=prefix + "w")
        result = await asyncio.to_thread(
            run_wrk, server.port, request, seconds=ctx.seconds, meter=meter, prefix=prefix
        )
        if result.errors:
            raise RuntimeError(f"{request.method} {request.path}: {result.errors} errors or non-2xx answers")
        return result

    async def compare(measure: str, share: float, real: Request, base: Request, *, outbox: bool = False):
        # App and bare take turns, so a machine that speeds up or slows down meanwhile (shared
        # cores do) moves both sides alike; each side's figure is the median of its runs.
        await _probe(app, real, "app")
        await _probe(bare, base, "bare")
        reals: list[WrkResult] = []
        bases: list[WrkResult] = []
        drained: list[float] = []
        for _ in range(ctx.repeat):
            reals.append(await once(app, app_meter, real))
            if outbox:
                drained.append(await _outbox_idle(ctx))
            bases.append(await once(bare, bare_meter, base))
        real_run = _median_run(reals)
        base_run = _median_run(bases)
        ok = real_run.rate >= share * base_run.rate
        row = _row(measure, f">= {share:.0%} of bare", real_run.rate, base_run.rate, ok)
        row.notes += [f"app:  {real_run.describe()}", f"bare: {base_run.describe()}"]
        if outbox:
            row.notes.append(
                "the app's worker finished each run's commands before the bare run started "
                f"(waited {max(drained):.1f} s at most)"
            )
        rows.append(row)

    try:
        script_id = await _fixture_script(ctx, app)
        auth = {**ctx.headers, "Content-Type": "application/json"}
        run_body = _json({"scriptId": script_id, "version": 1}).decode()
        start_run = Request("POST", "/runs", auth, run_body)
        await compare("POST /runs", 0.55, start_run, start_run)
        command = Request(
            "POST", "/commands", auth, _json({"command": "Bench.Ping.v1", "actor": {"userId": "b"}}).decode()
        )
        measure = "POST /commands (bare: the insert of POST /runs)"
        await compare(measure, 0.55, command, start_run, outbox=True)
        script = Request("POST", "/scripts", auth, '{"name": "Script {n}", "slug": "s-{n}"}')
        await compare("POST /scripts (script+audit+event)", 0.45, script, script)
        read = Request("GET", f"/scripts/{script_id}", ctx.headers)
        await compare("GET /scripts/{id}", 0.50, read, read)
    finally:
        ctx.stop(app)
        ctx.stop(bare)
    return rows


def _median_run(results: list[WrkResult]) -> WrkResult:
    """The run whose rate is the median (its latencies and CPU split go with it)."""
    return sorted(results, key=lambda r: r.rate)[len(results) // 2]


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


async def server_version(url: str) -> str:
    import asyncpg

    from app.lib.db import asyncpg_connect_kwargs

    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        return await connection.fetchval("SHOW server_version")
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
            goal=">= 10,000 commands/s",
            result=f"{rate:,.0f} commands/s",
            ok=rate >= 10_000,
            notes=[
                "`scriptworks worker`, WORKER_BATCH_SIZE=500, WORKER_FAKE_DELAY_MS=0; "
                "from the COPY's end to the last completion"
            ],
        )
    ]


# ---- command -> SSE latency ------------------------------------------------------------------


async def command_latency(ctx: Context) -> list[Any]:
    """POST /commands at a steady 500/s; time until each completion reaches an SSE client.

    One API process with its in-process worker (as ``scriptworks run`` starts it): the whole
    path, request to worker to stream, on one event loop. Each of ``--repeat`` runs starts a
    fresh process and must meet the goal on its own; the first second of each warms up
    (connections, caches) and is not counted. The sender is this Python process (a steady rate,
    16 keep-alive connections, on uvloop): about 5 % of a core at 500 requests/s.
    """
    from bench.run import Row

    results = [await _latency_once(ctx, run) for run in range(ctx.repeat)]
    ok = all(p50 <= 10 and p99 <= 50 and lost == 0 for p50, p99, _, lost in results)
    text = "; ".join(f"p50 {p50:.1f} ms, p99 {p99:.1f} ms" for p50, p99, _, _ in results)
    events = sum(count for _, _, count, _ in results)
    lost = sum(missing for _, _, _, missing in results)
    return [
        Row(
            measure="command -> SSE event at 500/s, delay 0",
            goal="p50 <= 10 ms, p99 <= 50 ms in each run",
            result=text,
            ok=ok,
            notes=[
                f"{len(results)} runs, {events:,} events counted, {lost} missing; "
                "one API process with its in-process worker"
            ],
        )
    ]


async def _latency_once(ctx: Context, run: int) -> tuple[float, float, int, int]:
    import asyncio
    import json
    import time

    from bench.loadgen import _read_response
    from bench.sse_client import SseReader

    app = ctx.start_app(SSE_PING_SECONDS="60")
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
                correlation = f"lat{run}-{n}"
                body = _json(
                    {"command": "Bench.Ping.v1", "actor": {"userId": "b"}, "correlationId": correlation}
                )
                # The clock starts when the command was due, so a sender that fell behind (a slow
                # answer on its connection) counts that wait too.
                sent[correlation] = due
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
    return p50, p99, len(ordered), len(sent)


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
    """One event to 5,000 streams on one API process, against a bare sse-starlette fan-out.

    Both clocks start at the same point: when the publisher, already connected, starts its
    publishing call (the app: the event's INSERT and COMMIT on an open database connection;
    the bare app: ``POST /publish`` on an open HTTP connection). Each stops when a client has
    read the event.
    """
    import time

    import asyncpg

    from app.lib.db import asyncpg_connect_kwargs
    from bench.run import Row

    clients = 500 if ctx.quick else 5000
    token = ctx.headers["Authorization"].split()[1]
    app = ctx.start_app(SSE_PING_SECONDS="600")
    assert app.process is not None
    publisher = await asyncpg.connect(**asyncpg_connect_kwargs(ctx.url))

    async def publish_real() -> float:
        started = time.perf_counter()
        async with publisher.transaction():
            await publisher.execute(
                "INSERT INTO events (tenant_id, event, payload) VALUES ($1, 'Bench.Fanout.v1', '{}')",
                ctx.tenant,
            )
        return started

    try:
        delays, memory = await _fanout_once(
            app.port,
            {"tenantId": ctx.tenant, "access_token": token},
            clients,
            publish_real,
            app.process.pid,
        )
    finally:
        await publisher.close()
        ctx.stop(app)

    bare = ctx.start_bare("bench.bare_sse:create_app")
    assert bare.process is not None
    async with httpx.AsyncClient(base_url=bare.url) as client:
        await client.get("/health")  # the connection is open before the clock starts

        async def publish_bare() -> float:
            started = time.perf_counter()
            await client.post("/publish")
            return started

        try:
            bare_delays, bare_memory = await _fanout_once(
                bare.port, {}, clients, publish_bare, bare.process.pid
            )
        finally:
            ctx.stop(bare)

    def p99(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else float("inf")

    real_p99, bare_p99 = p99(delays), p99(bare_delays)
    return [
        Row(
            measure=f"one event to {clients:,} SSE clients",
            goal="p99 <= 1.2x bare, same clock",
            result=f"p99 {real_p99:.0f} ms ({len(delays):,} got it)",
            baseline=f"p99 {bare_p99:.0f} ms ({len(bare_delays):,} got it)",
            ratio=f"{real_p99 / bare_p99:.2f}x" if bare_p99 else "",
            ok=real_p99 <= 1.2 * bare_p99 and len(delays) == clients,
        ),
        Row(
            measure="memory per SSE connection",
            goal="<= 1.1x bare sse-starlette",
            result=f"{memory:.1f} KiB",
            baseline=f"{bare_memory:.1f} KiB",
            ratio=f"{memory / bare_memory:.2f}x" if bare_memory > 0 else "",
            ok=bare_memory > 0 and memory <= 1.1 * bare_memory,
            notes=["resident memory growth of the server process while the streams opened, per stream"],
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
    """`scriptworks seed runs` against a generate-and-COPY of the same rows into the same schema
    (and, printed too, into a bare table with its indexes built afterwards); then GET /runs
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
        # Baseline 1: the same rows, generated and copied into the same schema (its indexes,
        # foreign keys and checks), with nothing else around them: the like-for-like ratio. The
        # clock starts where the seed's does, before the rows the runs point at (scripts,
        # versions, schedules, and an incoming event for each event-triggered run) are written:
        # the seed writes those too, and both sides write them with the same code.
        plan = SeedPlan(tenant, count, 0.5, 100, 50_000, datetime.datetime.now(datetime.UTC))
        started = time.perf_counter()
        prepared = await prepare(connection, plan)
        prepare_seconds = time.perf_counter() - started
        await connection.copy_records_to_table("runs", records=run_rows(plan, prepared), columns=RUN_COLUMNS)
        raw_seconds = time.perf_counter() - started
        # Baseline 2: the same rows into a bare copy of the table (no index, no key, no check),
        # then its indexes built afterwards: what the schema's upkeep costs during a load.
        await connection.execute("DROP TABLE IF EXISTS bench_bare_runs")
        await connection.execute("CREATE TABLE bench_bare_runs (LIKE runs INCLUDING DEFAULTS)")
        indexes = [
            r["indexdef"]
            .replace(f" {r['indexname']} ", f" bench_{r['indexname']} ")
            .replace(" ON public.runs ", " ON public.bench_bare_runs ")
            for r in await connection.fetch(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = 'public' AND tablename = 'runs'"
            )
        ]
        started = time.perf_counter()
        await connection.copy_records_to_table(
            "bench_bare_runs", records=run_rows(plan, prepared), columns=RUN_COLUMNS
        )
        bare_copy_seconds = time.perf_counter() - started
        for statement in indexes:
            await connection.execute(statement)
        # The prerequisites are timed once, above; they are the same rows for this baseline.
        bare_seconds = time.perf_counter() - started + prepare_seconds
        await connection.execute("DROP TABLE bench_bare_runs")
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
            goal="<= 1.25x COPY into the same schema",
            result=f"{seed_seconds:.1f} s ({count / seed_seconds:,.0f} runs/s)",
            baseline=f"{raw_seconds:.1f} s",
            ratio=f"{seed_seconds / raw_seconds:.2f}x",
            ok=seed_seconds <= 1.25 * raw_seconds,
            notes=[
                f"verified: {counts}",
                f"baseline: {prepare_seconds:.1f} s writing what the runs point at (the same code as the "
                f"seed's) + {raw_seconds - prepare_seconds:.1f} s for the COPY of the runs",
                f"second baseline, COPY into a bare table (no index, key or check; NOT NULL kept) then its "
                f"{len(indexes)} indexes built: {bare_seconds:.1f} s ({prepare_seconds:.1f} s "
                f"prerequisites + {bare_copy_seconds:.1f} s COPY + "
                f"{bare_seconds - bare_copy_seconds - prepare_seconds:.1f} s indexes); seed / this = "
                f"{seed_seconds / bare_seconds:.2f}x",
            ],
        )
    ]

    from bench.wrk import CpuMeter, run_wrk

    app = ctx.start_app()
    assert app.process is not None
    meter = CpuMeter(app.process.pid, ctx.server.postmaster_pid)
    try:
        headers = {**ctx.headers, "x-tenant-id": tenant}
        cursor = encode_cursor((deep["started_at"], deep["id"]))
        first = Request("GET", "/runs?status=SUCCEEDED&limit=50", headers)
        deep_request = Request("GET", f"/runs?status=SUCCEEDED&limit=50&cursor={cursor}", headers)
        seconds = 3 if ctx.quick else 10
        one = {"seconds": seconds, "meter": meter, "connections": 1, "threads": 1}
        await asyncio.to_thread(run_wrk, app.port, first, **{**one, "seconds": 1})  # warm-up
        page_one = await asyncio.to_thread(run_wrk, app.port, first, **one)
        page_deep = await asyncio.to_thread(run_wrk, app.port, deep_request, **one)
    finally:
        ctx.stop(app)
    if page_one.errors or page_deep.errors:
        raise RuntimeError(f"GET /runs: {page_one.errors + page_deep.errors} errors or non-2xx answers")
    page = "10,000" if not ctx.quick else "1,000"
    rows.append(
        Row(
            measure=f"GET /runs?status=SUCCEEDED on {count:,} runs, page 1 vs page {page}",
            goal="p99 <= 20 ms; deep/first <= 1.5",
            result=f"p99 {page_one.p99_ms:.1f} ms / {page_deep.p99_ms:.1f} ms",
            ratio=f"{page_deep.p99_ms / page_one.p99_ms:.2f}",
            ok=page_one.p99_ms <= 20 and page_deep.p99_ms <= 20 and page_deep.p99_ms / page_one.p99_ms <= 1.5,
            notes=[f"p50 {page_one.p50_ms:.1f} ms / {page_deep.p50_ms:.1f} ms (wrk, one connection)"],
        )
    )
    return rows


ALL.append(("seed", seed_and_list))
