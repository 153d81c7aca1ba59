"""A small HTTP/1.1 client on raw asyncio sockets, for the measures that send at a steady rate
or hold thousands of streams (command → SSE latency, live delivery, fair queue).

Throughput is measured with ``wrk`` (``bench/wrk.py``): a closed loop in Python costs ~0.1 ms of
CPU per request on the cores it shares with the server. Requests here are pre-encoded bytes,
connections are kept alive, and a response is read by its Content-Length.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LoadResult", "encode_request", "run_load"]


def encode_request(
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    host: str = "127.0.0.1",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    port: int,
    make_request: Callable[[int], bytes],
    deadline: float,
    result: LoadResult,
    counter: list[int],
    expect: set[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline:
            counter[0] += 1
            request = make_request(counter[0])
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            result.latencies.append(time.perf_counter() - started)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status not in expect:
                result.errors += 1
    finally:
        writer.close()


async def run_load(
    port: int,
    make_request: Callable[[int], bytes],
    *,
    seconds: float,
    connections: int = 32,
    expect: set[int] | None = None,
    warmup: float = 1.0,
) -> LoadResult:
    """Run ``connections`` keep-alive clients for ``warmup`` then ``seconds``; report the latter."""
    expect = expect or {200, 201, 202}
    counter = [0]
    if warmup > 0:
        await asyncio.gather(
            *(
                _connection(port, make_request, time.perf_counter() + warmup, LoadResult(), counter, expect)
                for _ in range(connections)
            )
        )
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_connection(port, make_request, deadline, result, counter, expect) for _ in range(connections))
    )
    result.seconds = time.perf_counter() - started
    return result
