"""Checking reported steps against the run's version graph.

Versions are immutable, so the node types of a version's graph are cached per process, keyed by
version id: a runner posting steps batch after batch costs no graph read after its first batch.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from app.domain.runs.schemas import StepIn
from app.domain.runs.step_data import data_fits_step, expected_data_type

__all__ = ["NodeTypeCache", "node_types_of", "step_problems"]


def node_types_of(nodes: Any) -> dict[str, str]:
    """``{node id: node type}`` of a graph's ``nodes`` (validated when the version was saved)."""
    if not isinstance(nodes, list):
        return {}
    return {
        node["id"]: node["type"]
        for node in nodes
        if isinstance(node, dict) and isinstance(node.get("id"), str) and isinstance(node.get("type"), str)
    }


class NodeTypeCache:
    """A small LRU of version id -> node types; entries never go stale because versions never change."""

    def __init__(self, max_versions: int = 512) -> None:
        self._max = max_versions
        self._entries: OrderedDict[uuid.UUID, dict[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version_id: uuid.UUID) -> dict[str, str] | None:
        with self._lock:
            found = self._entries.get(version_id)
            if found is not None:
                self._entries.move_to_end(version_id)
            return found

    def put(self, version_id: uuid.UUID, node_types: dict[str, str]) -> None:
        with self._lock:
            self._entries[version_id] = node_types
            self._entries.move_to_end(version_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def step_problems(steps: Sequence[StepIn], node_types: dict[str, str]) -> list[dict[str, str]]:
    """Every way the steps disagree with the graph, each as ``{field, code, message}``; empty if none."""
    problems: list[dict[str, str]] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append({"field": field, "code": code, "message": message})

    for index, step in enumerate(steps):
        where = f"[{index}]"
        node_type = node_types.get(step.node_id)
        if node_type is None:
            problem(
                f"{where}.nodeId", "NODE_NOT_IN_VERSION", f"no node {step.node_id!r} in the run's version"
            )
        elif node_type != step.step_type:
            problem(
                f"{where}.stepType",
                "STEP_TYPE_MISMATCH",
                f"node {step.node_id!r} is of type {node_type!r}, not {step.step_type!r}",
            )
        if step.next_node_id is not None and step.next_node_id not in node_types:
            problem(
                f"{where}.nextNodeId",
                "NODE_NOT_IN_VERSION",
                f"no node {step.next_node_id!r} in the run's version",
            )
        if not data_fits_step(step.step_type, step.data):
            expected = expected_data_type(step.step_type)
            tag = type(step.data).__struct_config__.tag
            problem(
                f"{where}.data.dataType",
                "STEP_DATA_MISMATCH",
                f"a {step.step_type} step takes "
                + (f"{expected!r} data" if expected else "no data")
                + f", not {tag!r}",
            )
    return problems
