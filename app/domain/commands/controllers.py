"""HTTP surface of commands (``/commands``)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.status_codes import HTTP_202_ACCEPTED

from app.domain.commands.schemas import CommandAccepted, CommandIn, CommandStatusOut
from app.domain.commands.services import CommandService
from app.lib.correlation import correlation_id_of
from app.lib.openapi import errors, json_body
from app.lib.principals import Principal
from app.lib.rate_limit import RATE_LIMIT_OPT
from app.lib.tenancy import ensure_same_tenant

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


async def provide_command_service(
    request: Request[Any, Any, Any], tenant_id: NamedDependency[str]
) -> CommandService:
    """The command service on the request's session and the statement pool.

    Chained after ``tenant_id`` for the reason given at ``provide_script_service``: independent
    dependencies resolve in a task group, a sizeable share of a short request's CPU time.
    """
    state = request.app.state
    return CommandService(
        session=state.database.provide_session(state, request.scope), statement_pool=state.statement_pool
    )


class CommandController(Controller):
    path = "/commands"
    tags = ["Commands"]
    dependencies = {"commands": Provide(provide_command_service)}

    @post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary="Post a command",
        description="Writes the command to the outbox (PENDING) in this request's transaction; a worker "
        "runs it and publishes its completion event (see GET /events/stream). A second command with the "
        "same correlationId in the tenant is 409 DUPLICATE_CORRELATION_ID. Rate-limited per tenant "
        "(429 RATE_LIMIT_EXCEEDED with Retry-After).",
        responses=errors(400, 401, 403, 409, 413, 429),
        opt={RATE_LIMIT_OPT: "commands"},
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

    @get(
        "/{correlation_id:str}",
        summary="A command's status",
        description="Status, attempts, timestamps and the last error of the command with this correlationId; "
        "`actor` is whom it acts for (as sent), `submittedById` the authenticated actor who posted it.",
        responses=errors(400, 401, 403, 404),
    )
    async def get_command(
        self,
        commands: NamedDependency[CommandService],
        tenant_id: NamedDependency[str],
        correlation_id: FromPath[str],
    ) -> CommandStatusOut:
        return CommandStatusOut.of(await commands.get(tenant_id, correlation_id))
