"""What changed from one version of a script to another: a pure comparison, no I/O.

The rules, which make ``compare(a, b)`` and ``compare(b, a)`` exact inverses (added and removed
swap, ``from`` and ``to`` swap, every list keeps its order):

- Values are compared as JSON: ``true`` differs from ``1``, ``1`` equals ``1.0``, key order inside
  objects does not matter.
- **Nodes** are identified by ``id``. Nodes only in the later version are ``added`` and nodes only
  in the earlier one ``removed``, both in full. A node in both whose top-level keys differ is
  ``changed``, with ``{from, to}`` for each differing key. A key present on one side only is a
  change, and the side without it shows ``null``; so a key that is explicitly ``null`` on one
  side and absent on the other shows as ``{from: null, to: null}``.
- **Edges** are identified by the key ``(source, target, id)``, with ``id`` null when the edge has
  none (an explicit ``"id": null`` is the same as no id). Parallel edges may share a key, so the
  edges under one key are compared as a multiset: identical edges cancel out first, the rest are
  paired in their order in the graph; a pair is ``changed`` (keys other than source, target and
  id, compared like node keys), an unpaired edge is ``added`` or ``removed``.
- **variablesDef**: when both sides are objects, keys ``added``, ``removed`` and ``changed``;
  otherwise, when they differ, ``replaced`` holds both whole values.
- **graphFields**: the other top-level keys of ``graphJson`` (layout, metadata...), compared like
  node keys.
- Lists are sorted (nodes by id, edges by key then content) and object keys by name, so equal
  inputs always give byte-identical responses.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from typing import Any, Protocol

from app.domain.scripts.schemas import (
    EdgeChange,
    EdgesDiff,
    NodeChange,
    NodesDiff,
    ValueChange,
    VariablesDiff,
    VersionDiff,
)

__all__ = ["VersionContent", "compare", "diff_edges", "diff_fields", "diff_nodes", "diff_variables"]

_EDGE_IDENTITY = frozenset({"source", "target", "id"})
_GRAPH_STRUCTURE = frozenset({"nodes", "edges"})


class VersionContent(Protocol):
    """The parts of a version that are compared (a ``ScriptVersion`` row is one)."""

    @property
    def script_id(self) -> uuid.UUID: ...
    @property
    def version(self) -> int: ...
    @property
    def graph_json(self) -> dict[str, Any]: ...
    @property
    def variables_def(self) -> Any: ...


def compare(before: VersionContent, after: VersionContent) -> VersionDiff:
    """Everything that changed from ``before`` to ``after``."""
    return VersionDiff(
        script_id=after.script_id,
        from_version=before.version,
        to_version=after.version,
        nodes=diff_nodes(_list(before.graph_json, "nodes"), _list(after.graph_json, "nodes")),
        edges=diff_edges(_list(before.graph_json, "edges"), _list(after.graph_json, "edges")),
        variables_def=diff_variables(before.variables_def, after.variables_def),
        graph_fields=diff_fields(before.graph_json, after.graph_json, skip=_GRAPH_STRUCTURE),
    )


def diff_fields(
    before: dict[str, Any], after: dict[str, Any], *, skip: Iterable[str] = ()
) -> dict[str, ValueChange]:
    """Top-level keys whose values differ, or that one side lacks (shown as null there)."""
    changes: dict[str, ValueChange] = {}
    for key in sorted((before.keys() | after.keys()) - set(skip)):
        if key in before and key in after and _same(before[key], after[key]):
            continue
        changes[key] = ValueChange(from_=before.get(key), to=after.get(key))
    return changes


def diff_nodes(before: list[Any], after: list[Any]) -> NodesDiff:
    old, new = _nodes_by_id(before), _nodes_by_id(after)
    changed = []
    for node_id in sorted(old.keys() & new.keys()):
        changes = diff_fields(old[node_id], new[node_id], skip=("id",))
        if changes:
            changed.append(NodeChange(id=node_id, changes=changes))
    return NodesDiff(
        added=[new[node_id] for node_id in sorted(new.keys() - old.keys())],
        removed=[old[node_id] for node_id in sorted(old.keys() - new.keys())],
        changed=changed,
    )


def diff_edges(before: list[Any], after: list[Any]) -> EdgesDiff:
    old, new = _edges_by_key(before), _edges_by_key(after)
    added: list[dict[str, Any]] = []
    removed: list[dict[str, Any]] = []
    changed: list[tuple[tuple[str, ...], EdgeChange]] = []
    for key in old.keys() | new.keys():
        old_left, new_left = _cancel_identical(old.get(key, []), new.get(key, []))
        for old_edge, new_edge in zip(old_left, new_left, strict=False):
            changes = diff_fields(old_edge, new_edge, skip=_EDGE_IDENTITY)
            if changes:
                # Sorting on the unordered pair keeps b -> a the mirror image of a -> b.
                order = (*_edge_order(old_edge), *sorted((_text(old_edge), _text(new_edge))))
                change = EdgeChange(
                    source=new_edge.get("source"),
                    target=new_edge.get("target"),
                    id=new_edge.get("id"),
                    changes=changes,
                )
                changed.append((order, change))
        removed.extend(old_left[len(new_left) :])
        added.extend(new_left[len(old_left) :])
    return EdgesDiff(
        added=sorted(added, key=_edge_and_content_order),
        removed=sorted(removed, key=_edge_and_content_order),
        changed=[change for _, change in sorted(changed, key=lambda item: item[0])],
    )


def diff_variables(before: Any, after: Any) -> VariablesDiff:
    if isinstance(before, dict) and isinstance(after, dict):
        return VariablesDiff(
            added={key: after[key] for key in sorted(after.keys() - before.keys())},
            removed={key: before[key] for key in sorted(before.keys() - after.keys())},
            changed={
                key: ValueChange(from_=before[key], to=after[key])
                for key in sorted(before.keys() & after.keys())
                if not _same(before[key], after[key])
            },
            replaced=None,
        )
    replaced = None if _same(before, after) else ValueChange(from_=before, to=after)
    return VariablesDiff(added={}, removed={}, changed={}, replaced=replaced)


# ---- helpers ---------------------------------------------------------------------------------


def _list(graph: dict[str, Any], key: str) -> list[Any]:
    value = graph.get(key)
    return value if isinstance(value, list) else []


def _nodes_by_id(nodes: list[Any]) -> dict[str, dict[str, Any]]:
    return {node["id"]: node for node in nodes if isinstance(node, dict) and isinstance(node.get("id"), str)}


def _edges_by_key(edges: list[Any]) -> dict[Hashable, list[dict[str, Any]]]:
    grouped: dict[Hashable, list[dict[str, Any]]] = defaultdict(list)
    for edge in edges:
        if isinstance(edge, dict):
            key = tuple(_canonical(edge.get(part)) for part in ("source", "target", "id"))
            grouped[key].append(edge)
    return grouped


def _cancel_identical(
    old: list[dict[str, Any]], new: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Drop the edges both sides share (as a multiset), the first occurrences on each side."""
    common = Counter(map(_canonical, old)) & Counter(map(_canonical, new))

    def left(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
        budget = Counter(common)
        kept = []
        for edge in edges:
            canonical = _canonical(edge)
            if budget[canonical] > 0:
                budget[canonical] -= 1
            else:
                kept.append(edge)
        return kept

    return left(old), left(new)


def _canonical(value: Any) -> Hashable:
    """A hashable form in which two values are equal exactly when they are the same JSON."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    if isinstance(value, dict):
        return ("object", tuple(sorted((key, _canonical(item)) for key, item in value.items())))
    return ("other", repr(value))


def _same(a: Any, b: Any) -> bool:
    return _canonical(a) == _canonical(b)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _edge_order(edge: dict[str, Any]) -> tuple[str, ...]:
    return tuple(_sortable(edge.get(part)) for part in ("source", "target", "id"))


def _edge_and_content_order(edge: dict[str, Any]) -> tuple[str, ...]:
    return (*_edge_order(edge), _text(edge))


def _sortable(value: Any) -> str:
    # Strings sort as themselves; anything else (a numeric id, no id) after them by its JSON text.
    return "0" + value if isinstance(value, str) else "1" + _text(value)
