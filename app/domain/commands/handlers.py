"""What a command does once a worker picks it up: a registry from command name to handler.

The development handlers only pretend: they answer with the event a real integration would
publish. Real integrations register their own handler for a command name; everything else
(claiming, leases, retries, events) stays with the worker.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = [
    "ClaimedCommand",
    "CommandResult",
    "Failure",
    "HandlerRegistry",
    "Success",
    "completion_event_name",
    "default_registry",
    "run_handler",
]

logger = structlog.get_logger("app.worker")


@dataclass(frozen=True, slots=True)
class ClaimedCommand:
    id: Any
    tenant_id: str
    correlation_id: str
    command: str
    actor: dict[str, Any]
    context: dict[str, Any]
    payload: dict[str, Any]
    attempts: int
    lease_token: Any


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The completion event a handler asks the worker to publish."""

    event: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Success:
    command: ClaimedCommand
    event: str
    payload: dict


@dataclass(frozen=True, slots=True)
class Failure:
    command: ClaimedCommand
    event: str
    error: str


Handler = Callable[[ClaimedCommand], Awaitable[CommandResult]]


def completion_event_name(command: str) -> str:
    """``Domain.Verb.vN`` → ``Domain.VerbCompleted.v1``."""
    parts = command.split(".")
    if len(parts) < 3:
        return f"{command}.Completed.v1"
    return ".".join([*parts[:-2], f"{parts[-2]}Completed", "v1"])


async def echo_completion(command: ClaimedCommand) -> CommandResult:
    return CommandResult(event=completion_event_name(command.command), payload=command.payload)


async def upsert_and_link_contacts(command: ClaimedCommand) -> CommandResult:
    contact_id = f"cnt_{secrets.token_hex(8)}"
    return CommandResult(
        event="Contacts.Upserted.v1", payload={"contacts": [{"role": "applicant", "contactId": contact_id}]}
    )


async def fail(command: ClaimedCommand) -> CommandResult:
    """``Dev.Fail.v1``: always fails, to exercise retries and the dead-letter path."""
    raise RuntimeError(f"{command.command} always fails (attempt {command.attempts})")


async def sleep_then_complete(command: ClaimedCommand) -> CommandResult:
    """``Dev.Sleep.v1``: sleeps ``payload.seconds`` (a number, at most a day), then completes,
    to exercise lease renewal and HANDLER_TIMEOUT_SECONDS."""
    seconds = command.payload.get("seconds", 1)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 86400:
        raise ValueError("Dev.Sleep.v1 needs payload.seconds, a number from 0 to 86400")
    await asyncio.sleep(seconds)
    return CommandResult(event=completion_event_name(command.command), payload={"slept": seconds})


@dataclass
class HandlerRegistry:
    handlers: dict[str, Handler] = field(default_factory=dict)
    fallback: Handler = echo_completion
    event_names: dict[str, str] = field(default_factory=dict)

    def register(self, command: str, handler: Handler, *, event: str | None = None) -> None:
        self.handlers[command] = handler
        if event is not None:
            self.event_names[command] = event

    def handler_for(self, command: str) -> Handler:
        return self.handlers.get(command, self.fallback)

    def event_for(self, command: str) -> str:
        """The event name a command's outcome is published under (also when it fails)."""
        return self.event_names.get(command, completion_event_name(command))


def default_registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register("Contacts.UpsertAndLink.v1", upsert_and_link_contacts, event="Contacts.Upserted.v1")
    registry.register("Dev.Fail.v1", fail)
    registry.register("Dev.Sleep.v1", sleep_then_complete)
    return registry


async def run_handler(
    registry: HandlerRegistry,
    command: ClaimedCommand,
    *,
    fake_delay_ms: tuple[float, float],
    timeout_seconds: float,
) -> Success | Failure:
    """The command's handler (after the fake delay), within ``timeout_seconds``: its outcome.

    Run in the command's own task, which has its own copy of the context: what is bound here
    stays with this command and needs no unbinding (and no context manager's frames).
    """
    structlog.contextvars.bind_contextvars(
        correlation_id=command.correlation_id, tenant_id=command.tenant_id, command=command.command
    )
    low, high = fake_delay_ms
    try:
        async with asyncio.timeout(timeout_seconds):
            if high > 0:
                await asyncio.sleep(random.uniform(low, high) / 1000)
            result = await registry.handler_for(command.command)(command)
        return Success(command, result.event, result.payload)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        logger.warning("command handler timed out", attempt=command.attempts, seconds=timeout_seconds)
        return Failure(
            command,
            registry.event_for(command.command),
            f"TimeoutError: the handler ran longer than HANDLER_TIMEOUT_SECONDS ({timeout_seconds:g} s)",
        )
    except Exception as error:
        logger.warning("command handler failed", attempt=command.attempts, error=repr(error))
        return Failure(command, registry.event_for(command.command), f"{type(error).__name__}: {error}")
