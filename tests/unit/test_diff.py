"""Version diff rules: nodes by id, edges by (source, target, id) as a multiset, variablesDef, the rest."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.domain.scripts.diff import compare, diff_edges, diff_fields, diff_nodes, diff_variables
from tests.support.diffs import inverse

SCRIPT_ID = uuid.UUID("0190b5a0-0000-7000-8000-000000000001")


@dataclass
class Version:
    version: int
    graph_json: dict[str, Any]
    variables_def: Any = None
    script_id: uuid.UUID = field(default=SCRIPT_ID)


def as_json(value: Any) -> Any:
    return msgspec.to_builtins(value)


BEFORE = Version(
    1,
    {
        "nodes": [
            {"id": "start", "type": "say", "text": "Hi"},
            {"id": "ask", "type": "closedQuestion", "timeout": 30},
            {"id": "old", "type": "wait"},
        ],
        "edges": [
            {"source": "start", "target": "ask"},
            {"source": "ask", "target": "old", "label": "no"},
            {"id": "e1", "source": "start", "target": "old", "weight": 1},
        ],
        "layout": {"zoom": 1},
        "meta": {"author": "alice"},
    },
    {"name": {"type": "string"}, "legacy": {"type": "bool"}, "age": {"type": "int"}},
)
AFTER = Version(
    2,
    {
        "nodes": [
            {"id": "new", "type": "report"},
            {"id": "start", "type": "say", "text": "Hello"},
            {"id": "ask", "type": "closedQuestion", "hint": "yes or no"},
        ],
        "edges": [
            {"source": "start", "target": "ask"},
            {"source": "ask", "target": "new"},
            {"id": "e1", "source": "start", "target": "new", "weight": 1},
        ],
        "layout": {"zoom": 2},
        "meta": {"author": "alice"},
    },
    {"name": {"type": "string", "required": True}, "age": {"type": "int"}, "phone": {"type": "string"}},
)
EXPECTED = {
    "scriptId": str(SCRIPT_ID),
    "fromVersion": 1,
    "toVersion": 2,
    "nodes": {
        "added": [{"id": "new", "type": "report"}],
        "removed": [{"id": "old", "type": "wait"}],
        "changed": [
            {
                "id": "ask",
                "changes": {"hint": {"from": None, "to": "yes or no"}, "timeout": {"from": 30, "to": None}},
            },
            {"id": "start", "changes": {"text": {"from": "Hi", "to": "Hello"}}},
        ],
    },
    "edges": {
        "added": [
            {"source": "ask", "target": "new"},
            {"id": "e1", "source": "start", "target": "new", "weight": 1},
        ],
        "removed": [
            {"source": "ask", "target": "old", "label": "no"},
            {"id": "e1", "source": "start", "target": "old", "weight": 1},
        ],
        "changed": [],
    },
    "variablesDef": {
        "added": {"phone": {"type": "string"}},
        "removed": {"legacy": {"type": "bool"}},
        "changed": {"name": {"from": {"type": "string"}, "to": {"type": "string", "required": True}}},
        "replaced": None,
    },
    "graphFields": {"layout": {"from": {"zoom": 1}, "to": {"zoom": 2}}},
}


def test_every_kind_of_change_is_reported_exactly() -> None:
    assert as_json(compare(BEFORE, AFTER)) == EXPECTED


def test_reverse_diff_is_the_exact_inverse() -> None:
    forward = as_json(compare(BEFORE, AFTER))
    backward = as_json(compare(AFTER, BEFORE))

    assert backward == inverse(forward)
    assert inverse(backward) == forward


def test_same_version_gives_an_empty_diff() -> None:
    assert as_json(compare(BEFORE, BEFORE)) == {
        "scriptId": str(SCRIPT_ID),
        "fromVersion": 1,
        "toVersion": 1,
        "nodes": {"added": [], "removed": [], "changed": []},
        "edges": {"added": [], "removed": [], "changed": []},
        "variablesDef": {"added": {}, "removed": {}, "changed": {}, "replaced": None},
        "graphFields": {},
    }


def test_node_order_and_object_key_order_do_not_matter() -> None:
    before = [{"id": "a", "type": "say", "data": {"x": 1, "y": 2}}, {"id": "b", "type": "wait"}]
    after = [{"type": "wait", "id": "b"}, {"data": {"y": 2, "x": 1}, "type": "say", "id": "a"}]

    assert as_json(diff_nodes(before, after)) == {"added": [], "removed": [], "changed": []}


def test_lists_are_sorted_by_node_id_whatever_the_graph_order() -> None:
    after = [{"id": "c", "type": "say"}, {"id": "a", "type": "say"}, {"id": "b", "type": "say"}]

    assert [n["id"] for n in as_json(diff_nodes([], after))["added"]] == ["a", "b", "c"]


def test_values_compare_as_json_so_true_is_not_one_but_one_is_one_point_zero() -> None:
    assert as_json(diff_fields({"v": 1, "w": 2}, {"v": True, "w": 2.0})) == {"v": {"from": 1, "to": True}}


def test_explicit_null_versus_absent_key_is_a_change_shown_as_null_to_null() -> None:
    assert as_json(diff_fields({"note": None}, {})) == {"note": {"from": None, "to": None}}


def test_node_type_change_is_a_field_change() -> None:
    changed = as_json(diff_nodes([{"id": "a", "type": "say"}], [{"id": "a", "type": "wait"}]))["changed"]

    assert changed == [{"id": "a", "changes": {"type": {"from": "say", "to": "wait"}}}]


def test_edge_with_same_key_and_other_changes_is_changed() -> None:
    before = [{"source": "a", "target": "b", "label": "yes"}]
    after = [{"source": "a", "target": "b", "label": "no", "color": "red"}]

    assert as_json(diff_edges(before, after)) == {
        "added": [],
        "removed": [],
        "changed": [
            {
                "source": "a",
                "target": "b",
                "id": None,
                "changes": {"color": {"from": None, "to": "red"}, "label": {"from": "yes", "to": "no"}},
            }
        ],
    }


def test_edge_id_is_part_of_the_key() -> None:
    before = [{"id": "e1", "source": "a", "target": "b"}]
    after = [{"id": "e2", "source": "a", "target": "b"}]

    diff = as_json(diff_edges(before, after))

    assert (diff["added"], diff["removed"], diff["changed"]) == (after, before, [])


def test_explicit_null_edge_id_is_the_same_key_as_no_id() -> None:
    diff = as_json(diff_edges([{"source": "a", "target": "b", "id": None}], [{"source": "a", "target": "b"}]))

    assert diff == {"added": [], "removed": [], "changed": []}


def test_reordered_edges_are_unchanged() -> None:
    edges = [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}, {"source": "a", "target": "b"}]

    assert as_json(diff_edges(edges, list(reversed(edges)))) == {"added": [], "removed": [], "changed": []}


def test_parallel_duplicate_edges_count_as_a_multiset() -> None:
    edge = {"source": "a", "target": "b"}

    more = as_json(diff_edges([edge], [edge, edge, edge]))
    fewer = as_json(diff_edges([edge, edge], [edge]))

    assert (more["added"], more["removed"]) == ([edge, edge], [])
    assert (fewer["added"], fewer["removed"]) == ([], [edge])


def test_parallel_edges_cancel_identical_ones_first_then_pair_in_order() -> None:
    before = [
        {"source": "a", "target": "b", "label": "x"},
        {"source": "a", "target": "b", "label": "keep"},
    ]
    after = [
        {"source": "a", "target": "b", "label": "keep"},
        {"source": "a", "target": "b", "label": "y"},
        {"source": "a", "target": "b", "label": "z"},
    ]

    diff = as_json(diff_edges(before, after))

    assert diff["changed"] == [
        {"source": "a", "target": "b", "id": None, "changes": {"label": {"from": "x", "to": "y"}}}
    ]
    assert diff["added"] == [{"source": "a", "target": "b", "label": "z"}]
    assert diff["removed"] == []


def test_parallel_edge_changes_are_mirrored_in_the_reverse_diff() -> None:
    before = Version(1, {"nodes": [], "edges": [{"source": "a", "target": "b", "w": n} for n in (3, 1)]})
    after = Version(2, {"nodes": [], "edges": [{"source": "a", "target": "b", "w": n} for n in (2, 4)]})

    forward = as_json(compare(before, after))

    assert [e["changes"]["w"] for e in forward["edges"]["changed"]] == [
        {"from": 1, "to": 4},
        {"from": 3, "to": 2},
    ]
    assert as_json(compare(after, before)) == inverse(forward)


def test_variables_both_objects_are_compared_key_by_key() -> None:
    diff = as_json(diff_variables({"a": 1, "b": 2, "c": 3}, {"b": 2, "c": 4, "d": 5}))

    assert diff == {
        "added": {"d": 5},
        "removed": {"a": 1},
        "changed": {"c": {"from": 3, "to": 4}},
        "replaced": None,
    }


def test_variables_of_other_shapes_are_replaced_whole_when_they_differ() -> None:
    assert as_json(diff_variables(None, {"a": 1}))["replaced"] == {"from": None, "to": {"a": 1}}
    assert as_json(diff_variables(["a"], ["a", "b"]))["replaced"] == {"from": ["a"], "to": ["a", "b"]}
    assert as_json(diff_variables({"a": 1}, ["a"])) == {
        "added": {},
        "removed": {},
        "changed": {},
        "replaced": {"from": {"a": 1}, "to": ["a"]},
    }
    assert as_json(diff_variables(["a"], ["a"]))["replaced"] is None
    assert as_json(diff_variables(None, None))["replaced"] is None


def test_other_graph_keys_are_compared_but_not_nodes_or_edges() -> None:
    before = Version(1, {"nodes": [], "edges": [], "layout": {"zoom": 1}, "title": "A"})
    after = Version(2, {"nodes": [{"id": "n", "type": "say"}], "edges": [], "theme": "dark", "title": "A"})

    assert as_json(compare(before, after))["graphFields"] == {
        "layout": {"from": {"zoom": 1}, "to": None},
        "theme": {"from": None, "to": "dark"},
    }
