"""Load for fault and soak runs: paced request streams, resuming SSE readers, process sampling.

Shared by the fault tests (small sizes) and ``bench/stress.py`` (full sizes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import psutil
from httpx_sse import SSEError, aconnect_sse

from tests.support.api import ADMIN_TOKEN
from tests.support.runs import GRAPH

COMPLETION = "Contacts.Upserted.v1"


def headers(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}", "x-tenant-id": tenant}


def command(correlation_id: str, **payload: Any) -> dict[str, Any]:
    return {
        "command": "Contacts.UpsertAndLink.v1",
        "correlationId": correlation_id,
        "actor": {"userId": "load"},
        "payload": payload,
    }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Outcome:
    kind: str
    status: int  # 0 when the request itself failed (connection refused, timeout)
    seconds: float
    key: str = ""
    at: float = 0.0


@dataclass
class Recorder:
    """Every request's outcome, for counts and latency percentiles."""

    outcomes: list[Outcome] = field(default_factory=list)

    async def call(
        self, kind: str, key: str, request: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await request()
        except httpx.HTTPError:
            self.outcomes.append(Outcome(kind, 0, time.monotonic() - started, key, started))
            return None
        self.outcomes.append(Outcome(kind, response.status_code, time.monotonic() - started, key, started))
        return response

    def count(self, accept: Callable[[Outcome], bool]) -> int:
        return sum(1 for o in self.outcomes if accept(o))

    def latencies(self, accept: Callable[[Outcome], bool] = lambda o: True) -> list[float]:
        return [o.seconds for o in self.outcomes if accept(o)]


async def paced(
    rate: float,
    total: int | None,
    duration: float | None,
    launch: Callable[[int], Awaitable[Any]],
    *,
    max_in_flight: int = 64,
    until: Callable[[], bool] | None = None,
) -> int:
    """Start ``launch(i)`` at a steady ``rate`` per second (a slow answer does not delay the next
    start) for ``total`` requests or ``duration`` seconds (or, given ``until``, as long as it
    answers False), and wait for all of them; returns how many were started. At most
    ``max_in_flight`` run at once: past that the client waits rather than pile up requests (an
    HTTP client's pool degrades badly with thousands queued)."""
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[Any]] = set()

    async def run(i: int) -> None:
        try:
            await launch(i)
        finally:
            slots.release()

    started = time.monotonic()
    i = 0

    def going() -> bool:
        if until is not None:
            return not until()
        return (total is None or i < total) and (duration is None or time.monotonic() - started < duration)

    while going():
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        task = asyncio.create_task(run(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.gather(*tasks)
    return i


class ResumingReader:
    """An SSE client of one tenant that drops its connection every so often and resumes with
    ``Last-Event-ID``, as a browser's EventSource does; it records every event it receives."""

    def __init__(
        self,
        base_url: str,
        tenant: str,
        *,
        resume_every: tuple[int, int] = (20, 200),
        event: str | None = COMPLETION,
    ) -> None:
        self.base_url = base_url
        self.event = event
        self.tenant = tenant
        self.resume_every = resume_every
        self.ids: list[int] = []
        self.correlations: Counter[str] = Counter()
        self.connections = 0
        self.last_id: int | None = None
        self.frames_at: list[float] = []

    @property
    def duplicates(self) -> int:
        return len(self.ids) - len(set(self.ids))

    def missing(self, expected: set[str]) -> set[str]:
        return expected - set(self.correlations)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(10, read=30)) as client:
            while not stop.is_set():
                extra = {"Last-Event-ID": str(self.last_id)} if self.last_id is not None else {}
                params = ({"event": self.event} if self.event else {}) | (
                    {} if self.last_id is not None else {"since": "0"}
                )
                budget = random.randint(*self.resume_every)
                try:
                    async with aconnect_sse(
                        client, "GET", "/events/stream", params=params, headers=headers(self.tenant) | extra
                    ) as source:
                        self.connections += 1
                        async for frame in source.aiter_sse():
                            if stop.is_set():
                                return
                            if frame.event in ("ping", "message") or not frame.id:
                                continue
                            self.last_id = int(frame.id)
                            self.ids.append(self.last_id)
                            self.correlations[json.loads(frame.data)["correlationId"]] += 1
                            self.frames_at.append(time.monotonic())
                            budget -= 1
                            if budget <= 0:
                                break  # drop the connection and resume from the last id
                except (httpx.HTTPError, SSEError, json.JSONDecodeError):
                    await asyncio.sleep(0.1)


class RssSampler:
    """The resident memory of a process (and its children), sampled every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 2.0) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.samples: list[tuple[float, float]] = []  # (seconds since start, MiB)

    def rss_mib(self) -> float:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total / 2**20

    async def run(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        while not stop.is_set():
            self.samples.append((time.monotonic() - started, self.rss_mib()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.every):
                    await stop.wait()
        self.samples.append((time.monotonic() - started, self.rss_mib()))

    def at(self, seconds: float) -> float:
        return next((mib for t, mib in self.samples if t >= seconds), self.samples[-1][1])


async def outbox_counts(connection: asyncpg.Connection) -> dict[str, int]:
    rows = await connection.fetch("SELECT status, count(*) AS n FROM commands GROUP BY status")
    return {r["status"]: r["n"] for r in rows}


async def completions(connection: asyncpg.Connection, tenant: str) -> Counter[str]:
    rows = await connection.fetch(
        "SELECT correlation_id, count(*) AS n FROM events WHERE tenant_id = $1 AND event = $2 GROUP BY 1",
        tenant,
        COMPLETION,
    )
    return Counter({r["correlation_id"]: r["n"] for r in rows})


class MixedTraffic:
    """Requests of every kind a tenant makes, built on what earlier requests created."""

    def __init__(self, client: httpx.AsyncClient, recorder: Recorder) -> None:
        self.client = client
        self.recorder = recorder
        self.scripts: list[str] = []
        self.runs: list[str] = []
        self.commands: list[str] = []

    async def setup(self) -> None:
        for _ in range(3):
            await self.new_script()

    async def new_script(self) -> None:
        slug = f"soak-{uuid.uuid4().hex[:12]}"
        response = await self.recorder.call(
            "POST /scripts", slug, lambda: self.client.post("/scripts", json={"name": slug, "slug": slug})
        )
        if response is not None and response.status_code == 201:
            script_id = response.json()["id"]
            made = await self.recorder.call(
                "POST versions",
                script_id,
                lambda: self.client.post(f"/scripts/{script_id}/versions", json={"graphJson": GRAPH}),
            )
            if made is not None and made.status_code == 201:
                self.scripts.append(script_id)

    async def step(self, i: int) -> None:
        kind = i % 12
        script_id = random.choice(self.scripts) if self.scripts else None
        run_id = random.choice(self.runs[-50:]) if self.runs else None
        call = self.recorder.call
        c = self.client
        if kind == 0 or script_id is None:
            await self.new_script()
        elif kind == 1:
            await call(
                "POST versions",
                script_id,
                lambda: c.post(f"/scripts/{script_id}/versions", json={"graphJson": GRAPH}),
            )
        elif kind == 2:
            await call("POST publish", script_id, lambda: c.post(f"/scripts/{script_id}/versions/1/publish"))
        elif kind == 3:
            response = await call(
                "POST /runs", script_id, lambda: c.post("/runs", json={"scriptId": script_id, "version": 1})
            )
            if response is not None and response.status_code == 201:
                self.runs.append(response.json()["id"])
        elif kind == 4 and run_id:
            await call(
                "POST vars",
                run_id,
                lambda: c.post(f"/runs/{run_id}/vars", json=[{"key": f"k{i % 7}", "numVal": i}]),
            )
        elif kind == 5 and run_id:
            step = {"nodeId": "greet", "stepType": "say", "executedAt": "2026-01-01T00:00:00.000Z"}
            await call("POST steps", run_id, lambda: c.post(f"/runs/{run_id}/steps", json=[step]))
        elif kind == 6:
            correlation_id = f"soak-{uuid.uuid4().hex}"
            response = await call(
                "POST /commands", correlation_id, lambda: c.post("/commands", json=command(correlation_id))
            )
            if response is not None and response.status_code == 202:
                self.commands.append(correlation_id)
        elif kind == 7:
            await call("GET script", script_id, lambda: c.get(f"/scripts/{script_id}"))
        elif kind == 8:
            await call("GET /scripts", "", lambda: c.get("/scripts", params={"limit": 20}))
        elif kind == 9:
            await call("GET /runs", "", lambda: c.get("/runs", params={"scriptId": script_id, "limit": 20}))
        elif kind == 10 and run_id:
            await call("GET run", run_id, lambda: c.get(f"/runs/{run_id}"))
        else:
            await call("GET /audit", "", lambda: c.get("/audit", params={"limit": 20}))
