"""Structural validation of ``graphJson``: the rules SPEC.md section 4 states, nothing more.

A graph is an object with ``nodes`` (objects with a unique string ``id`` and a string ``type``) and
``edges`` (objects whose ``source`` and ``target`` name existing nodes). Everything else in it is
kept as sent. Problems are reported all at once, each with a JSONPath-like ``path``.
"""

from __future__ import annotations

from typing import Any

from app.lib.errors import Unprocessable

__all__ = ["graph_problems", "validate_graph"]


def graph_problems(graph: dict[str, Any]) -> list[dict[str, str]]:
    problems: list[dict[str, str]] = []

    def problem(path: str, message: str) -> None:
        problems.append({"path": path, "message": message})

    nodes = graph.get("nodes")
    edges = graph.get("edges")
    node_ids: set[str] = set()
    if not isinstance(nodes, list):
        problem("$.nodes", "must be an array of node objects")
    else:
        for index, node in enumerate(nodes):
            where = f"$.nodes[{index}]"
            if not isinstance(node, dict):
                problem(where, "must be an object")
                continue
            node_id = node.get("id")
            if not isinstance(node_id, str) or not node_id:
                problem(f"{where}.id", "must be a non-empty string")
            elif node_id in node_ids:
                problem(f"{where}.id", f"duplicate node id {node_id!r}")
            else:
                node_ids.add(node_id)
            if not isinstance(node.get("type"), str) or not node.get("type"):
                problem(f"{where}.type", "must be a non-empty string")
    if not isinstance(edges, list):
        problem("$.edges", "must be an array of edge objects")
    else:
        for index, edge in enumerate(edges):
            where = f"$.edges[{index}]"
            if not isinstance(edge, dict):
                problem(where, "must be an object")
                continue
            for end in ("source", "target"):
                value = edge.get(end)
                if not isinstance(value, str):
                    problem(f"{where}.{end}", "must be a string naming a node")
                elif isinstance(nodes, list) and value not in node_ids:
                    problem(f"{where}.{end}", f"names no node: {value!r}")
    return problems


def validate_graph(graph: dict[str, Any]) -> None:
    problems = graph_problems(graph)
    if problems:
        raise Unprocessable("graphJson is not a valid graph.", code="GRAPH_INVALID", details=problems)
