"""openapi.yaml passes `redocly lint` with its recommended rules; what redocly.yaml turns off, it
says why."""

from __future__ import annotations

import json

from tests.contract.conftest import ROOT, NodeTools


def test_openapi_yaml_has_no_lint_errors_or_warnings(node_tools: NodeTools) -> None:
    linted = node_tools.run(
        node_tools.bin("redocly"),
        "lint",
        "openapi.yaml",
        "--config",
        str(ROOT / "redocly.yaml"),
        "--format",
        "json",
    )

    report = json.loads(linted.stdout)
    assert report["totals"]["errors"] == 0, linted.stdout
    assert report["totals"]["warnings"] == 0, linted.stdout
    assert linted.returncode == 0, linted.stderr
