"""The committed openapi.yaml is exactly what the app generates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

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


def test_every_post_documents_the_idempotency_headers() -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    posts = {path: item["post"] for path, item in spec["paths"].items() if "post" in item}

    without_key = [
        path
        for path, operation in posts.items()
        if not any(
            p["in"] == "header" and p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])
        )
    ]
    without_replayed = [
        (path, status)
        for path, operation in posts.items()
        for status, response in operation["responses"].items()
        if status.startswith("2") and "Idempotent-Replayed" not in response.get("headers", {})
    ]
    others_with_key = [
        (path, method)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "post"
        and any(p.get("name") == "Idempotency-Key" for p in operation.get("parameters", []))
    ]

    assert len(posts) >= 15
    assert without_key == []
    assert without_replayed == []
    assert others_with_key == []


def test_every_link_names_an_operation_and_parameters_it_takes() -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    parameters = {
        operation["operationId"]: {p["name"] for p in operation.get("parameters", [])}
        for item in spec["paths"].values()
        for operation in item.values()
    }
    links = [
        (operation["operationId"], name, link)
        for item in spec["paths"].values()
        for operation in item.values()
        for response in operation["responses"].values()
        for name, link in response.get("links", {}).items()
    ]

    wrong = [
        (source, name)
        for source, name, link in links
        if link["operationId"] not in parameters
        or not set(link["parameters"]) <= parameters[link["operationId"]]
    ]

    assert len(links) >= 30
    assert wrong == []


def test_error_answers_refer_to_the_shared_responses() -> None:
    spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
    shared = spec["components"]["responses"]
    inline = [
        (path, method, status)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if status[0] in "45"
        and response.get("$ref", "").removeprefix("#/components/responses/") not in shared
    ]

    assert inline == []
