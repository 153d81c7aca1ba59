"""Live delivery under an unrelated open transaction: ``python bench/live_delivery.py``.

Run from the project root (test extra installed). Starts a fresh embedded PostgreSQL and, for each
scenario, the app as users run it (``python -m app run``, its in-process worker on, handler delay
0), opens one Server-Sent Events stream for the bench tenant and posts ``POST /commands`` at a
steady 50 commands/s. A command's latency is the moment the stream delivers the completion event
carrying its correlationId minus the moment its POST was scheduled, both read from
``time.perf_counter()`` in this process.

Scenarios: ``quiet`` (nothing else on the server); ``open transaction, same database`` (another
session of the app's database holds a transaction id and sits idle in its transaction for the
whole scenario); ``open transaction, other database`` (the same, in another database of the same
server). Each scenario is 3 runs of 10 s (``--quick``: 1 run of 3 s), pooled into one row:
commands posted, commands delivered within the run plus 5 s, and p50, p99, max of the latency.
A command that is not delivered in time counts as not delivered (never as a latency), and a
percentile that falls on such commands is shown as a lower bound (``>N``).

Everything is bounded in time: a scenario whose events never arrive ends after its runs plus
the 5 s wait, and reports them as not delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.embedded import EmbeddedPostgres  # noqa: E402
from app.db.engine import upgrade_database  # noqa: E402
from app.lib.db import asyncpg_connect_kwargs  # noqa: E402
from bench.loadgen import _read_response, encode_request  # noqa: E402
from bench.sse_client import SseReader  # noqa: E402
from tests.support.server import ServerProcess, free_port  # noqa: E402

TENANT = "bench"
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POST_HEADERS = {**AUTH, "x-tenant-id": TENANT, "Content-Type": "application/json"}
COMMAND = "Contacts.UpsertAndLink.v1"
RATE = 50.0  # commands per second
GRACE = 5.0  # seconds after a run's last scheduled send to wait for its events
GOAL_P99_MS = 100.0
WARMUP_SECONDS = 1.0
OTHER_DATABASE = "bench_other"
MAX_CONNECTIONS = 200  # POST connections open at once, at most
STARTUP_TIMEOUT = 120.0
SQL_TIMEOUT = 30.0


# ---- the stream ---------------------------------------------------------------------------------


class BearerSseReader(SseReader):
    """``SseReader`` that authenticates with a bearer header rather than ``?access_token=``, and
    decodes the chunked body before splitting it into frames (a chunk boundary may fall anywhere).

    Calls ``on_data(data_text, received_at)`` for every non-ping frame, like its parent.
    """

    def __init__(
        self,
        port: int,
        params: dict[str, str],
        headers: dict[str, str],
        on_data: Callable[[str, float], None],
    ) -> None:
        super().__init__(port, params, on_data)
        self.headers = headers

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer = writer
        lines = [f"GET /events/stream?{urlencode(self.params)} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        lines.append("Accept: text/event-stream")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:200])
        chunked = b"transfer-encoding: chunked" in head.lower()
        self.connected.set()
        buffer = b""
        event = data = b""
        async for piece in _body(reader, chunked):
            received_at = time.perf_counter()
            buffer += piece
            *complete, buffer = buffer.split(b"\n")
            for raw in complete:
                line = raw.rstrip(b"\r")
                if line.startswith(b"event:"):
                    event = line[6:].strip()
                elif line.startswith(b"data:"):
                    data = line[5:].strip()
                elif line == b"":
                    if data and event != b"ping":
                        self.on_data(data.decode(), received_at)
                    event = data = b""


async def _body(reader: asyncio.StreamReader, chunked: bool) -> AsyncIterator[bytes]:
    if not chunked:
        while piece := await reader.read(65536):
            yield piece
        return
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        chunk = await reader.readexactly(size + 2)  # the chunk and its CRLF
        yield chunk[:-2]


# ---- one run: paced load, deliveries matched by correlationId -----------------------------------


@dataclass
class Phase:
    """The commands of one run: when each was scheduled, and when its event arrived."""

    scheduled: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)  # answer status (or -1) per command
    send_lag: float = 0.0  # the latest a request left after its scheduled time, seconds
    deadline: float = 0.0

    def on_data(self, data: str, at: float) -> None:
        try:
            correlation = json.loads(data).get("correlationId")
        except (ValueError, AttributeError):
            return
        if correlation in self.scheduled and correlation not in self.arrived and at <= self.deadline:
            self.arrived[correlation] = at

    @property
    def latencies(self) -> list[float]:
        return [self.arrived[c] - self.scheduled[c] for c in self.arrived]

    @property
    def missing_waited(self) -> list[float]:
        """For each command not delivered: how long it had been waited for (a latency lower bound)."""
        return [self.deadline - due for c, due in self.scheduled.items() if c not in self.arrived]


class Connections:
    """Keep-alive HTTP/1.1 connections for POSTs: an idle one is reused, else a new one opened
    (up to ``MAX_CONNECTIONS``; beyond that a request waits for one to come back)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.writers: set[asyncio.StreamWriter] = set()
        self.open = 0
        self.changed = asyncio.Event()

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            if self.idle:
                return self.idle.pop()
            if self.open < MAX_CONNECTIONS:
                break
            self.changed.clear()
            await self.changed.wait()
        self.open += 1
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except BaseException:
            self.open -= 1
            self.changed.set()
            raise
        self.writers.add(writer)
        return reader, writer

    def release(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(connection)
        self.changed.set()

    def discard(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        connection[1].close()
        self.writers.discard(connection[1])
        self.open -= 1
        self.changed.set()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.writers.clear()
        self.idle.clear()


async def _post(connections: Connections, phase: Phase, correlation: str, due: float) -> None:
    body = json.dumps(
        {"command": COMMAND, "actor": {"userId": "u"}, "payload": {}, "correlationId": correlation}
    ).encode()
    request = encode_request("POST", "/commands", headers=POST_HEADERS, body=body)
    connection = None
    try:
        async with asyncio.timeout(max(0.1, phase.deadline - time.perf_counter())):
            connection = await connections.acquire()
            phase.send_lag = max(phase.send_lag, time.perf_counter() - due)
            connection[1].write(request)
            phase.statuses[correlation] = await _read_response(connection[0])
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        phase.statuses[correlation] = -1
        if connection is not None:
            connections.discard(connection)
        return
    connections.release(connection)


async def run_phase(port: int, seconds: float, attach: Callable[[Phase], None]) -> Phase:
    """Posts ``RATE * seconds`` commands paced from the start time; waits for their events until
    the last scheduled send plus ``GRACE``, and no longer."""
    phase = Phase()
    count = max(1, round(RATE * seconds))
    connections = Connections(port)
    start = time.perf_counter()
    phase.deadline = start + (count - 1) / RATE + GRACE
    attach(phase)
    posts: set[asyncio.Task[None]] = set()
    try:
        for n in range(count):
            # Open-loop pacing: command n is due at start + n / RATE whatever happened to the
            # commands before it, and its latency is measured from that scheduled time, not from
            # when it actually left. A stalled server or a late sender therefore shows up in the
            # latencies instead of silently thinning the load (no coordinated omission).
            due = start + n / RATE
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            correlation = str(uuid.uuid4())
            phase.scheduled[correlation] = due
            task = asyncio.create_task(_post(connections, phase, correlation, due))
            posts.add(task)
            task.add_done_callback(posts.discard)
        while len(phase.arrived) < count and time.perf_counter() < phase.deadline:
            await asyncio.sleep(0.02)
    finally:
        for task in list(posts):
            task.cancel()
        await asyncio.gather(*posts, return_exceptions=True)
        connections.close()
    return phase


# ---- the open transactions ----------------------------------------------------------------------


async def _connect(url: str, database: str | None = None) -> asyncpg.Connection:
    kwargs = asyncpg_connect_kwargs(url)
    if database is not None:
        kwargs["database"] = database
    kwargs["server_settings"] = {**kwargs["server_settings"], "application_name": "bench-open-transaction"}
    return await asyncpg.connect(**kwargs, command_timeout=SQL_TIMEOUT)


async def open_in_app_database(url: str) -> asyncpg.Connection:
    connection = await _connect(url)
    await connection.execute("BEGIN")
    await connection.fetchval("SELECT pg_current_xact_id()")
    return connection


async def prepare_other_database(url: str) -> None:
    admin = await _connect(url, "postgres")
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", OTHER_DATABASE):
            await admin.execute(f"CREATE DATABASE {OTHER_DATABASE}")
    finally:
        await admin.close()
    other = await _connect(url, OTHER_DATABASE)
    try:
        await other.execute("CREATE TABLE IF NOT EXISTS held (id bigserial PRIMARY KEY, note text)")
    finally:
        await other.close()


async def open_in_other_database(url: str) -> asyncpg.Connection:
    connection = await _connect(url, OTHER_DATABASE)
    await connection.execute("BEGIN")
    await connection.execute("INSERT INTO held (note) VALUES ('open transaction')")
    return connection


async def describe_holder(url: str, holder: asyncpg.Connection) -> str:
    """What the server says the holding session is doing right now (read from another session)."""
    pid = holder.get_server_pid()
    monitor = await _connect(url)
    try:
        row = await monitor.fetchrow(
            "SELECT datname, state, backend_xid::text AS xid FROM pg_stat_activity WHERE pid = $1", pid
        )
    finally:
        await monitor.close()
    if row is None:
        return f"the holding session (pid {pid}) is gone"
    return f"holding session in {row['datname']}: {row['state']}, xid {row['xid']}"


# ---- scenarios ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    scenario: str
    phases: list[Phase] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failed: str | None = None


Opener = Callable[[str], Awaitable[asyncpg.Connection]]


def _percentile(phases: list[Phase], p: float) -> str:
    """Nearest rank over every posted command. Commands not delivered rank above all delivered
    ones, each at how long it had been awaited: a percentile that lands on them is a lower bound."""
    delivered = sorted(latency for phase in phases for latency in phase.latencies)
    missing = sorted(waited for phase in phases for waited in phase.missing_waited)
    total = len(delivered) + len(missing)
    if total == 0:
        return "-"
    rank = min(total - 1, int(total * p)) if p < 1 else total - 1
    if rank < len(delivered):
        return f"{delivered[rank] * 1000:.1f}"
    return f">{missing[rank - len(delivered)] * 1000:.0f}"


def _p99_ms(phases: list[Phase]) -> float:
    value = _percentile(phases, 0.99)
    return math.inf if value.startswith(">") or value == "-" else float(value)


def _summary(phase: Phase) -> str:
    rejected = sum(1 for status in phase.statuses.values() if status != 202)
    return (
        f"{len(phase.arrived)}/{len(phase.scheduled)} delivered, "
        f"p50 {_percentile([phase], 0.5)} ms, p99 {_percentile([phase], 0.99)} ms, "
        f"max {_percentile([phase], 1.0)} ms, POSTs not accepted {rejected}, "
        f"latest send {phase.send_lag * 1000:.1f} ms after schedule"
    )


async def run_scenario(
    name: str, url: str, env: dict[str, str], runs: int, seconds: float, opener: Opener | None
) -> Outcome:
    outcome = Outcome(name)
    port = free_port()
    app = ServerProcess(env, command=["run", "--host", "127.0.0.1", "--port", str(port)], port=port)
    holder: asyncpg.Connection | None = None
    reader: BearerSseReader | None = None
    reading: asyncio.Task[None] | None = None
    current: list[Phase] = []

    def on_data(data: str, at: float) -> None:
        if current:
            current[-1].on_data(data, at)

    async def open_stream() -> None:
        nonlocal reader, reading
        reader = BearerSseReader(port, {"tenantId": TENANT}, AUTH, on_data)
        reading = asyncio.create_task(reader.run())
        connected = asyncio.create_task(reader.connected.wait())
        await asyncio.wait({reading, connected}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        connected.cancel()
        if not reader.connected.is_set():
            reason = reading.exception() if reading.done() else "no answer in 10 s"
            raise RuntimeError(f"the event stream did not open: {reason}")

    try:
        await asyncio.to_thread(app.start, timeout=STARTUP_TIMEOUT)
        await open_stream()
        # Warm-up, not counted: first connections, caches, the worker's first claims. It runs
        # before any open transaction, and its events are awaited (bounded) so none spill over.
        warmup = await run_phase(port, WARMUP_SECONDS, current.append)
        current.clear()
        if len(warmup.arrived) < len(warmup.scheduled):
            outcome.notes.append(
                f"warm-up: only {len(warmup.arrived)}/{len(warmup.scheduled)} delivered in time"
            )
        if opener is not None:
            holder = await opener(url)
            outcome.notes.append(f"before the load: {await describe_holder(url, holder)}")
        for index in range(runs):
            assert reading is not None
            if reading.done():
                ended = reading.exception() if not reading.cancelled() else "cancelled"
                outcome.notes.append(f"run {index + 1}: the stream had ended ({ended}); reopened it")
                await open_stream()
            phase = await run_phase(port, seconds, current.append)
            current.clear()
            outcome.phases.append(phase)
            print(f"   run {index + 1}: {_summary(phase)}", flush=True)
        if holder is not None:
            outcome.notes.append(f"after the load: {await describe_holder(url, holder)}")
    except Exception as error:  # report the scenario as failed, and go on with the next one
        outcome.failed = f"{type(error).__name__}: {error}"
        print(f"   failed: {outcome.failed}", flush=True)
    finally:
        if holder is not None:
            with contextlib.suppress(Exception):
                await holder.execute("ROLLBACK")
            with contextlib.suppress(Exception):
                await holder.close(timeout=5)
        if reader is not None:
            reader.close()
        if reading is not None:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
        await asyncio.to_thread(app.stop)
    answers = Counter(s for phase in outcome.phases for s in phase.statuses.values() if s != 202)
    if answers:
        said = ", ".join(f"{'no answer' if s == -1 else s}: {n}" for s, n in sorted(answers.items()))
        outcome.notes.append(f"{answers.total()} POSTs were not answered 202 ({said})")
    lag = max((phase.send_lag for phase in outcome.phases), default=0.0)
    outcome.notes.append(f"latest send after its scheduled time: {lag * 1000:.1f} ms")
    return outcome


def print_table(outcomes: list[Outcome]) -> None:
    headers = ("scenario", "commands", "delivered", "p50 ms", "p99 ms", "max ms", "met")
    table = []
    for o in outcomes:
        commands = sum(len(p.scheduled) for p in o.phases)
        delivered = sum(len(p.arrived) for p in o.phases)
        rejected = sum(1 for p in o.phases for s in p.statuses.values() if s != 202)
        met = (
            o.failed is None
            and commands > 0
            and delivered == commands
            and rejected == 0
            and _p99_ms(o.phases) <= GOAL_P99_MS
        )
        table.append(
            (
                o.scenario,
                str(commands),
                str(delivered),
                _percentile(o.phases, 0.5),
                _percentile(o.phases, 0.99),
                _percentile(o.phases, 1.0),
                "yes" if met else "NO",
            )
        )
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for t in table:
        print(" | ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)))
    print()
    if any(cell.startswith(">") for t in table for cell in t[3:6]):
        print("'>N': lands on commands not delivered in time, awaited N ms by then (a lower bound)")
    print(f"goal: p99 <= {GOAL_P99_MS:.0f} ms at {RATE:.0f} commands/s in every scenario")
    for o, t in zip(outcomes, table, strict=True):
        print(f"  {o.scenario}: {'met' if t[-1] == 'yes' else 'NOT met'}")
        if o.failed:
            print(f"    failed: {o.failed}")
        for note in o.notes:
            print(f"    {note}")


async def main(args: argparse.Namespace) -> None:
    runs, seconds = (1, 3.0) if args.quick else (3, 10.0)
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-live-"))
    folder.chmod(0o755)
    print(
        f"{runs} run(s) of {seconds:.0f} s per scenario at {RATE:.0f} commands/s; "
        f"events awaited until {GRACE:.0f} s after each run; fresh embedded PostgreSQL",
        flush=True,
    )
    outcomes: list[Outcome] = []
    try:
        server = await asyncio.to_thread(EmbeddedPostgres.ensure_started, folder / "pgdata")
        url = server.url()
        await asyncio.to_thread(upgrade_database, Settings(database_url=url))
        await prepare_other_database(url)
        env = {
            "DATABASE_URL": url,
            "AUTH_TOKENS": f"{TOKEN}=bench:admin@*",
            "MIGRATE_ON_START": "false",
            "LOG_LEVEL": "WARNING",
            "WORKER_ENABLED": "true",
            "WORKER_FAKE_DELAY_MS": "0",
            "SSE_PING_SECONDS": "1",
        }
        scenarios: list[tuple[str, Opener | None]] = [
            ("quiet", None),
            ("open transaction, same database", open_in_app_database),
            ("open transaction, other database", open_in_other_database),
        ]
        for name, opener in scenarios:
            print(f"== {name}", flush=True)
            started = time.monotonic()
            outcomes.append(await run_scenario(name, url, env, runs, seconds, opener))
            print(f"   ({time.monotonic() - started:.0f} s)", flush=True)
    finally:
        await asyncio.to_thread(EmbeddedPostgres.stop_all)
        shutil.rmtree(folder, ignore_errors=True)
    print_table(outcomes)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s per scenario")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_arguments()))
