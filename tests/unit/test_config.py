"""Settings: defaults, parsing, and clear errors for bad values."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings


def test_defaults_match_the_documented_ones() -> None:
    settings = Settings.from_env({})

    assert settings.database_url is None
    assert settings.uses_embedded_database
    assert settings.max_body_bytes == 5 * 1024 * 1024
    assert settings.sse_ping_seconds == 30
    assert settings.worker_poll_seconds == 1
    assert settings.worker_fake_delay_ms == (1000, 2000)
    assert settings.idempotency_ttl_hours == 24
    assert settings.log_format == "console"


def test_plain_postgres_urls_get_the_asyncpg_driver() -> None:
    for raw in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+asyncpg://u@h/db"):
        assert Settings.from_env({"DATABASE_URL": raw}).database_url == "postgresql+asyncpg://u@h/db"


def test_fake_delay_accepts_a_number_or_a_range() -> None:
    assert Settings.from_env({"WORKER_FAKE_DELAY_MS": "0"}).worker_fake_delay_ms == (0, 0)
    assert Settings.from_env({"WORKER_FAKE_DELAY_MS": "10-20"}).worker_fake_delay_ms == (10, 20)


def test_auth_tokens_map_tokens_to_actors_and_roles() -> None:
    settings = Settings.from_env({"AUTH_TOKENS": "t1=alice:admin|editor, t2=svc"})

    assert settings.actor_for_token("t1").id == "alice"
    assert settings.actor_for_token("t1").roles == {"admin", "editor"}
    assert settings.actor_for_token("t2").roles == frozenset()
    assert settings.actor_for_token("nope") is None


def test_without_auth_tokens_every_token_is_the_dev_admin() -> None:
    actor = Settings.from_env({}).actor_for_token("whatever")

    assert actor is not None
    assert (actor.id, actor.is_admin) == ("dev", True)


def test_cors_origins_are_split_on_commas() -> None:
    settings = Settings.from_env({"CORS_ORIGINS": "http://a.example, http://b.example"})

    assert settings.cors_origins == ("http://a.example", "http://b.example")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("MAX_BODY_BYTES", "lots", "MAX_BODY_BYTES"),
        ("MAX_BODY_BYTES", "10", "at least"),
        ("WORKER_FAKE_DELAY_MS", "20-10", "WORKER_FAKE_DELAY_MS"),
        ("WORKER_FAKE_DELAY_MS", "soon", "WORKER_FAKE_DELAY_MS"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("AUTH_TOKENS", "no-equals-sign", "AUTH_TOKENS"),
        ("SSE_PING_SECONDS", "-1", "SSE_PING_SECONDS"),
        ("WORKER_ENABLED", "perhaps", "WORKER_ENABLED"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        Settings.from_env({name: value})


def test_bad_config_stops_the_cli_with_a_clear_message() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MAX_BODY_BYTES": "lots"}
    result = subprocess.run([sys.executable, "-m", "app", "--help"], env=env, capture_output=True, text=True)

    assert result.returncode == 2
    assert "configuration error: MAX_BODY_BYTES must be an integer" in result.stderr
