"""``scriptworks seed runs`` / ``seed clean``: valid runs at scale, and exactly those removed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import asyncpg

from app.lib.db import asyncpg_connect_kwargs
from tests.support.api import Api
from tests.support.runs import script_with_version
from tests.support.server import ROOT


def scriptworks(database_url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url, "MIGRATE_ON_START": "false", "LOG_LEVEL": "WARNING"}
    env.pop("LITESTAR_APP", None)
    result = subprocess.run(
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


async def test_seed_loads_valid_runs_and_clean_removes_exactly_them(api: Api, database_url: str) -> None:
    tenant = api.tenant
    own_script, version = await script_with_version(api)
    own_run = (await api.post("/runs", json={"scriptId": own_script, "version": version})).json()

    output = scriptworks(
        database_url,
        "seed",
        "runs",
        "--count",
        "3000",
        "--tenant",
        tenant,
        "--scripts",
        "7",
        "--batch",
        "1000",
    )

    assert "loaded 3,000 runs" in output
    assert "SCHEDULED_TASK: 1,500" in output
    assert "EVENT_TRIGGER: 1,500" in output
    assert "constraint violations: 0" in output
    assert "3,000/3,000 runs" in output  # the progress bar reached the end
    scheduled = (await api.get("/runs", params={"triggerType": "SCHEDULED_TASK", "limit": 200})).json()
    assert len(scheduled["items"]) == 200
    assert all(r["scheduleId"] and r["plannedAt"] for r in scheduled["items"])
    # The newest event may be partly used; an older one started one run of each seeded script.
    triggered = (await api.get("/runs", params={"triggerType": "EVENT_TRIGGER", "limit": 50})).json()["items"]
    event_runs = (
        await api.get("/runs", params={"triggeringEventId": triggered[-1]["triggeringEventId"]})
    ).json()
    assert len(event_runs["items"]) == 7
    assert len({r["scriptId"] for r in event_runs["items"]}) == 7
    seeded_scripts = (await api.get("/scripts", params={"label": "scriptworks-seed", "limit": 200})).json()[
        "items"
    ]
    assert len(seeded_scripts) == 7
    assert all(s["status"] == "PUBLISHED" and s["activeVersionId"] for s in seeded_scripts)
    # Committed --batch rows at a time: three transactions wrote the 3,000 runs, never one long one.
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:
        writers = await connection.fetchval(
            "SELECT count(DISTINCT xmin::text) FROM runs WHERE tenant_id = $1 AND id <> $2",
            tenant,
            uuid.UUID(own_run["runId"]),
        )
    finally:
        await connection.close()
    assert writers == 3

    cleaned = scriptworks(database_url, "seed", "clean", "--tenant", tenant)

    assert "runs: 3,000" in cleaned
    assert "scripts: 7" in cleaned
    remaining = (await api.get("/runs", params={"limit": 200})).json()["items"]
    assert [r["id"] for r in remaining] == [own_run["runId"]]
    assert [s["id"] for s in (await api.get("/scripts")).json()["items"]] == [own_script]
