"""The project's own CLI commands, added to Litestar's ``scriptworks`` group by a CLI plugin."""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from litestar.plugins import CLIPluginProtocol

__all__ = ["ScriptworksCLIPlugin"]

T = TypeVar("T")


@click.command(name="worker")
def worker_command() -> None:
    """Run the outbox worker alone (no HTTP), until SIGTERM or Ctrl-C."""
    from app.config import get_settings
    from app.worker import run_standalone

    asyncio.run(run_standalone(get_settings()))


def _with_database(work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work(connection)`` on the configured database (the embedded one when unset)."""
    import asyncpg

    from app.config import get_settings
    from app.db.embedded import EmbeddedPostgres
    from app.db.engine import resolve_database_url, upgrade_database
    from app.lib.db import asyncpg_connect_kwargs

    settings = get_settings()
    url = resolve_database_url(settings)
    if settings.migrate_on_start:
        upgrade_database(settings)

    async def run() -> T:
        connection = await asyncpg.connect(**{**asyncpg_connect_kwargs(url), "timeout": 30})
        try:
            return await work(connection)
        finally:
            await connection.close()

    try:
        return asyncio.run(run())
    finally:
        if settings.uses_embedded_database:
            EmbeddedPostgres.stop(settings.pgdata_dir)


@click.group(name="seed")
def seed_group() -> None:
    """Seed data at scale (and remove it again)."""


@seed_group.command(name="runs")
@click.option("--count", type=click.IntRange(1, 50_000_000), default=1_000_000, show_default=True)
@click.option("--scheduled-ratio", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--tenant", default="seed", show_default=True, help="Tenant to seed (created implicitly).")
@click.option("--batch", type=click.IntRange(100, 1_000_000), default=50_000, show_default=True)
@click.option("--scripts", type=click.IntRange(1, 10_000), default=100, show_default=True)
def seed_runs_command(count: int, scheduled_ratio: float, tenant: str, batch: int, scripts: int) -> None:
    """Create scripts, versions, schedules and incoming events, then COPY COUNT runs."""
    from app.cli.seed import SeedPlan, seed_runs
    from app.lib.tenancy import validate_tenant_id

    validate_tenant_id(tenant, field="--tenant")
    plan = SeedPlan(
        tenant=tenant,
        count=count,
        scheduled_ratio=scheduled_ratio,
        scripts=scripts,
        batch=batch,
        now=datetime.datetime.now(datetime.UTC),
    )
    result = _with_database(lambda connection: seed_runs(connection, plan))
    click.echo(f"loaded {result['loaded']:,} runs in {result['seconds']:.1f} s")
    for name, value in sorted(result["counts"].items()):
        click.echo(f"  {name}: {value:,}")


@seed_group.command(name="clean")
@click.option("--tenant", default="seed", show_default=True)
def seed_clean_command(tenant: str) -> None:
    """Remove exactly what `seed runs` created in TENANT."""
    from app.cli.seed import clean

    removed = _with_database(lambda connection: clean(connection, tenant))
    click.echo(", ".join(f"{name}: {value:,}" for name, value in removed.items()) + " removed")


def _refuse_open_development_mode(run: click.Command) -> None:
    """``run`` refuses a non-loopback --host while authentication is in development mode (any
    token an admin of every tenant), unless AUTH_DEV_MODE=true says so explicitly."""
    serve = run.callback
    assert serve is not None

    @functools.wraps(serve)
    def checked(*args: Any, **kwargs: Any) -> Any:
        from app.config import ConfigError, get_settings
        from app.lib.auth import check_bind_address

        if kwargs.get("fd") is None and kwargs.get("uds") is None:
            try:
                check_bind_address(get_settings(), kwargs.get("host"))
            except ConfigError as error:
                raise click.ClickException(str(error)) from None
        return serve(*args, **kwargs)

    run.callback = checked


class ScriptworksCLIPlugin(CLIPluginProtocol):
    def on_cli_init(self, cli: click.Group) -> None:
        cli.add_command(worker_command)
        cli.add_command(seed_group)
        if (run := cli.commands.get("run")) is not None:
            _refuse_open_development_mode(run)
