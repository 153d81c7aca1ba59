"""The log format: JSON lines for a service's output, the console rendering on a terminal."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from app.config import Settings
from app.lib.logging import FastLogger, configure_logging


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque>"


class _Stderr(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def _access_line(monkeypatch: pytest.MonkeyPatch, terminal: bool, **env: str) -> str:
    stderr = _Stderr(terminal)
    monkeypatch.setattr("sys.stderr", stderr)
    configure_logging(Settings.from_env(env))
    FastLogger("app.access").info("request", status=201, run_id=uuid.UUID(int=7), odd=_Opaque())
    return stderr.getvalue()


def test_by_default_a_service_writes_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    line = json.loads(_access_line(monkeypatch, terminal=False))

    assert line["event"] == "request"
    assert line["status"] == 201
    assert line["level"] == "info"
    assert line["logger"] == "app.access"
    assert line["run_id"] == str(uuid.UUID(int=7))
    assert line["odd"] == "<opaque>"  # what JSON cannot say is written as its repr()
    assert line["timestamp"].endswith("Z")


def test_by_default_a_terminal_gets_the_console_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    line = _access_line(monkeypatch, terminal=True)

    assert "[info" in line
    assert "status=201" in line


@pytest.mark.parametrize(("terminal", "log_format"), [(True, "json"), (False, "console")])
def test_log_format_overrides_the_guess(
    monkeypatch: pytest.MonkeyPatch, terminal: bool, log_format: str
) -> None:
    line = _access_line(monkeypatch, terminal=terminal, LOG_FORMAT=log_format)

    assert line.startswith("{") is (log_format == "json")
