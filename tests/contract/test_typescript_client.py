"""A TypeScript client built on openapi.yaml compiles under `tsc --strict`, and covers every
operation: the types openapi-typescript generates from the document are what a client builds on."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from tests.contract.conftest import ROOT, NodeTools

CLIENT = Path(__file__).with_name("client.ts")
METHODS = ("get", "put", "post", "delete", "patch")


def test_the_typed_client_compiles_against_the_generated_types(node_tools: NodeTools, tmp_path: Path) -> None:
    generated = node_tools.run(
        node_tools.bin("openapi-typescript"), "openapi.yaml", "--output", str(tmp_path / "openapi.d.ts")
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    shutil.copy(CLIENT, tmp_path / "client.ts")
    # openapi-fetch is resolved from the installed tools, as a project's own dependency would be.
    (tmp_path / "node_modules").symlink_to(node_tools.folder / "node_modules")

    compiled = node_tools.run(
        node_tools.bin("tsc"),
        "--strict",
        "--noEmit",
        "--target",
        "es2022",
        "--module",
        "esnext",
        "--moduleResolution",
        "bundler",
        "--lib",
        "es2022,dom",
        "client.ts",
        cwd=tmp_path,
    )

    assert compiled.returncode == 0, compiled.stdout + compiled.stderr


def test_the_typed_client_calls_every_operation() -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    client = CLIENT.read_text()
    called = set(re.findall(r'client\.(GET|PUT|POST|DELETE|PATCH)\("([^"]+)"', client))

    missing = [
        f"{method.upper()} {path} ({operation['operationId']})"
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS and (method.upper(), path) not in called
    ]

    assert missing == [], "tests/contract/client.ts has no function for these operations"
