"""The Node tools that check openapi.yaml from a client's side, installed once per test session
into a temporary folder at pinned versions (nothing is cached in the repository)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "@redocly/cli@2.77.0",
    "openapi-typescript@7.13.0",
    "openapi-fetch@0.17.0",
    "typescript@5.9.3",
)
# Neither tool may phone home or nag during a test run.
NODE_ENV = {
    **os.environ,
    "REDOCLY_TELEMETRY": "off",
    "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true",
    "NO_COLOR": "1",
}


@dataclass(frozen=True)
class NodeTools:
    folder: Path

    def bin(self, name: str) -> str:
        return str(self.folder / "node_modules" / ".bin" / name)

    def run(self, *command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=cwd, env=NODE_ENV, capture_output=True, text=True, timeout=120, check=False
        )


@pytest.fixture(scope="session")
def node_tools(tmp_path_factory: pytest.TempPathFactory) -> NodeTools:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the contract checks need Node.js and npm")
    folder = tmp_path_factory.mktemp("node-tools")
    installed = subprocess.run(
        [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
        env=NODE_ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert installed.returncode == 0, f"npm install failed:\n{installed.stdout}\n{installed.stderr}"
    return NodeTools(folder)
