"""Settings: read from the environment once, validated, with a clear message on bad values.

Every knob docs/configuration.md documents lives here and nowhere else. ``get_settings()`` is cached; tests
that change the environment call ``get_settings.cache_clear()``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from app.lib.principals import ALL_TENANTS, ROLES, Principal

__all__ = ["ConfigError", "Settings", "get_settings"]


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = Path(".scriptworks")
    migrate_on_start: bool = True
    max_body_bytes: int = 5 * 1024 * 1024
    sse_ping_seconds: float = 30.0
    worker_enabled: bool = True
    worker_poll_seconds: float = 1.0
    worker_fake_delay_ms: tuple[int, int] = (1000, 2000)
    worker_batch_size: int = 100
    tenant_max_in_flight: int | None = None  # per worker and tenant; None: unlimited
    worker_lease_seconds: float = 30.0
    worker_max_attempts: int = 5
    handler_timeout_seconds: float = 300.0
    worker_retry_base_seconds: float = 1.0
    worker_retry_max_seconds: float = 300.0
    shutdown_grace_seconds: float = 10.0
    worker_maintenance_seconds: float = 60.0
    worker_heartbeat_stale_seconds: float = 15.0
    ready_requires_worker: bool = False
    command_retention_days: float = 30.0
    metrics_port: int | None = None
    metrics_top_tenants: int = 20
    idempotency_ttl_hours: float = 24.0
    auth_tokens: dict[str, Principal] = field(default_factory=dict)
    auth_jwt_secret: str | None = None
    auth_jwt_jwks: str | None = None  # an http(s) URL, or the absolute path of a file
    auth_jwt_jwks_cooldown_seconds: float = 30.0
    auth_jwt_issuer: str | None = None
    auth_jwt_audience: str | None = None
    auth_jwt_roles_claim: str = "roles"
    auth_jwt_tenants_claim: str = "tenants"
    auth_dev_mode: bool = False
    stream_ticket_seconds: float = 300.0
    stream_ticket_secret: str | None = None
    hook_max_body_bytes: int = 256 * 1024
    max_schedules_per_script: int = 20
    max_subscriptions_per_tenant: int = 1000
    max_endpoints_per_tenant: int = 1000
    schedule_min_interval_seconds: float = 60.0
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    log_format: str = "console"
    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout: float = 2.0
    run_retention_days: float = 30.0
    event_retention_days: float = 30.0
    scheduler_poll_seconds: float = 1.0
    scheduler_catch_up_seconds: float = 60.0
    scheduler_max_attempts: int = 5
    scheduler_retry_base_seconds: float = 1.0
    scheduler_retry_max_seconds: float = 300.0
    rate_limit_per_minute: int = 6000
    # Per route family (commands, events, hooks: RATE_LIMIT_PER_MINUTE unless set; writes: every
    # other POST/PUT/PATCH/DELETE), overridable per tenant with TENANT_LIMITS.
    rate_limits_per_minute: dict[str, int] = field(
        default_factory=lambda: {"commands": 6000, "events": 6000, "hooks": 6000, "writes": 60000}
    )
    tenant_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    rate_limit_store_url: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        return cls(
            database_url=_database_url(get("DATABASE_URL")),
            data_dir=Path(get("DATA_DIR") or ".scriptworks"),
            migrate_on_start=_bool("MIGRATE_ON_START", get("MIGRATE_ON_START"), True),
            max_body_bytes=_int("MAX_BODY_BYTES", get("MAX_BODY_BYTES"), 5 * 1024 * 1024, minimum=1024),
            sse_ping_seconds=_float("SSE_PING_SECONDS", get("SSE_PING_SECONDS"), 30.0, minimum=0.05),
            worker_enabled=_bool("WORKER_ENABLED", get("WORKER_ENABLED"), True),
            worker_poll_seconds=_float("WORKER_POLL_SECONDS", get("WORKER_POLL_SECONDS"), 1.0, minimum=0.01),
            worker_fake_delay_ms=_delay_range(get("WORKER_FAKE_DELAY_MS")),
            worker_batch_size=_int("WORKER_BATCH_SIZE", get("WORKER_BATCH_SIZE"), 100, minimum=1),
            tenant_max_in_flight=_int("TENANT_MAX_IN_FLIGHT", get("TENANT_MAX_IN_FLIGHT"), 0, minimum=0)
            or None,
            worker_lease_seconds=_float(
                "WORKER_LEASE_SECONDS", get("WORKER_LEASE_SECONDS"), 30.0, minimum=0.1
            ),
            worker_max_attempts=_int("WORKER_MAX_ATTEMPTS", get("WORKER_MAX_ATTEMPTS"), 5, minimum=1),
            handler_timeout_seconds=_float(
                "HANDLER_TIMEOUT_SECONDS", get("HANDLER_TIMEOUT_SECONDS"), 300.0, minimum=0.01
            ),
            worker_retry_base_seconds=_float(
                "WORKER_RETRY_BASE_SECONDS", get("WORKER_RETRY_BASE_SECONDS"), 1.0, minimum=0.0
            ),
            worker_retry_max_seconds=_float(
                "WORKER_RETRY_MAX_SECONDS", get("WORKER_RETRY_MAX_SECONDS"), 300.0, minimum=0.0
            ),
            worker_heartbeat_stale_seconds=_float(
                "WORKER_HEARTBEAT_STALE_SECONDS", get("WORKER_HEARTBEAT_STALE_SECONDS"), 15.0, minimum=0.5
            ),
            ready_requires_worker=_bool("READY_REQUIRES_WORKER", get("READY_REQUIRES_WORKER"), False),
            command_retention_days=_float(
                "COMMAND_RETENTION_DAYS", get("COMMAND_RETENTION_DAYS"), 30.0, minimum=0.0001
            ),
            metrics_port=_int("METRICS_PORT", get("METRICS_PORT"), 0, minimum=0) or None,
            metrics_top_tenants=_int("METRICS_TOP_TENANTS", get("METRICS_TOP_TENANTS"), 20, minimum=1),
            worker_maintenance_seconds=_float(
                "WORKER_MAINTENANCE_SECONDS", get("WORKER_MAINTENANCE_SECONDS"), 60.0, minimum=0.1
            ),
            shutdown_grace_seconds=_float(
                "SHUTDOWN_GRACE_SECONDS", get("SHUTDOWN_GRACE_SECONDS"), 10.0, minimum=0.0
            ),
            idempotency_ttl_hours=_float(
                "IDEMPOTENCY_TTL_HOURS", get("IDEMPOTENCY_TTL_HOURS"), 24.0, minimum=0.001
            ),
            auth_tokens=_auth_tokens(get("AUTH_TOKENS")),
            auth_jwt_secret=_secret("AUTH_JWT_SECRET", get("AUTH_JWT_SECRET")),
            auth_jwt_jwks=_jwks_url(get("AUTH_JWT_JWKS")),
            auth_jwt_jwks_cooldown_seconds=_float(
                "AUTH_JWT_JWKS_COOLDOWN_SECONDS", get("AUTH_JWT_JWKS_COOLDOWN_SECONDS"), 30.0, minimum=0.0
            ),
            auth_jwt_issuer=get("AUTH_JWT_ISSUER"),
            auth_jwt_audience=get("AUTH_JWT_AUDIENCE"),
            auth_jwt_roles_claim=get("AUTH_JWT_ROLES_CLAIM") or "roles",
            auth_jwt_tenants_claim=get("AUTH_JWT_TENANTS_CLAIM") or "tenants",
            auth_dev_mode=_bool("AUTH_DEV_MODE", get("AUTH_DEV_MODE"), False),
            stream_ticket_seconds=_float(
                "STREAM_TICKET_SECONDS", get("STREAM_TICKET_SECONDS"), 300.0, minimum=1.0
            ),
            stream_ticket_secret=_secret("STREAM_TICKET_SECRET", get("STREAM_TICKET_SECRET")),
            hook_max_body_bytes=_int(
                "HOOK_MAX_BODY_BYTES", get("HOOK_MAX_BODY_BYTES"), 256 * 1024, minimum=1024
            ),
            max_schedules_per_script=_int(
                "MAX_SCHEDULES_PER_SCRIPT", get("MAX_SCHEDULES_PER_SCRIPT"), 20, minimum=1
            ),
            max_subscriptions_per_tenant=_int(
                "MAX_SUBSCRIPTIONS_PER_TENANT", get("MAX_SUBSCRIPTIONS_PER_TENANT"), 1000, minimum=1
            ),
            max_endpoints_per_tenant=_int(
                "MAX_ENDPOINTS_PER_TENANT", get("MAX_ENDPOINTS_PER_TENANT"), 1000, minimum=1
            ),
            schedule_min_interval_seconds=_float(
                "SCHEDULE_MIN_INTERVAL_SECONDS", get("SCHEDULE_MIN_INTERVAL_SECONDS"), 60.0, minimum=0.0
            ),
            cors_origins=tuple(o.strip() for o in (get("CORS_ORIGINS") or "").split(",") if o.strip()),
            log_level=_choice("LOG_LEVEL", (get("LOG_LEVEL") or "INFO").upper(), _LOG_LEVELS),
            log_format=_choice("LOG_FORMAT", (get("LOG_FORMAT") or "console").lower(), ("console", "json")),
            db_pool_size=_int("DB_POOL_SIZE", get("DB_POOL_SIZE"), 10, minimum=1),
            db_max_overflow=_int("DB_MAX_OVERFLOW", get("DB_MAX_OVERFLOW"), 10, minimum=0),
            db_pool_timeout=_float("DB_POOL_TIMEOUT", get("DB_POOL_TIMEOUT"), 2.0, minimum=0.1),
            run_retention_days=_float("RUN_RETENTION_DAYS", get("RUN_RETENTION_DAYS"), 30.0, minimum=0.0001),
            event_retention_days=_float(
                "EVENT_RETENTION_DAYS", get("EVENT_RETENTION_DAYS"), 30.0, minimum=0.0001
            ),
            scheduler_poll_seconds=_float(
                "SCHEDULER_POLL_SECONDS", get("SCHEDULER_POLL_SECONDS"), 1.0, minimum=0.01
            ),
            scheduler_catch_up_seconds=_float(
                "SCHEDULER_CATCH_UP_SECONDS", get("SCHEDULER_CATCH_UP_SECONDS"), 60.0, minimum=0.0
            ),
            scheduler_max_attempts=_int(
                "SCHEDULER_MAX_ATTEMPTS", get("SCHEDULER_MAX_ATTEMPTS"), 5, minimum=1
            ),
            scheduler_retry_base_seconds=_float(
                "SCHEDULER_RETRY_BASE_SECONDS", get("SCHEDULER_RETRY_BASE_SECONDS"), 1.0, minimum=0.0
            ),
            scheduler_retry_max_seconds=_float(
                "SCHEDULER_RETRY_MAX_SECONDS", get("SCHEDULER_RETRY_MAX_SECONDS"), 300.0, minimum=0.0
            ),
            rate_limit_per_minute=_int(
                "RATE_LIMIT_PER_MINUTE", get("RATE_LIMIT_PER_MINUTE"), 6000, minimum=1
            ),
            rate_limits_per_minute=_family_limits(get),
            tenant_limits=_tenant_limits(get("TENANT_LIMITS")),
            rate_limit_store_url=_redis_url(get("RATE_LIMIT_STORE_URL")),
        )

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


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
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


def _int(name: str, value: str | None, default: int, *, minimum: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def _float(name: str, value: str | None, default: float, *, minimum: float) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {number}")
    return number


def _bool(name: str, value: str | None, default: bool) -> bool:
    if value is None:
        return default
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
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


RATE_LIMIT_FAMILIES = ("commands", "events", "hooks", "writes")


def _family_limits(get: Callable[[str], str | None]) -> dict[str, int]:
    """RATE_LIMIT_<FAMILY>_PER_MINUTE; commands, events and hooks default to RATE_LIMIT_PER_MINUTE."""
    shared = _int("RATE_LIMIT_PER_MINUTE", get("RATE_LIMIT_PER_MINUTE"), 6000, minimum=1)
    limits = {}
    for family in RATE_LIMIT_FAMILIES:
        name = f"RATE_LIMIT_{family.upper()}_PER_MINUTE"
        limits[family] = _int(name, get(name), 60000 if family == "writes" else shared, minimum=1)
    return limits


def _tenant_limits(value: str | None) -> dict[str, dict[str, int]]:
    """TENANT_LIMITS: JSON ``{"acme": {"commands": 12000}}``, per tenant and route family."""
    if value is None:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        raise ConfigError('TENANT_LIMITS must be JSON like {"acme": {"commands": 12000}}') from None
    if not isinstance(parsed, dict):
        raise ConfigError('TENANT_LIMITS must be a JSON object like {"acme": {"commands": 12000}}')
    limits: dict[str, dict[str, int]] = {}
    for tenant, families in parsed.items():
        if not _TENANT.match(tenant) or not isinstance(families, dict):
            raise ConfigError(f"TENANT_LIMITS: {tenant!r} must be a tenant id mapping families to limits")
        for family, limit in families.items():
            if family not in RATE_LIMIT_FAMILIES:
                raise ConfigError(
                    f"TENANT_LIMITS: {tenant}.{family}: families are {', '.join(RATE_LIMIT_FAMILIES)}"
                )
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise ConfigError(
                    f"TENANT_LIMITS: {tenant}.{family} must be a positive integer, got {limit!r}"
                )
        limits[tenant] = dict(families)
    return limits


def _redis_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"RATE_LIMIT_STORE_URL must be a redis:// (or rediss://) URL, got {value!r}")
    return value


def _secret(name: str, value: str | None) -> str | None:
    if value is not None and len(value.encode()) < 32:
        raise ConfigError(
            f"{name} must be at least 32 bytes long (HS256 keys shorter than that are guessable)"
        )
    return value


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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
