"""The measures of ``bench/run.py``, one coroutine each, every one next to its baseline."""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from bench.loadgen import LoadResult, encode_request, run_load
from tests.support.server import ServerProcess

__all__ = ["ALL", "Context"]


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

    def start_app(self, **env: str) -> ServerProcess:
        command = ["run", "--host", "127.0.0.1", "--port", "0", "--wc", str(self.workers)]
        process = ServerProcess({**self.env, **env}, command=command)
        process.command[4] = str(process.port)
        process.start(timeout=120)
        self.processes.append(process)
        return process

    def start_bare(self) -> ServerProcess:
        process = ServerProcess(
            self.env,
            module="uvicorn",
            command=[
                "--factory",
                "bench.bare_app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--workers",
                str(self.workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
        )
        process.command[5] = str(process.port)
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


async def _throughput(
    ctx: Context, port: int, make: Callable[[int], bytes], *, connections: int = 32
) -> tuple[float, LoadResult]:
    rates: list[float] = []
    last = LoadResult()
    for _ in range(ctx.repeat):
        last = await run_load(port, make, seconds=ctx.seconds, connections=connections)
        if last.errors:
            raise RuntimeError(f"{last.errors} unexpected answers: {last.statuses}")
        rates.append(last.rate)
    return statistics.median(rates), last


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
    try:
        script_id = await _fixture_script(ctx, app)
        auth = {k: v for k, v in ctx.headers.items()} | {"Content-Type": "application/json"}
        run_body = _json({"scriptId": script_id, "version": 1})
        run_request = encode_request("POST", "/runs", headers=auth, body=run_body)
        real, _ = await _throughput(ctx, app.port, lambda _n: run_request)
        base, _ = await _throughput(ctx, bare.port, lambda _n: run_request)
        rows.append(_row("POST /runs", ">= 2,200 req/s and >= 35% of bare", real, base, real >= 2200 and real >= 0.35 * base))

        def script_request(prefix: str) -> Callable[[int], bytes]:
            def make(n: int) -> bytes:
                body = _json({"name": f"Script {n}", "slug": f"{prefix}-{n}"})
                return encode_request("POST", "/scripts", headers=auth, body=body)

            return make

        real, _ = await _throughput(ctx, app.port, script_request("real"))
        base, _ = await _throughput(ctx, bare.port, script_request("bare"))
        rows.append(_row("POST /scripts (script+audit+event)", ">= 40% of bare insert", real, base, real >= 0.4 * base))

        get_request = encode_request("GET", f"/scripts/{script_id}", headers=ctx.headers)
        real, _ = await _throughput(ctx, app.port, lambda _n: get_request)
        base, _ = await _throughput(ctx, bare.port, lambda _n: get_request)
        rows.append(_row("GET /scripts/{id}", ">= 50% of bare select", real, base, real >= 0.5 * base))
    finally:
        ctx.stop(app)
        ctx.stop(bare)
    return rows


ALL: list[tuple[str, Callable[[Context], Awaitable[list[Any]]]]] = [
    ("http", http_writes_and_reads),
]
