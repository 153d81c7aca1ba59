"""HTTP load from ``wrk`` (a C load generator), and the CPU each process tree spent meanwhile.

Why wrk: on two shared cores the load generator must cost far less CPU than the server it
measures; a Python generator on the default asyncio loop spends ~0.1 ms of CPU per request, as
much as a tenth of what it measures. wrk is a Debian package (``apt-get install -y wrk``);
``ensure_wrk`` installs it when it is missing, and says so.

Each run is one ``wrk`` process: a Lua script sets the request (a fixed one, pre-built by wrk, or
one made per request when a body must be unique) and prints the summary as one JSON line. CPU is
read from ``/proc/<pid>/stat`` (user + system time of every process of a tree) before and after
the run; the load generator's own CPU is the ``wait4`` rusage of the wrk process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuMeter", "Request", "WrkResult", "ensure_wrk", "run_wrk", "tree_cpu_seconds"]

_TICKS = os.sysconf("SC_CLK_TCK")


def ensure_wrk() -> str:
    """The path of ``wrk``; installs the Debian package first when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing it with `apt-get install -y wrk`", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and `apt-get install -y wrk` did not install it")
    return found


# ---- CPU of process trees ----------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of one process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after its last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) spent so far by ``root`` and every live descendant."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                stats[int(entry)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0.0, [root]
    while pending:
        pid = pending.pop()
        if pid in stats:
            total += stats[pid][1]
        pending.extend(children.get(pid, ()))
    return total


@dataclass
class CpuMeter:
    """CPU of the server under test and of this bench's PostgreSQL (postmaster and its
    backends), sampled around a run."""

    app_pid: int
    postgres_pid: int

    def sample(self) -> tuple[float, float]:
        return tree_cpu_seconds(self.app_pid), tree_cpu_seconds(self.postgres_pid)


# ---- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request for wrk. ``{n}`` in ``body`` becomes a value unique across threads and runs."""

    method: str
    path: str
    headers: dict[str, str]
    body: str = ""

    @property
    def varies(self) -> bool:
        return "{n}" in self.body


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    app_cpu: float  # seconds
    postgres_cpu: float
    loadgen_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def per_request_us(self, cpu: float) -> float:
        return cpu / max(self.requests, 1) * 1e6

    def describe(self) -> str:
        return (
            f"{self.rate:,.0f} req/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms; CPU us/request: "
            f"app {self.per_request_us(self.app_cpu):,.0f}, PostgreSQL "
            f"{self.per_request_us(self.postgres_cpu):,.0f}, wrk {self.per_request_us(self.loadgen_cpu):,.0f}"
        )


def _lua(request: Request) -> str:
    lines = [f"wrk.method = {json.dumps(request.method)}", f"wrk.path = {json.dumps(request.path)}"]
    for name, value in request.headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    if request.varies:
        # One Lua state per wrk thread: the thread's number and a counter make the value unique,
        # the run's prefix (the script's argument) makes it unique across runs.
        lines += [
            "local counter = 0",
            "local prefix = 'r'",
            "local threads = 0",
            "function setup(thread) threads = threads + 1; thread:set('tid', threads) end",
            "function init(args) prefix = args[1] or prefix end",
            f"local template = {json.dumps(request.body)}",
            "request = function()",
            "  counter = counter + 1",
            "  local n = prefix .. '-' .. tostring(tid) .. '-' .. counter",
            "  local body = template:gsub('{n}', n)",
            "  return wrk.format(nil, nil, nil, body)",
            "end",
        ]
    elif request.body:
        lines.append(f"wrk.body = {json.dumps(request.body)}")
    lines += [
        "function done(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format(\'\\nWRK-JSON {"requests":%d,"duration_us":%d,"status":%d,'
        '"connect":%d,"read":%d,"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n\', '
        "summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout, "
        "latency:percentile(50), latency:percentile(99)))",
        "end",
    ]
    return "\n".join(lines) + "\n"


def run_wrk(
    port: int,
    request: Request,
    *,
    seconds: float,
    meter: CpuMeter,
    connections: int = 64,
    threads: int = 2,
    prefix: str = "r",
) -> WrkResult:
    """One wrk run against ``127.0.0.1:port`` (blocking); CPU sampled around it."""
    wrk = ensure_wrk()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(request))
    try:
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            f"http://127.0.0.1:{port}",
            "--",
            prefix,
        ]
        app_before, postgres_before = meter.sample()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert process.stdout is not None
        assert process.stderr is not None
        out = process.stdout.read().decode()
        err = process.stderr.read().decode()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        app_after, postgres_after = meter.sample()
    finally:
        os.unlink(script.name)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err or out}")
    line = next((x for x in out.splitlines() if x.startswith("WRK-JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out} {err}")
    summary = json.loads(line[len("WRK-JSON ") :])
    errors = sum(summary[k] for k in ("status", "connect", "read", "write", "timeout"))
    return WrkResult(
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
        app_cpu=app_after - app_before,
        postgres_cpu=postgres_after - postgres_before,
        loadgen_cpu=usage.ru_utime + usage.ru_stime,
    )


def settle(seconds: float = 0.5) -> None:
    """A pause between runs, so that one run's tail does not land in the next."""
    time.sleep(seconds)
