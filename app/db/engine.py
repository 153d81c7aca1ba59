"""Database wiring: the advanced-alchemy config, the embedded fallback and migrations.

The engine is created lazily by advanced-alchemy on first use. When DATABASE_URL is unset that
first use starts the embedded server, so ``scriptworks run`` (which builds the app twice) and
``scriptworks database upgrade`` both start it exactly when needed and never in ``create_app()``.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from advanced_alchemy.alembic.commands import AlembicCommands
from advanced_alchemy.config import SQLAlchemyAsyncConfig as PlainAsyncConfig
from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.db.embedded import EmbeddedPostgres

__all__ = [
    "EMBEDDED_URL",
    "StatementConnection",
    "alchemy_config",
    "json_codecs",
    "resolve_database_url",
    "shared_secret",
    "upgrade_database",
]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
# In a source checkout the revisions live at the top level; an installed wheel carries them
# inside the package (see pyproject.toml's force-include).
MIGRATIONS_DIR = (
    _PACKAGE_DIR / "migrations"
    if (_PACKAGE_DIR / "migrations").is_dir()
    else _PACKAGE_DIR.parent / "migrations"
)
# Stands in for the real URL until the embedded server has been started on first engine use.
EMBEDDED_URL = "postgresql+asyncpg://embedded/scriptworks"
VERSION_TABLE = "alembic_version"


def resolve_database_url(settings: Settings) -> str:
    """The URL to connect to, starting the embedded server if that is what the settings ask for."""
    if settings.database_url is not None:
        return settings.database_url
    return EmbeddedPostgres.ensure_started(settings.pgdata_dir).url()


def alchemy_config(
    settings: Settings, *, pooled: bool = True, config_class: type[PlainAsyncConfig] = SQLAlchemyAsyncConfig
) -> PlainAsyncConfig:
    def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
        if url == EMBEDDED_URL:
            url = resolve_database_url(settings)
        return create_async_engine(url, **kwargs)

    pool: dict[str, Any] = (
        {
            "pool_size": settings.db_pool_size,
            "max_overflow": settings.db_max_overflow,
            "pool_timeout": settings.db_pool_timeout,
        }
        if pooled
        else {"poolclass": NullPool}
    )
    engine_config = EngineConfig(
        connect_args={
            "server_settings": {"application_name": "scriptworks", "timezone": "UTC"},
            "timeout": 5,
        },
        **pool,
    )
    extra: dict[str, Any] = {}
    if config_class is SQLAlchemyAsyncConfig:
        # Services commit explicitly; this handler only closes the session after the response.
        extra["before_send_handler"] = None
        # The app's one exception handler shapes every error, advanced-alchemy's included.
        extra["set_default_exception_handler"] = False
    return config_class(
        connection_string=settings.database_url or EMBEDDED_URL,
        create_engine_callable=create_engine,
        engine_config=engine_config,
        session_config=AsyncSessionConfig(expire_on_commit=False, autoflush=False),
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            script_config="",  # no alembic.ini: everything comes from this config
            version_table_name=VERSION_TABLE,
        ),
        **extra,
    )


def upgrade_database(settings: Settings, revision: str = "head") -> None:
    """Apply migrations (blocking; run it in a thread from async code)."""
    # The plain (non-Litestar) config: no app-state keys are registered for this throwaway engine.
    config = alchemy_config(settings, pooled=False, config_class=PlainAsyncConfig)
    AlembicCommands(sqlalchemy_config=config).upgrade(revision)


async def json_codecs(connection: asyncpg.Connection) -> None:
    # The same codecs SQLAlchemy's asyncpg dialect installs (JSON text in, Python values out), so
    # one plain-SQL statement runs alike on this pool and on a session's connection.
    await connection.set_type_codec(
        "jsonb",
        encoder=lambda text: b"\x01" + text.encode(),
        decoder=lambda raw: msgspec.json.decode(raw[1:]),
        schema="pg_catalog",
        format="binary",
    )
    await connection.set_type_codec(
        "json", encoder=str.encode, decoder=msgspec.json.decode, schema="pg_catalog", format="binary"
    )


class StatementConnection(asyncpg.Connection):
    """A connection of the statement pool: released without a reset query.

    asyncpg resets a connection on every release with ``SELECT pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL`` (its documented hook for changing that is this method): one
    more round trip for every single-statement request, about as much client CPU as the
    statement itself. The statements of this pool change no session state (no settings,
    session-level advisory locks, cursors or LISTEN), and asyncpg still rolls back an open
    transaction on release; a connection a driver error left mid-operation is dropped by
    ``app.lib.db.statements``.
    """

    def get_reset_query(self) -> str:
        return ""


async def shared_secret(pool: asyncpg.Pool, name: str) -> bytes:
    """A random 32-byte key every process on this database shares: made by whichever process
    asks first (the insert that loses the race does nothing), then read by all."""
    async with pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            name,
            secrets.token_bytes(32),
        )
        return await connection.fetchval("SELECT value FROM server_secrets WHERE name = $1", name)
