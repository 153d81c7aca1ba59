"""The committed openapi.yaml is exactly what the app generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_yaml_is_current(tmp_path: Path) -> None:
    generated = tmp_path / "openapi.yaml"

    subprocess.run(
        [sys.executable, "-m", "app", "schema", "openapi", "--output", str(generated)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )

    assert generated.read_text() == (ROOT / "openapi.yaml").read_text(), (
        "openapi.yaml is stale: run `scriptworks schema openapi --output openapi.yaml` and commit it"
    )
