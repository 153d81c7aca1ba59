"""Builders for run tests: a script whose version graph has one node of every step type."""

from __future__ import annotations

import itertools
from typing import Any

from tests.support.api import Api

# One node per step type, chained in this order.
NODES = [
    {"id": "greet", "type": "say"},
    {"id": "pause", "type": "wait"},
    {"id": "confirm", "type": "closedQuestion"},
    {"id": "choose", "type": "multipleChoice"},
    {"id": "summary", "type": "report"},
    {"id": "check", "type": "statusCheck"},
]
GRAPH = {
    "nodes": NODES,
    "edges": [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(NODES)],
}


async def script_with_version(api: Api, graph: dict[str, Any] | None = None) -> tuple[str, int]:
    script = await api.create_script()
    version = await api.create_version(script["id"], graph if graph is not None else GRAPH)
    return script["id"], version["version"]


async def start_run(api: Api, script_id: str | None = None, version: int | None = None, **body: Any):
    if script_id is None:
        script_id, version = await script_with_version(api)
    response = await api.post("/runs", json={"scriptId": script_id, "version": version or 1, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def get_run(api: Api, run_id: str) -> dict[str, Any]:
    response = await api.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()
