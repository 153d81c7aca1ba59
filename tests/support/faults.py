"""Fault scenarios against real processes, sized by the caller: the test suite runs them small,
``bench/stress.py`` at full size. Each returns what it measured; callers assert or report.

- ``worker_kills``: commands stream in while the worker is SIGKILLed again and again; every
  command completes with one completion event, and SSE readers that keep dropping and resuming
  with Last-Event-ID end up with every completion exactly once.
- ``postgres_restart``: mixed writes while PostgreSQL stops and starts; 503s during, full
  recovery after, every acknowledged write kept.
- ``slow_reader``: a client that stops reading is cut off, another keeps receiving promptly.
- ``pool_exhaustion``: requests that hold the only pooled connection; the rest get fast 503s.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from app.config import Settings
from app.db.embedded import EmbeddedPostgres
from app.db.engine import upgrade_database
from app.db.events import Event
from app.lib.db import asyncpg_connect_kwargs
from tests.conftest import process_env
from tests.support.api import ADMIN_TOKEN
from tests.support.load import (
    Recorder,
    ResumingReader,
    command,
    completions,
    headers,
    outbox_counts,
    paced,
)
from tests.support.server import ServerProcess
from tests.support.waiting import eventually


@contextlib.contextmanager
def processes() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    try:
        yield started
    finally:
        for process in started:
            process.kill()


# ---- worker killed mid-stream -------------------------------------------------------------------


@dataclass
class KillReport:
    commands: int
    kills: int
    kills_mid_batch: int
    completed: int
    lost: int
    duplicate_events: int
    events_skipped: int
    reader_duplicates: int
    reader_connections: int
    seconds: float


async def worker_kills(
    database_url: str, *, commands: int, kills: int, readers: int = 3, rate: float = 100.0
) -> KillReport:
    """``commands`` commands at ``rate``/s; the worker SIGKILLed ``kills`` times, evenly spread,
    each time while it holds claimed commands, and replaced by a new worker process."""
    tenant = f"kills-{int(time.time() * 1000)}"
    worker_env = {
        "WORKER_FAKE_DELAY_MS": "10-150",
        "WORKER_LEASE_SECONDS": "2",
        "WORKER_POLL_SECONDS": "0.2",
        "WORKER_BATCH_SIZE": "50",
    }
    started = time.monotonic()
    with processes() as running:
        api = ServerProcess(process_env(database_url, WORKER_ENABLED="false", SSE_PING_SECONDS="1")).start()
        running.append(api)

        def new_worker() -> ServerProcess:
            worker = ServerProcess(process_env(database_url, **worker_env), command=["worker"])
            running.append(worker.start(wait_for_health=False))
            return worker

        worker = new_worker()
        stop_readers = asyncio.Event()
        clients = [ResumingReader(api.url, tenant) for _ in range(readers)]
        reader_tasks = [asyncio.create_task(r.run(stop_readers)) for r in clients]
        connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
        mid_batch: list[int] = []
        killed: list[int] = []
        try:
            async with httpx.AsyncClient(base_url=api.url, headers=headers(tenant), timeout=30) as client:

                async def post(i: int) -> None:
                    for _ in range(5):  # the API never fails here, but be a patient client anyway
                        response = await client.post("/commands", json=command(f"k-{i}"))
                        if response.status_code in (202, 409):
                            break
                        await asyncio.sleep(0.2)

                async def kill(k: int) -> None:
                    nonlocal worker
                    # Mid-batch: the worker holds leases on commands it has not finished.
                    with contextlib.suppress(AssertionError):
                        await eventually(
                            lambda: outbox_counts(connection),
                            lambda c: c.get("PROCESSING", 0) > 0,
                            timeout=30,
                        )
                        mid_batch.append(k)
                    worker.kill()
                    killed.append(k)
                    worker = new_worker()

                # The stream in kills + 1 stretches; each kill happens while the next one streams,
                # so every kill falls inside the stream however long a worker takes to start.
                bounds = [commands * k // (kills + 1) for k in range(kills + 2)]
                previous: asyncio.Task[None] | None = None
                for k in range(kills + 1):
                    first, last = bounds[k], bounds[k + 1]
                    await paced(rate, last - first, None, lambda i, first=first: post(first + i))
                    if k < kills:
                        if previous is not None:
                            await previous
                        previous = asyncio.create_task(kill(k))
                if previous is not None:
                    await previous

            expected = {f"k-{i}" for i in range(commands)}
            await eventually(
                lambda: outbox_counts(connection),
                lambda c: c.get("COMPLETED", 0) >= commands,
                timeout=max(60, commands / 20),
            )
            events = await completions(connection, tenant)
            await eventually(
                lambda: _value([r.missing(expected) for r in clients]),
                lambda missing: not any(missing),
                timeout=60,
            )
        finally:
            stop_readers.set()
            for task in reader_tasks:
                task.cancel()
            await asyncio.gather(*reader_tasks, return_exceptions=True)
            await connection.close()
    return KillReport(
        commands=commands,
        kills=len(killed),
        kills_mid_batch=len(mid_batch),
        completed=sum(1 for c in expected if events[c] >= 1),
        lost=sum(1 for c in expected if events[c] == 0),
        duplicate_events=sum(n - 1 for n in events.values() if n > 1),
        events_skipped=sum(len(r.missing(expected)) for r in clients),
        reader_duplicates=sum(r.duplicates for r in clients),
        reader_connections=sum(r.connections for r in clients),
        seconds=time.monotonic() - started,
    )


async def _value(value: Any) -> Any:
    return value


# ---- PostgreSQL restarted under load ------------------------------------------------------------


@dataclass
class RestartReport:
    requests: int
    succeeded: int
    unavailable: int  # 503 UNAVAILABLE answers
    failed: int  # anything else that is not a 2xx/4xx the client caused
    slowest_503: float
    recovery_seconds: float  # from PostgreSQL back to the first 2xx write
    acknowledged_writes: int
    lost: int
    outage_seconds: float
    statuses: dict[int, int] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)  # why any 500 was answered


async def postgres_restart(
    work_dir: Path, *, duration: float, rate: float, outage_seconds: float
) -> RestartReport:
    """Writes and reads at ``rate``/s for ``duration`` s on a PostgreSQL of its own, which is
    stopped a third of the way in and started again ``outage_seconds`` later; the load goes on
    until a third of ``duration`` has passed since it is back."""
    pgdata = work_dir / "pgdata"
    server = await anyio.to_thread.run_sync(EmbeddedPostgres.ensure_started, pgdata)
    url = server.url()
    await anyio.to_thread.run_sync(upgrade_database, Settings(database_url=url))
    tenant = "restart"
    recorder = Recorder()
    marks: dict[str, float] = {}
    try:
        with processes() as running:
            env = process_env(
                url, WORKER_ENABLED="true", WORKER_POLL_SECONDS="0.2", WORKER_FAKE_DELAY_MS="0-20"
            )
            api = ServerProcess(env).start()
            running.append(api)
            async with httpx.AsyncClient(base_url=api.url, headers=headers(tenant), timeout=15) as client:

                async def launch(i: int) -> None:
                    key = f"r-{i}"
                    if i % 3 == 0:
                        await recorder.call(
                            "POST /scripts",
                            key,
                            lambda: client.post("/scripts", json={"name": key, "slug": key}),
                        )
                    elif i % 3 == 1:
                        await recorder.call(
                            "POST /commands", key, lambda: client.post("/commands", json=command(key))
                        )
                    else:
                        await recorder.call(
                            "GET /scripts", key, lambda: client.get("/scripts", params={"limit": 5})
                        )

                async def outage() -> None:
                    await asyncio.sleep(duration / 3)
                    marks["down"] = time.monotonic()
                    await anyio.to_thread.run_sync(EmbeddedPostgres.stop, pgdata)
                    await asyncio.sleep(outage_seconds)
                    await anyio.to_thread.run_sync(EmbeddedPostgres.ensure_started, pgdata)
                    marks["up"] = time.monotonic()

                load_started = time.monotonic()

                def load_done() -> bool:
                    # ``duration`` seconds, and on a slow machine as long as it takes PostgreSQL to
                    # come back, plus a third of ``duration`` after: recovery is measured by load.
                    now = time.monotonic()
                    back = marks.get("up")
                    return now - load_started >= duration and back is not None and now - back >= duration / 3

                outage_task = asyncio.create_task(outage())
                await paced(rate, None, None, launch, until=load_done)
                await outage_task
                await eventually(
                    lambda: client.get("/health/ready"), lambda r: r.status_code == 200, timeout=60
                )

            scripts_ok = {o.key for o in recorder.outcomes if o.kind == "POST /scripts" and o.status == 201}
            commands_ok = {o.key for o in recorder.outcomes if o.kind == "POST /commands" and o.status == 202}
            connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
            try:
                await eventually(
                    lambda: completions(connection, tenant),
                    lambda done: commands_ok <= set(done),
                    timeout=120,
                )
                stored = {
                    r["slug"]
                    for r in await connection.fetch("SELECT slug FROM scripts WHERE tenant_id = $1", tenant)
                }
                events = await completions(connection, tenant)
            finally:
                await connection.close()
            server_errors = api.errors()
    finally:
        await anyio.to_thread.run_sync(EmbeddedPostgres.stop, pgdata)
    first_write_after = min(
        (o.at + o.seconds for o in recorder.outcomes if o.at >= marks["up"] and o.status in (201, 202)),
        default=float("inf"),
    )
    statuses: dict[int, int] = {}
    for o in recorder.outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    return RestartReport(
        requests=len(recorder.outcomes),
        succeeded=recorder.count(lambda o: 200 <= o.status < 300),
        unavailable=recorder.count(lambda o: o.status == 503),
        failed=recorder.count(lambda o: o.status == 0 or (o.status >= 500 and o.status != 503)),
        slowest_503=max(recorder.latencies(lambda o: o.status == 503), default=0.0),
        recovery_seconds=first_write_after - marks["up"],
        acknowledged_writes=len(scripts_ok) + len(commands_ok),
        lost=len(scripts_ok - stored) + sum(1 for c in commands_ok if events[c] != 1),
        outage_seconds=marks["up"] - marks["down"],
        statuses=statuses,
        server_errors=server_errors,
    )


# ---- a client that stops reading ----------------------------------------------------------------


@dataclass
class SlowReaderReport:
    events: int
    dropped: bool
    seconds_to_drop: float
    healthy_received: int
    healthy_worst_lag: float  # longest wait of the reading client for a batch it was sent


async def _sse_connections(client: httpx.AsyncClient) -> int:
    text = (await client.get("/metrics")).text
    match = re.search(r"^scriptworks_sse_connections (\d+(?:\.\d+)?)$", text, re.MULTILINE)
    assert match, text[-2000:]
    return int(float(match.group(1)))


async def slow_reader(
    base_url: str, database_url: str, *, batches: int = 20, batch: int = 100
) -> SlowReaderReport:
    """One client reads the tenant's stream, another connects and never reads. Events (8 KiB
    each) are written in batches of ``batch``, each once the reading client has the previous
    one: the stuck stream fills its TCP buffers, then its hub queue (1000 events) overflows, and
    it is cut off; the reading client never waits long."""
    tenant = f"slow-{int(time.time() * 1000)}"
    engine = create_async_engine(database_url, pool_size=1)
    admin = httpx.AsyncClient(base_url=base_url, headers=headers(tenant), timeout=10)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    healthy = ResumingReader(base_url, tenant, resume_every=(10**9, 10**9), event=None)
    stop = asyncio.Event()
    reader = asyncio.create_task(healthy.run(stop))
    written = 0
    worst_lag = 0.0
    dropped_at: float | None = None
    try:
        await eventually(lambda: _value(healthy.connections), lambda n: n == 1)
        before = await _sse_connections(admin)
        stuck.connect(("127.0.0.1", int(base_url.rsplit(":", 1)[1])))
        stuck.sendall(
            b"GET /events/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
            + ADMIN_TOKEN.encode()
            + b"\r\nx-tenant-id: "
            + tenant.encode()
            + b"\r\n\r\n"
        )
        await eventually(lambda: _sse_connections(admin), lambda n: n == before + 1)
        padding = "x" * 8192
        started = time.monotonic()
        for b in range(batches):
            rows = [
                {
                    "tenant_id": tenant,
                    "event": "Load.Filler.v1",
                    "correlation_id": f"f-{written + i}",
                    "success": True,
                    "payload": {"pad": padding},
                }
                for i in range(batch)
            ]
            async with engine.begin() as connection:
                await connection.execute(insert(Event), rows)
            written += batch
            sent = time.monotonic()
            await eventually(lambda: _value(len(healthy.ids)), lambda n, w=written: n >= w, timeout=30)
            worst_lag = max(worst_lag, time.monotonic() - sent)
            if dropped_at is None and await _sse_connections(admin) == before:
                dropped_at = time.monotonic()
                if b >= 2:
                    break
        if dropped_at is None:
            await eventually(lambda: _sse_connections(admin), lambda n: n == before, timeout=15)
            dropped_at = time.monotonic()
    finally:
        stop.set()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        stuck.close()
        await admin.aclose()
        await engine.dispose()
    return SlowReaderReport(
        events=written,
        dropped=dropped_at is not None,
        seconds_to_drop=(dropped_at or time.monotonic()) - started,
        healthy_received=len(healthy.ids),
        healthy_worst_lag=worst_lag,
    )


# ---- the connection pool exhausted ---------------------------------------------------------------


@dataclass
class PoolReport:
    excess_requests: int
    unavailable: int
    slowest_503: float
    all_answered_in: float
    held_request_status: int
    after_release_status: int
    statuses: list[int] = field(default_factory=list)


async def pool_exhaustion(database_url: str, *, excess: int = 20, pool_timeout: float = 0.5) -> PoolReport:
    """A server with one pooled connection. Another transaction (as a long migration or report
    would) holds a script's row; a PATCH of that script waits for the row lock while holding
    the pool's only connection. Meanwhile ``excess`` reads of other data arrive: each should get
    a 503 after about the pool timeout, not queue up behind the lock. Then the lock goes away."""
    tenant = f"pool-{int(time.time() * 1000)}"
    env = process_env(database_url, DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT=str(pool_timeout))
    with processes() as running:
        api = ServerProcess(env).start()
        running.append(api)
        async with httpx.AsyncClient(base_url=api.url, headers=headers(tenant), timeout=30) as client:
            script = (await client.post("/scripts", json={"name": "Held", "slug": "held"})).json()
            locker = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
            try:
                transaction = locker.transaction()
                await transaction.start()
                await locker.execute(
                    "SELECT 1 FROM scripts WHERE id = $1 FOR UPDATE", uuid.UUID(script["id"])
                )
                held = asyncio.create_task(client.patch(f"/scripts/{script['id']}", json={"name": "Changed"}))

                # The PATCH now waits on the row lock, holding the only connection.
                async def lock_waiters() -> int:
                    # Inside a transaction PostgreSQL keeps serving the first snapshot of
                    # pg_stat_activity: drop it, or the wait never shows.
                    await locker.execute("SELECT pg_stat_clear_snapshot()")
                    return await locker.fetchval(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )

                await eventually(lock_waiters, lambda n: n >= 1)
                recorder = Recorder()
                started = time.monotonic()
                await asyncio.gather(
                    *(
                        recorder.call("GET /scripts", str(i), lambda: client.get("/scripts"))
                        for i in range(excess)
                    )
                )
                answered_in = time.monotonic() - started
                await transaction.rollback()
            finally:
                await locker.close()
            held_response = await held
            after = await client.get(f"/scripts/{script['id']}")
    return PoolReport(
        excess_requests=excess,
        unavailable=recorder.count(lambda o: o.status == 503),
        slowest_503=max(recorder.latencies(lambda o: o.status == 503), default=0.0),
        all_answered_in=answered_in,
        held_request_status=held_response.status_code,
        after_release_status=after.status_code,
        statuses=[o.status for o in recorder.outcomes],
    )
