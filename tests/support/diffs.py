"""Reading a version diff backwards, to check that b -> a is the exact inverse of a -> b."""

from __future__ import annotations

from typing import Any


def inverse(diff: dict[str, Any]) -> dict[str, Any]:
    """The diff read backwards: added and removed swap, from and to swap, order is kept."""

    def flip(changes: dict[str, Any]) -> dict[str, Any]:
        return {key: {"from": c["to"], "to": c["from"]} for key, c in changes.items()}

    variables = diff["variablesDef"]
    replaced = variables["replaced"]
    return {
        "scriptId": diff["scriptId"],
        "fromVersion": diff["toVersion"],
        "toVersion": diff["fromVersion"],
        "nodes": {
            "added": diff["nodes"]["removed"],
            "removed": diff["nodes"]["added"],
            "changed": [{**n, "changes": flip(n["changes"])} for n in diff["nodes"]["changed"]],
        },
        "edges": {
            "added": diff["edges"]["removed"],
            "removed": diff["edges"]["added"],
            "changed": [{**e, "changes": flip(e["changes"])} for e in diff["edges"]["changed"]],
        },
        "variablesDef": {
            "added": variables["removed"],
            "removed": variables["added"],
            "changed": flip(variables["changed"]),
            "replaced": replaced and {"from": replaced["to"], "to": replaced["from"]},
        },
        "graphFields": flip(diff["graphFields"]),
    }
