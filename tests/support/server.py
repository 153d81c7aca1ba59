"""Real server processes for tests that need a real socket (streams, chunked bodies, signals)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m app run`` (or another ``app`` command, or another module) in a subprocess."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        command: Sequence[str] | None = None,
        port: int | None = None,
        unset: Sequence[str] = (),
        module: str = "app",
    ):
        self.module = module
        self.port = port or free_port()
        self.env = {**os.environ, **env}
        for name in ("LITESTAR_APP", *unset):
            self.env.pop(name, None)
        self.command = list(command or ["run", "--host", "127.0.0.1", "--port", str(self.port)])
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"scriptworks-test-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_for_health: bool = True, timeout: float = 60.0) -> ServerProcess:
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait_for_health:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def errors(self, limit: int = 3) -> list[str]:
        """The server's first ``limit`` error entries (each with the stack trace that follows it),
        for a failing assertion to show why the server answered a 500."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        found = re.finditer(r'\[error\s*\]|"level":\s*"error"|\bERROR\b', text)
        starts = [text.rfind("\n", 0, m.start()) + 1 for m in found][:limit]  # whole lines
        return [text[start : start + 2500] for start in starts]

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def _signal_group(self, signum: int) -> None:
        # `run --wc N` starts uvicorn as a child process: signal the whole session.
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self._signal_group(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            return self.process.wait(timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self._signal_group(signal.SIGKILL)
            self.process.wait(10)
