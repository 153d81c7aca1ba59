"""Property-based fuzzing of every operation in openapi.yaml against a real server: no server
errors, and every answer is one the document describes. A short run; bench/stress.py runs the
long one (10,000+ cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.api import new_tenant
from tests.support.fuzzing import FuzzResult, run_schemathesis, seed
from tests.support.server import ServerProcess

# A fixed seed keeps the short run reproducible; bench/stress.py draws a new one every time.
SEED = 20261122


def explain(result: FuzzResult) -> str:
    return f"failures: {result.failures}\nerrors: {result.errors}\n{result.output[-20000:]}"


@pytest.fixture(scope="module")
def seeded(live_server: ServerProcess) -> tuple[str, dict[str, list[str]]]:
    tenant = new_tenant()
    return tenant, seed(live_server.url, tenant)


def test_every_operation_answers_as_documented_with_valid_auth_and_tenant(
    live_server: ServerProcess, seeded: tuple[str, dict[str, list[str]]], tmp_path: Path
) -> None:
    tenant, ids = seeded

    result = run_schemathesis(
        live_server.url,
        tenant,
        tmp_path,
        max_examples=5,
        phases="examples,coverage,fuzzing",
        ids=ids,
        seed_value=SEED,
    )

    assert result.ok, explain(result)
    assert result.cases > 1000, explain(result)
    assert result.server_errors == 0


def test_hostile_header_values_get_documented_answers(
    live_server: ServerProcess, seeded: tuple[str, dict[str, list[str]]], tmp_path: Path
) -> None:
    tenant, ids = seeded

    result = run_schemathesis(
        live_server.url,
        tenant,
        tmp_path,
        max_examples=5,
        phases="fuzzing",
        hostile_headers=True,
        ids=ids,
        seed_value=SEED,
    )

    assert result.ok, explain(result)
    assert result.cases > 100, explain(result)
