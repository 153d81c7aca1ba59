"""``scriptworks run`` with DATABASE_URL unset: its own PostgreSQL, kept across restarts."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.server import ServerProcess

HEADERS = {"Authorization": "Bearer dev", "x-tenant-id": "acme"}


@pytest.fixture
def data_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-run-"))
    folder.chmod(0o755)
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _postmaster_running(pgdata: Path) -> bool:
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return False
    pid = int(pidfile.read_text().splitlines()[0])
    return psutil.pid_exists(pid)


def _serve(data_dir: Path) -> ServerProcess:
    env = {"DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING", "WORKER_FAKE_DELAY_MS": "0"}
    return ServerProcess(env, unset=("DATABASE_URL", "AUTH_TOKENS")).start(timeout=120)


def test_run_without_database_url_uses_embedded_postgres_that_keeps_data(data_dir: Path) -> None:
    first = _serve(data_dir)
    try:
        created = httpx.post(
            f"{first.url}/scripts", json={"name": "Kept", "slug": "kept"}, headers=HEADERS, timeout=10
        )
        assert created.status_code == 201, created.text
        assert _postmaster_running(data_dir / "pgdata")
    finally:
        assert first.stop() is not None

    assert not _postmaster_running(data_dir / "pgdata"), "the database must stop with the app"

    second = _serve(data_dir)
    try:
        listed = httpx.get(f"{second.url}/scripts", headers=HEADERS, timeout=10).json()["items"]
        assert [s["slug"] for s in listed] == ["kept"]
    finally:
        second.stop()
    assert not _postmaster_running(data_dir / "pgdata")


def test_run_recovers_after_being_killed(data_dir: Path) -> None:
    first = _serve(data_dir)
    first.kill()  # SIGKILL: no cleanup at all; PostgreSQL keeps running, stale pids stay behind

    second = _serve(data_dir)
    try:
        assert httpx.get(f"{second.url}/scripts", headers=HEADERS, timeout=10).status_code == 200
    finally:
        second.stop()
    assert not _postmaster_running(data_dir / "pgdata"), "a clean stop after a crash still stops the database"
