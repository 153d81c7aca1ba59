"""The project's own CLI commands, added to Litestar's ``scriptworks`` group by a CLI plugin."""

from __future__ import annotations

import asyncio

import click
from litestar.plugins import CLIPluginProtocol

__all__ = ["ScriptworksCLIPlugin"]


@click.command(name="worker")
def worker_command() -> None:
    """Run the outbox worker alone (no HTTP), until SIGTERM or Ctrl-C."""
    from app.config import get_settings
    from app.worker import run_standalone

    asyncio.run(run_standalone(get_settings()))


class ScriptworksCLIPlugin(CLIPluginProtocol):
    def on_cli_init(self, cli: click.Group) -> None:
        cli.add_command(worker_command)
