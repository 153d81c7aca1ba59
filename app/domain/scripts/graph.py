"""Structural validation of ``graphJson``: the rules SPEC.md section 4 states, nothing more.

A graph is an object with ``nodes`` (objects with a unique string ``id`` and a string ``type``) and
``edges`` (objects whose ``source`` and ``target`` name existing nodes). Everything else in it is
kept as sent. Problems are reported all at once, each with a JSONPath-like ``path``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from app.lib.errors import Unprocessable

__all__ = ["graph_problems", "validate_graph"]


def graph_problems(graph: dict[str, Any]) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []

    def problem(path: str, message: str) -> None:
        problems.append({"path": path, "message": message})

    def objects(key: str, kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Each object of the array at ``key`` with its path; reports what is not one."""
        items = graph.get(key)
        if not isinstance(items, list):
            problem(f"$.{key}", f"must be an array of {kind} objects")
            return
        for index, item in enumerate(items):
            where = f"$.{key}[{index}]"
            if isinstance(item, dict):
                yield where, item
            else:
                problem(where, "must be an object")

    nodes_listed = isinstance(graph.get("nodes"), list)
    node_ids: set[str] = set()
    for where, node in objects("nodes", "node"):
        node_id = node.get("id")
        if not isinstance(node_id, str) or not node_id:
            problem(f"{where}.id", "must be a non-empty string")
        elif node_id in node_ids:
            problem(f"{where}.id", f"duplicate node id {node_id!r}")
        else:
            node_ids.add(node_id)
        if not isinstance(node.get("type"), str) or not node.get("type"):
            problem(f"{where}.type", "must be a non-empty string")
    for where, edge in objects("edges", "edge"):
        for end in ("source", "target"):
            value = edge.get(end)
            if not isinstance(value, str):
                problem(f"{where}.{end}", "must be a string naming a node")
            elif nodes_listed and value not in node_ids:
                problem(f"{where}.{end}", f"names no node: {value!r}")
    return problems


def validate_graph(graph: dict[str, Any]) -> None:
    problems = graph_problems(graph)
    if problems:
        raise Unprocessable("graphJson is not a valid graph.", code="GRAPH_INVALID", details=problems)
