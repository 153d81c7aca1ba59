"""Settings: defaults, parsing, and clear errors for bad values."""

from __future__ import annotations

import re
from pathlib import Path

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
    assert settings.log_format == "auto"


def test_plain_postgres_urls_get_the_asyncpg_driver() -> None:
    for raw in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+asyncpg://u@h/db"):
        assert Settings.from_env({"DATABASE_URL": raw}).database_url == "postgresql+asyncpg://u@h/db"


def test_fake_delay_accepts_a_number_or_a_range() -> None:
    assert Settings.from_env({"WORKER_FAKE_DELAY_MS": "0"}).worker_fake_delay_ms == (0, 0)
    assert Settings.from_env({"WORKER_FAKE_DELAY_MS": "10-20"}).worker_fake_delay_ms == (10, 20)


def test_auth_tokens_map_tokens_to_principals_with_roles_and_tenants() -> None:
    settings = Settings.from_env(
        {"AUTH_TOKENS": "t1=alice:admin|editor@acme|globex, t2=svc@*, t3=v:viewer@acme"}
    )

    alice, svc, viewer = (settings.auth_tokens[t] for t in ("t1", "t2", "t3"))
    assert (alice.id, alice.roles, alice.tenants) == ("alice", {"admin", "editor"}, {"acme", "globex"})
    assert (svc.roles, svc.tenants) == (frozenset(), None)
    assert svc.may_act_in("anything")
    assert alice.may_act_in("globex")
    assert not alice.may_act_in("initech")
    assert viewer.tenants == {"acme"}
    assert "nope" not in settings.auth_tokens


def test_without_auth_configured_authentication_is_in_development_mode() -> None:
    assert Settings.from_env({}).development_auth
    assert not Settings.from_env({"AUTH_TOKENS": "t=a:admin@*"}).development_auth
    assert not Settings.from_env({"AUTH_JWT_SECRET": "s" * 32}).development_auth


@pytest.mark.parametrize(
    ("entries", "fragment"),
    [
        ("tok-1=alice:admin@acme, secret-tok=bob:editor", "entry 2 (actor 'bob') grants no tenant"),
        ("secret-tok=bob:editor@", "entry 1 (actor 'bob') grants no tenant"),
        ("secret-tok=bob:wizard@acme", "unknown roles ['wizard']"),
        ("secret-tok=bob:admin@acme|*", "@* grants every tenant"),
        ("secret-tok=bob:admin@acme|bad tenant", "must look like"),
        ("secret-tok=bob:admin@a/b", "invalid tenant ids"),
        ("secret-tok=bob:admin@*,secret-tok=carol:admin@*", "repeats a token"),
    ],
)
def test_a_bad_auth_tokens_entry_is_named_without_its_token(entries: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)) as error:
        Settings.from_env({"AUTH_TOKENS": entries})

    assert "secret-tok" not in str(error.value)


def test_jwt_settings_are_checked_at_start(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')

    assert Settings.from_env({"AUTH_JWT_JWKS": str(jwks)}).auth_jwt_jwks == str(jwks.resolve())
    assert Settings.from_env({"AUTH_JWT_JWKS": "https://idp.example/jwks"}).auth_jwt_jwks.startswith("https:")
    with pytest.raises(ConfigError, match="AUTH_JWT_JWKS"):
        Settings.from_env({"AUTH_JWT_JWKS": str(tmp_path / "missing.json")})
    with pytest.raises(ConfigError, match="AUTH_JWT_SECRET: expected `str` of length >= 32") as error:
        Settings.from_env({"AUTH_JWT_SECRET": "short"})
    assert "short" not in str(error.value)  # a secret is never echoed, not even a bad one


def test_cors_origins_are_split_on_commas() -> None:
    settings = Settings.from_env({"CORS_ORIGINS": "http://a.example, http://b.example"})

    assert settings.cors_origins == ("http://a.example", "http://b.example")


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("MAX_BODY_BYTES", "lots", "MAX_BODY_BYTES"),
        ("MAX_BODY_BYTES", "10", "MAX_BODY_BYTES='10': expected `int` >= 1024"),
        ("WORKER_FAKE_DELAY_MS", "20-10", "WORKER_FAKE_DELAY_MS"),
        ("WORKER_FAKE_DELAY_MS", "soon", "WORKER_FAKE_DELAY_MS"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("AUTH_TOKENS", "no-equals-sign", "AUTH_TOKENS"),
        ("TENANT_LIMITS", "{not json", "TENANT_LIMITS"),
        ("TENANT_LIMITS", '{"acme": {"reads": 10}}', "TENANT_LIMITS: invalid enum value 'reads'"),
        ("TENANT_LIMITS", '{"acme": {"commands": 0}}', "TENANT_LIMITS: expected `int` >= 1"),
        ("RATE_LIMIT_STORE_URL", "http://cache:6379", "RATE_LIMIT_STORE_URL"),
        ("RATE_LIMIT_WRITES_PER_MINUTE", "0", "RATE_LIMIT_WRITES_PER_MINUTE"),
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
    assert "configuration error: MAX_BODY_BYTES='lots': expected `int`, got `str`" in result.stderr
