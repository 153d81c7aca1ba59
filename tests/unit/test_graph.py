"""graphJson structural rules."""

from __future__ import annotations

import pytest

from app.domain.scripts.graph import graph_problems, validate_graph
from app.lib.errors import Unprocessable


def test_empty_graph_is_valid() -> None:
    assert graph_problems({"nodes": [], "edges": []}) == []


def test_extra_keys_are_allowed_anywhere() -> None:
    graph = {"nodes": [{"id": "a", "type": "say", "x": 1}], "edges": [], "meta": {"v": 2}}

    assert graph_problems(graph) == []


def test_edges_must_name_existing_nodes() -> None:
    graph = {"nodes": [{"id": "a", "type": "say"}], "edges": [{"source": "a", "target": "b"}]}

    assert graph_problems(graph) == [{"path": "$.edges[0].target", "message": "names no node: 'b'"}]


def test_empty_node_id_and_type_are_rejected() -> None:
    problems = graph_problems({"nodes": [{"id": "", "type": ""}], "edges": []})

    assert {p["path"] for p in problems} == {"$.nodes[0].id", "$.nodes[0].type"}


def test_validate_raises_graph_invalid_with_details() -> None:
    with pytest.raises(Unprocessable) as raised:
        validate_graph({"nodes": "x", "edges": []})

    assert raised.value.code == "GRAPH_INVALID"
    assert raised.value.details == [{"path": "$.nodes", "message": "must be an array of node objects"}]
