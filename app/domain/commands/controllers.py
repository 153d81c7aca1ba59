"""HTTP surface of commands (``/commands``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from app.domain.commands.schemas import CommandAccepted, CommandIn, CommandStatus, CommandStatusOut
from app.domain.commands.services import CommandService
from app.lib.correlation import correlation_id_of
from app.lib.openapi import json_body
from app.lib.pagination import Page, PageParams, build_page
from app.lib.principals import Principal
from app.lib.routes import accept_route, action_route, list_route, read_route
from app.lib.tenancy import ensure_same_tenant
from app.lib.timerange import TimeWindow, provide_time_window

__all__ = ["CommandController"]

CommandBody = Annotated[
    CommandIn,
    json_body(
        {
            "command": "Contacts.UpsertAndLink.v1",
            "correlationId": "0190b5a0-7c1e-7b3c-9d4e-2f6a8b1c3d5e",
            "actor": {"userId": "user-42"},
            "context": {"source": "crm-sync"},
            "payload": {"email": "ada@example.com", "name": "Ada Lovelace"},
        },
        "correlationId defaults to the request's Correlation-Id when that is a UUID, else a new UUID.",
    ),
]

# The 409s of retry and cancel, as their OpenAPI examples show them.
NOT_RETRYABLE = (
    "COMMAND_NOT_RETRYABLE",
    "Only a FAILED or CANCELLED command can be retried; this one is PENDING.",
)
NOT_CANCELLABLE = (
    "COMMAND_NOT_CANCELLABLE",
    "Only a PENDING command can be cancelled; this one is PROCESSING.",
)


async def provide_command_service(
    request: Request[Any, Any, Any], tenant_id: NamedDependency[str]
) -> CommandService:
    """The command service on the request's session and the statement pool.

    Chained after ``tenant_id`` for the reason given at ``provide_script_service``: independent
    dependencies resolve in a task group, a sizeable share of a short request's CPU time.
    """
    return CommandService.for_request(request)


class CommandController(Controller):
    path = "/commands"
    tags = ["Commands"]
    dependencies = {"commands": Provide(provide_command_service), "window": Provide(provide_time_window)}

    @accept_route(
        "Post a command",
        "Writes the command to the outbox (PENDING) in this request's transaction; a worker "
        "runs it and publishes its completion event (see GET /events/stream). A second command with the "
        "same correlationId in the tenant is 409 DUPLICATE_CORRELATION_ID. Rate-limited per tenant "
        "(429 RATE_LIMIT_EXCEEDED with Retry-After).",
        rate_limit="commands",
        also=(409,),
    )
    async def post_command(
        self,
        request: Request,
        commands: NamedDependency[CommandService],
        tenant_id: NamedDependency[str],
        actor: NamedDependency[Principal],
        data: CommandBody,
    ) -> CommandAccepted:
        ensure_same_tenant(tenant_id, data.tenant_id)
        correlation_id = await commands.submit(tenant_id, data, correlation_id_of(request.scope), actor.id)
        return CommandAccepted(correlation_id=correlation_id, status="PENDING")

    @list_route(
        "List commands",
        "The tenant's commands, newest first (by createdAt, then id), each as "
        "`GET /commands/{correlationId}` shows it. `status=FAILED` is the dead-letter view: commands "
        "that used up their attempts, each with its failure event as `outcome`. `from` is inclusive "
        "and `to` exclusive, both on createdAt, both RFC 3339 with a UTC offset.",
    )
    async def list_commands(
        self,
        commands: NamedDependency[CommandService],
        tenant_id: NamedDependency[str],
        page: NamedDependency[PageParams],
        window: NamedDependency[TimeWindow],
        status: Annotated[
            CommandStatus | None, QueryParameter(description="Only commands in this status.")
        ] = None,
        command: Annotated[
            str | None,
            QueryParameter(
                description="Only commands of this name, e.g. Contacts.UpsertAndLink.v1.",
                min_length=1,
                max_length=200,
            ),
        ] = None,
    ) -> Page[CommandStatusOut]:
        rows = await commands.list_commands(tenant_id, page, status=status, command=command, window=window)
        return build_page(rows, page, lambda r: (r.created_at, r.id), CommandStatusOut.of)

    @read_route(
        "/{correlation_id:str}",
        "A command's status",
        "Status, attempts, timestamps and the last error of the command with this correlationId; "
        "`actor` is whom it acts for (as sent), `submittedById` the authenticated actor who posted it. "
        "`outcome` is the event that ended it (the worker's completion, `success: true`, or failure, "
        "`success: false`, or its cancellation), null while it is not finished; after a retry, the "
        "outcome of its latest run.",
    )
    async def get_command(
        self,
        commands: NamedDependency[CommandService],
        tenant_id: NamedDependency[str],
        correlation_id: FromPath[str],
    ) -> CommandStatusOut:
        return CommandStatusOut.of(await commands.get(tenant_id, correlation_id))

    @action_route(
        "/{correlation_id:str}/retry",
        "Retry a failed or cancelled command",
        "Puts a FAILED or CANCELLED command back to PENDING, due at once, with its attempts "
        "reset to 0; `lastError` keeps the error it failed with until a new attempt replaces or clears "
        "it. A worker then runs it again and publishes a new outcome event. Recorded in the tenant "
        "audit trail (action RETRY). Any other status → 409 COMMAND_NOT_RETRYABLE (`details.status` "
        "says which).",
        codes={409: [NOT_RETRYABLE]},
    )
    async def retry_command(
        self,
        commands: NamedDependency[CommandService],
        tenant_id: NamedDependency[str],
        actor: NamedDependency[Principal],
        correlation_id: FromPath[str],
    ) -> CommandStatusOut:
        return CommandStatusOut.of(await commands.retry(tenant_id, correlation_id, actor.id))

    @action_route(
        "/{correlation_id:str}/cancel",
        "Cancel a pending command",
        "Turns a PENDING command into CANCELLED, with one `success: false` outcome event "
        '(the event name its failure would have; payload `{command, error: "cancelled", attempts}`), '
        "written with the change. No worker runs it afterwards (unless it is retried). Recorded in the "
        "tenant audit trail (action CANCEL). Once a worker claimed it (PROCESSING) or it finished → 409 "
        "COMMAND_NOT_CANCELLABLE (`details.status` says which).",
        codes={409: [NOT_CANCELLABLE]},
    )
    async def cancel_command(
        self,
        commands: NamedDependency[CommandService],
        tenant_id: NamedDependency[str],
        actor: NamedDependency[Principal],
        correlation_id: FromPath[str],
    ) -> CommandStatusOut:
        return CommandStatusOut.of(await commands.cancel(tenant_id, correlation_id, actor.id))
