"""Settings: read from the environment once, validated, with a clear message on bad values.

Every knob docs/configuration.md documents lives here and nowhere else, with its default and
its constraint written once on the ``Settings`` struct; ``msgspec.convert`` reads the environment
into it (each variable is the field's name in upper case). ``get_settings()`` is cached; tests
that change the environment call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from app.lib.principals import ALL_TENANTS, ROLES, Principal

__all__ = ["ConfigError", "Settings", "get_settings"]

RATE_LIMIT_FAMILIES = ("commands", "events", "hooks", "writes")

Seconds = Annotated[float, Meta(ge=0.0)]
Positive = Annotated[int, Meta(ge=1)]
Days = Annotated[float, Meta(ge=0.0001)]
Secret = Annotated[str, Meta(min_length=32)]  # HS256 keys shorter than 32 bytes are guessable
Family = Literal["commands", "events", "hooks", "writes"]


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    data_dir: Path = Path(".scriptworks")
    migrate_on_start: bool = True
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 5 * 1024 * 1024
    sse_ping_seconds: Annotated[float, Meta(ge=0.05)] = 30.0
    worker_enabled: bool = True
    worker_poll_seconds: Annotated[float, Meta(ge=0.01)] = 1.0
    worker_fake_delay_ms: tuple[int, int] = (1000, 2000)
    worker_batch_size: Positive = 100
    tenant_max_in_flight: Positive | None = None  # per worker and tenant; 0 or unset: unlimited
    worker_lease_seconds: Annotated[float, Meta(ge=0.1)] = 30.0
    worker_max_attempts: Positive = 5
    handler_timeout_seconds: Annotated[float, Meta(ge=0.01)] = 300.0
    worker_retry_base_seconds: Seconds = 1.0
    worker_retry_max_seconds: Seconds = 300.0
    shutdown_grace_seconds: Seconds = 10.0
    worker_maintenance_seconds: Annotated[float, Meta(ge=0.1)] = 60.0
    worker_heartbeat_stale_seconds: Annotated[float, Meta(ge=0.5)] = 15.0
    ready_requires_worker: bool = False
    command_retention_days: Days = 30.0
    metrics_port: Positive | None = None  # 0 or unset: /metrics on the API port only
    metrics_top_tenants: Positive = 20
    idempotency_ttl_hours: Annotated[float, Meta(ge=0.001)] = 24.0
    auth_tokens: dict[str, Principal] = msgspec.field(default_factory=dict)
    auth_jwt_secret: Secret | None = None
    auth_jwt_jwks: str | None = None  # an http(s) URL, or the absolute path of a file
    auth_jwt_jwks_cooldown_seconds: Seconds = 30.0
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    auth_jwt_roles_claim: str = "roles"
    auth_jwt_tenants_claim: str = "tenants"
    auth_dev_mode: bool = False
    stream_ticket_seconds: Annotated[float, Meta(ge=1.0)] = 300.0
    stream_ticket_secret: Secret | None = None
    hook_max_body_bytes: Annotated[int, Meta(ge=1024)] = 256 * 1024
    max_schedules_per_script: Positive = 20
    max_subscriptions_per_tenant: Positive = 1000
    max_endpoints_per_tenant: Positive = 1000
    schedule_min_interval_seconds: Seconds = 60.0
    cors_origins: tuple[str, ...] = ()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # ``auto``: the console rendering on a terminal, JSON lines otherwise (a service's output).
    log_format: Literal["auto", "console", "json"] = "auto"
    db_pool_size: Positive = 10
    db_max_overflow: Annotated[int, Meta(ge=0)] = 10
    db_pool_timeout: Annotated[float, Meta(ge=0.1)] = 2.0
    run_retention_days: Days = 30.0
    event_retention_days: Days = 30.0
    scheduler_poll_seconds: Annotated[float, Meta(ge=0.01)] = 1.0
    scheduler_catch_up_seconds: Seconds = 60.0
    scheduler_max_attempts: Positive = 5
    scheduler_retry_base_seconds: Seconds = 1.0
    scheduler_retry_max_seconds: Seconds = 300.0
    # Per route family (writes: every POST, PUT, PATCH and DELETE outside the other three);
    # commands, events and hooks default to RATE_LIMIT_PER_MINUTE. TENANT_LIMITS overrides them
    # per tenant.
    rate_limit_per_minute: Positive = 6000
    rate_limit_commands_per_minute: Positive | None = None
    rate_limit_events_per_minute: Positive | None = None
    rate_limit_hooks_per_minute: Positive | None = None
    rate_limit_writes_per_minute: Positive = 60000
    tenant_limits: dict[Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")], dict[Family, Positive]] = (
        msgspec.field(default_factory=dict)
    )
    rate_limit_store_url: Annotated[str, Meta(pattern=r"^(redis|rediss|unix)://")] | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        raw: dict[str, Any] = {}
        for name in cls.__struct_fields__:
            value = env.get(name.upper(), "").strip()
            if value:
                parse = _PARSE.get(name)
                raw[name] = parse(value) if parse is not None else value
        try:
            return msgspec.convert(raw, cls, strict=False, dec_hook=_decode)
        except msgspec.ValidationError as error:
            raise ConfigError(_explain(str(error), raw)) from None

    @property
    def rate_limits_per_minute(self) -> dict[str, int]:
        """The limit of each route family (RATE_LIMIT_FAMILIES)."""
        shared = self.rate_limit_per_minute
        return {
            "commands": self.rate_limit_commands_per_minute or shared,
            "events": self.rate_limit_events_per_minute or shared,
            "hooks": self.rate_limit_hooks_per_minute or shared,
            "writes": self.rate_limit_writes_per_minute,
        }

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir.expanduser().resolve() / "pgdata"

    @property
    def uses_jwt(self) -> bool:
        return self.auth_jwt_secret is not None or self.auth_jwt_jwks is not None

    @property
    def development_auth(self) -> bool:
        """Neither static tokens nor JWT configured: any token is the dev admin of every tenant."""
        return not self.auth_tokens and not self.uses_jwt


def _decode(kind: type, value: Any) -> Any:
    """msgspec's ``dec_hook``: the two types it does not convert by itself (paths, and the
    principals ``_auth_tokens`` already built); anything else is refused as its protocol asks,
    by raising ``NotImplementedError`` (reported as a validation error naming the variable)."""
    if kind is Path:
        return Path(value)
    if kind is Principal and isinstance(value, Principal):
        return value
    raise NotImplementedError


# Secrets, or URLs that may carry one: an error names the variable, never its value.
_NEVER_SHOWN = frozenset({"auth_jwt_secret", "stream_ticket_secret", "database_url", "rate_limit_store_url"})


def _explain(message: str, raw: Mapping[str, Any]) -> str:
    """msgspec's ``Expected `int` >= 1024 - at `$.max_body_bytes``` as
    ``MAX_BODY_BYTES='10': expected `int` >= 1024``: the variable, its value, the rule."""
    problem, _, where = message.partition(" - at `")
    match = re.search(r"\$\.(\w+)", where)
    name = match.group(1) if match else ""
    value = raw.get(name)
    shown = f"={value!r}" if isinstance(value, str) and name not in _NEVER_SHOWN else ""
    return f"{name.upper()}{shown}: {problem[0].lower()}{problem[1:]}"


_TOKEN_ENTRY = re.compile(
    r"^(?P<token>[^=\s,]+)=(?P<actor>[^:@\s,]+)(?::(?P<roles>[^@\s,]*))?(?:@(?P<tenants>[^@\s,]*))?$"
)
_TENANT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _database_url(value: str | None) -> str | None:
    if value is None:
        return None
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+asyncpg://" + value.removeprefix(prefix)
    if not value.startswith("postgresql+asyncpg://"):
        raise ConfigError(
            "DATABASE_URL must be a PostgreSQL URL, e.g. postgresql+asyncpg://user:pass@host/db"
        )
    return value


def _delay_range(value: str | None) -> tuple[int, int]:
    if value is None:
        return (1000, 2000)
    match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", value)
    if not match:
        raise ConfigError(f"WORKER_FAKE_DELAY_MS must be a number or a range like 1000-2000, got {value!r}")
    low = int(match.group(1))
    high = int(match.group(2)) if match.group(2) is not None else low
    if high < low:
        raise ConfigError(f"WORKER_FAKE_DELAY_MS range must be low-high, got {value!r}")
    return (low, high)


def _auth_tokens(value: str | None) -> dict[str, Principal]:
    """``token=actorId:role1|role2@tenantA|tenantB`` entries (``@*``: every tenant).

    Errors name the entry by its position and actor, never by its token: start-up logs are read
    by more people than should hold the token.
    """
    if value is None:
        return {}
    tokens: dict[str, Principal] = {}
    entries = [e.strip() for e in value.split(",") if e.strip()]
    for position, entry in enumerate(entries, start=1):
        match = _TOKEN_ENTRY.match(entry)
        actor = entry.partition("=")[2].split(":")[0].split("@")[0] or "?"
        where = f"AUTH_TOKENS entry {position} (actor {actor!r})"
        if not match:
            raise ConfigError(f"{where} must look like token=actorId:role1|role2@tenantA|tenantB")
        roles = frozenset(r for r in (match.group("roles") or "").split("|") if r)
        if unknown := sorted(roles - ROLES):
            raise ConfigError(f"{where} names unknown roles {unknown}; roles are {sorted(ROLES)}")
        if match.group("tenants") is None:
            raise ConfigError(f"{where} grants no tenant: add @tenantA|tenantB, or @* for every tenant")
        tenant_names = [t for t in match.group("tenants").split("|") if t]
        if not tenant_names:
            raise ConfigError(f"{where} grants no tenant: add @tenantA|tenantB, or @* for every tenant")
        if ALL_TENANTS in tenant_names:
            if len(tenant_names) > 1:
                raise ConfigError(f"{where}: @* grants every tenant and takes no other tenant")
            tenants: frozenset[str] | None = None
        else:
            if bad := [t for t in tenant_names if not _TENANT.match(t)]:
                raise ConfigError(f"{where} names invalid tenant ids {bad}")
            tenants = frozenset(tenant_names)
        if match.group("token") in tokens:
            raise ConfigError(f"{where} repeats a token of an earlier entry")
        tokens[match.group("token")] = Principal(id=match.group("actor"), roles=roles, tenants=tenants)
    return tokens


def _json(name: str, example: str) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            return json.loads(value)
        except ValueError:
            raise ConfigError(f"{name} must be JSON like {example}") from None

    return parse


def _jwks_url(value: str | None) -> str | None:
    """AUTH_JWT_JWKS: an http(s) URL as given, or a file's absolute path."""
    if value is None:
        return None
    if value.startswith(("https://", "http://")):
        return value
    path = Path(value.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise ConfigError(f"AUTH_JWT_JWKS must be an http(s) URL or an existing file, got {value!r}")
    return str(path.resolve())


def _none_if_zero(value: str) -> str | None:
    return None if value == "0" else value


# Variables that need more than msgspec's lax conversion of a string.
_PARSE: dict[str, Callable[[str], Any]] = {
    "database_url": _database_url,
    "worker_fake_delay_ms": _delay_range,
    "tenant_max_in_flight": _none_if_zero,
    "metrics_port": _none_if_zero,
    "auth_tokens": _auth_tokens,
    "auth_jwt_jwks": _jwks_url,
    "cors_origins": lambda value: tuple(o.strip() for o in value.split(",") if o.strip()),
    "log_level": str.upper,
    "log_format": str.lower,
    "tenant_limits": _json("TENANT_LIMITS", '{"acme": {"commands": 12000}}'),
}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
