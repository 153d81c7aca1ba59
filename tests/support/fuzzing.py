"""Property-based fuzzing of a running server with schemathesis, driven by ``openapi.yaml``.

Shared by the short run in the test suite and the long run in ``bench/stress.py``. A run:

1. seeds the tenant through the public API (scripts with versions, runs, a command) so that
   generated requests reach real rows: their ids and cursors become schemathesis dictionaries
   that path and query parameters draw from (with a probability, so unknown ids still come up);
2. runs ``schemathesis run`` on ``openapi.yaml`` with a valid token and tenant, checking that no
   response is a server error and that every response (status, content type, body) is one the
   document describes, and that data the document calls invalid is rejected;
3. optionally runs a second pass with hostile header values (``tests.support.hostile_headers``).

``GET /events/stream`` is left out: it never ends, and its own tests (``test_event_stream``,
``test_hostile_input``) cover its parameters.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "admin-token"
EXCLUDED_PATHS = ("/events/stream",)
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
GRAPH = {
    "nodes": [
        {"id": "greet", "type": "say", "text": "Hello"},
        {"id": "pause", "type": "wait"},
        {"id": "confirm", "type": "closedQuestion"},
        {"id": "choose", "type": "multipleChoice"},
        {"id": "summary", "type": "report"},
        {"id": "check", "type": "statusCheck"},
    ],
    "edges": [
        {"source": a, "target": b}
        for a, b in itertools.pairwise(["greet", "pause", "confirm", "choose", "summary", "check"])
    ],
}


@dataclass
class FuzzResult:
    """What one schemathesis run did: cases sent, failures by kind, and its console output."""

    cases: int
    failures: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    exit_code: int
    output: str
    server_errors: int = 0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors


def seed(base_url: str, tenant: str) -> dict[str, list[str]]:
    """Rows of every kind in ``tenant``, made through the API; returns their ids by parameter."""
    headers = {"Authorization": f"Bearer {TOKEN}", "x-tenant-id": tenant}
    ids: dict[str, list[str]] = {"script": [], "run": [], "correlation": [], "cursor": []}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:

        def ok(response: httpx.Response) -> dict[str, Any]:
            assert response.status_code < 300, response.text
            return response.json()

        for n in range(3):
            script = ok(client.post("/scripts", json={"name": f"Seed {n}", "slug": f"seed-{n}"}))
            ids["script"].append(script["id"])
            for _ in range(2):
                ok(client.post(f"/scripts/{script['id']}/versions", json={"graphJson": GRAPH}))
            ok(client.post(f"/scripts/{script['id']}/versions/1/publish"))
            for _ in range(2):
                run = ok(client.post("/runs", json={"scriptId": script["id"], "version": 1}))
                ids["run"].append(run["id"])
            ok(client.post(f"/runs/{ids['run'][-1]}/finish", json={"status": "SUCCEEDED"}))
            command = ok(
                client.post(
                    "/commands",
                    json={"command": "Contacts.UpsertAndLink.v1", "actor": {"userId": "u-1"}},
                )
            )
            ids["correlation"].append(command["correlationId"])
        for path in ("/scripts", "/runs", "/audit", f"/scripts/{ids['script'][0]}/audit"):
            cursor = ok(client.get(path, params={"limit": 1}))["nextCursor"]
            if cursor:
                ids["cursor"].append(cursor)
    return ids


def _config(ids: dict[str, list[str]], probability: float) -> str:
    """A schemathesis config: real ids and cursors as dictionaries for the matching parameters."""
    lines = []
    bindings = {
        "script": ["path.script_id", "query.scriptId"],
        "run": ["path.run_id"],
        "correlation": ["path.correlation_id"],
        "cursor": ["query.cursor"],
    }
    for name, values in ids.items():
        if values:
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for name, parameters in bindings.items():
        if ids.get(name):
            for parameter in parameters:
                lines.append(f'"{parameter}" = {{ dictionary = "{name}", probability = {probability} }}')
    return "\n".join(lines) + "\n"


def run_schemathesis(
    base_url: str,
    tenant: str,
    work_dir: Path,
    *,
    max_examples: int,
    phases: str = "examples,coverage,fuzzing",
    hostile_headers: bool = False,
    ids: dict[str, list[str]] | None = None,
    max_time: float | None = None,
    seed_value: int | None = None,
    timeout: float = 600,
) -> FuzzResult:
    """``schemathesis run openapi.yaml`` against ``base_url``; returns what it found."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "schemathesis.toml"
    config.write_text(_config(ids or {}, probability=0.7))
    report_dir = work_dir / f"report-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        str(ROOT / "openapi.yaml"),
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        phases,
        "--max-examples",
        str(max_examples),
        "--workers",
        "1",  # the coverage phase is not thread-safe on Python 3.11 (ast.parse in threads)
        "--no-shrink",
        "--suppress-health-check",
        "all",
        "--report",
        "json",
        "--report-dir",
        str(report_dir),
        "--request-timeout",
        "30",
    ]
    for path in EXCLUDED_PATHS:
        command += ["--exclude-path", path]
    env = {**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false", "FUZZ_TENANT": tenant}
    if hostile_headers:
        env["SCHEMATHESIS_HOOKS"] = "tests.support.hostile_headers"
    else:
        command += ["--header", f"x-tenant-id: {tenant}"]
    if max_time is not None:
        command += ["--max-time", str(int(max_time))]
    if seed_value is not None:
        command += ["--seed", str(seed_value)]
    finished = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = finished.stdout + finished.stderr
    reports = sorted(report_dir.glob("*.json"))
    report = json.loads(reports[-1].read_text()) if reports else {}
    failures = report.get("failures", [])
    return FuzzResult(
        cases=report.get("test_cases", {}).get("generated", 0),
        failures=failures,
        errors=report.get("errors", []),
        exit_code=finished.returncode,
        output=output,
        server_errors=sum(f.get("count", 0) for f in failures if f.get("type") == "ServerError"),
        report=report,
    )
