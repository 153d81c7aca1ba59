"""HTTP rules that only a real server over a real socket can show."""

from __future__ import annotations

import asyncio

import httpx

from tests.support.api import assert_error, new_tenant
from tests.support.server import ServerProcess


def _headers() -> dict[str, str]:
    return {
        "Authorization": "Bearer admin-token",
        "x-tenant-id": new_tenant(),
        "Content-Type": "application/json",
    }


async def test_streamed_body_over_limit_without_length_is_payload_too_large(
    live_server: ServerProcess,
) -> None:
    async def chunks():
        for _ in range(6):
            yield b" " * (1024 * 1024)

    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        response = await client.post("/scripts", content=chunks(), headers=_headers())

    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


async def test_declared_length_over_limit_is_refused_before_the_body_is_read(
    live_server: ServerProcess,
) -> None:
    # A raw socket: the client announces 64 MiB but sends two bytes, and the answer still comes.
    reader, writer = await asyncio.open_connection("127.0.0.1", live_server.port)
    head = (
        "POST /scripts HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer admin-token\r\n"
        f"x-tenant-id: {new_tenant()}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {64 * 1024 * 1024}\r\n\r\n{{}}"
    )
    writer.write(head.encode())
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    writer.close()

    assert status_line.startswith(b"HTTP/1.1 413")


async def test_live_server_answers_the_smoke_flow(live_server: ServerProcess) -> None:
    headers = _headers()
    async with httpx.AsyncClient(base_url=live_server.url, headers=headers, timeout=30) as client:
        script = (await client.post("/scripts", json={"name": "Live", "slug": "live"})).json()
        await client.post(f"/scripts/{script['id']}/versions", json={"graphJson": {"nodes": [], "edges": []}})
        await client.post(f"/scripts/{script['id']}/versions/1/publish")
        fetched = (await client.get(f"/scripts/{script['id']}")).json()

    assert fetched["activeVersion"]["version"] == 1
    assert fetched["status"] == "PUBLISHED"
