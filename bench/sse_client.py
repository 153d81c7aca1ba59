"""A minimal SSE reader on a raw socket, cheap enough to hold thousands of streams at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlencode

__all__ = ["SseReader"]


class SseReader:
    """Reads one stream; calls ``on_data(data_text, received_at)`` for every non-ping frame."""

    def __init__(self, port: int, params: dict[str, str], on_data: Callable[[str, float], None]) -> None:
        self.port = port
        self.params = params
        self.on_data = on_data
        self.connected = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer = writer
        request = f"GET /events/stream?{urlencode(self.params)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head[:200])
        self.connected.set()
        event = b""
        data = b""
        while True:
            line = await reader.readline()
            if not line:
                return
            # Chunked transfer encoding: skip the chunk-size lines (hex digits only).
            stripped = line.rstrip(b"\r\n")
            if stripped.startswith(b"event: "):
                event = stripped[7:]
            elif stripped.startswith(b"data: "):
                data = stripped[6:]
            elif stripped == b"":
                if data and event != b"ping":
                    self.on_data(data.decode(), time.perf_counter())
                event = data = b""

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
