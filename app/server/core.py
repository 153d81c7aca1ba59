"""The application factory: every route, plugin, middleware and hook is wired here."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from advanced_alchemy.extensions.litestar import SQLAlchemyAsyncConfig, SQLAlchemyPlugin
from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, License, SecurityScheme, Server, Tag

from app.cli import ScriptworksCLIPlugin
from app.config import Settings, get_settings
from app.db.embedded import EmbeddedPostgres
from app.db.engine import (
    alchemy_config,
    resolve_database_url,
    shared_secret,
    upgrade_database,
)
from app.db.runtime import SharedConnections
from app.domain.commands.controllers import CommandController
from app.domain.endpoints.controllers import HookController, ScriptEndpointController
from app.domain.event_types.controllers import EventTypeController
from app.domain.events.controllers import EventStreamController
from app.domain.events.hub import EventHub
from app.domain.incoming_events.controllers import IncomingEventController
from app.domain.runs.controllers import ExecutionReportController, RunController
from app.domain.schedules.controllers import ScheduleController, ScriptScheduleController
from app.domain.scripts.controllers import AuditController, ScriptController
from app.domain.subscriptions.controllers import InternalSubscriptionController, SubscriptionController
from app.lib.access import check_every_route_has_access
from app.lib.auth import (
    PUBLIC_OPT,
    Authenticator,
    BearerAuthMiddleware,
    provide_actor,
    warn_development_mode,
)
from app.lib.correlation import CORRELATION_HEADER, CorrelationIdMiddleware, add_correlation_header
from app.lib.db import asyncpg_connect_kwargs
from app.lib.error_handler import exception_to_response
from app.lib.idempotency import IdempotencyMiddleware
from app.lib.logging import configure_logging
from app.lib.openapi import document_access, document_contract, error_responses
from app.lib.openapi_structs import PreciseStructSchemaPlugin
from app.lib.pagination import provide_page_params
from app.lib.rate_limit import RateLimits, TenantRateLimitMiddleware
from app.lib.request_metrics import RequestMetricsMiddleware
from app.lib.tenancy import provide_tenant_id
from app.server.health import HealthController, migrations_head
from app.server.metrics import MetricsController
from app.worker import WORKER_CONNECTIONS, BackgroundWork

__all__ = ["create_app"]

API_DESCRIPTION = """\
Multi-tenant backend for a visual script editor and the runners that execute its scripts.

Every route except `/health*`, `/hooks/…` and these docs needs `Authorization: Bearer <token>`:
a static token of `AUTH_TOKENS` or a JWT (HS256 with `AUTH_JWT_SECRET`, or RS256/ES256/EdDSA
from the JWK set of `AUTH_JWT_JWKS`). A token stands for a principal: an actor, its roles, and
the tenants it is granted. Tenant-scoped routes need `x-tenant-id`; a tenant the token is not
granted is 403 `TENANT_FORBIDDEN`, a role that may not call the route 403 `FORBIDDEN`. Browsers
open `/events/stream` with a short-lived stream ticket (`POST /events/stream-tickets`).
Errors are always `{code, message, details}`.
"""

# Either kind of bearer token (OpenAPI: alternatives are separate requirement objects).
BEARER: list[dict[str, list[str]]] = [{"BearerJWT": []}, {"StaticToken": []}]
SECURITY_SCHEMES = {
    "BearerJWT": SecurityScheme(
        type="http",
        scheme="bearer",
        bearer_format="JWT",
        description="A JWT signed with AUTH_JWT_SECRET (HS256) or a key of the AUTH_JWT_JWKS set (RS256, "
        "ES256, EdDSA): `sub` is the actor, `roles` and `tenants` (a list, or `*`) its grants (claim "
        "names configurable), `exp` required, `iss`/`aud` checked when configured.",
    ),
    "StaticToken": SecurityScheme(
        type="http",
        scheme="bearer",
        description="A static token of AUTH_TOKENS (`token=actor:role1|role2@tenantA|tenantB`). With "
        "neither static tokens nor JWT configured (development mode, loopback only) any non-empty "
        "token is the admin `dev` of every tenant.",
    ),
    "StreamTicket": SecurityScheme(
        type="apiKey",
        name="access_token",
        security_scheme_in="query",
        description="A stream ticket from POST /events/stream-tickets, for EventSource (also accepted "
        "as an `access_token` cookie or a bearer header). It opens /events/stream for one actor in one "
        "tenant until it expires, and nothing else.",
    ),
}


def _lifespan(settings: Settings, database: SQLAlchemyAsyncConfig, rate_limits: RateLimits):
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        warn_development_mode(settings)
        # Starting PostgreSQL and migrating block; keep them off the event loop.
        await anyio.to_thread.run_sync(resolve_database_url, settings)
        if settings.migrate_on_start:
            await anyio.to_thread.run_sync(upgrade_database, settings)
        url = resolve_database_url(settings)
        # The worker's loops share the pool with the hot paths: a few connections more for them.
        extra = WORKER_CONNECTIONS if settings.worker_enabled else 0
        shared = SharedConnections(
            lambda: asyncpg_connect_kwargs(url), pool_size=settings.db_pool_size + extra
        )
        await shared.open()
        app.state.statement_pool = shared.pool
        hub = EventHub(shared, poll_seconds=settings.worker_poll_seconds)
        await hub.start()
        app.state.hub = hub
        worker: BackgroundWork | None = None
        if settings.worker_enabled:
            worker = BackgroundWork(settings, shared)
            await worker.start()
        app.state.worker = worker
        # Everything built so far (the app, its routes and models, the libraries) lives as long
        # as the process: move it out of the collector's reach. Full collections then walk only
        # what requests allocate; before, each one paused the event loop for ~100 ms.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            await hub.stop()
            await rate_limits.close()
            await shared.close()
            # advanced-alchemy 1.12 disposes the engine only when its state key is the default
            # one, which is not the case once a process has built a second app (tests, CLI).
            if database.engine_instance is not None:
                await database.engine_instance.dispose()

    return lifespan


def _stream_ticket_key(settings: Settings, app: Litestar) -> Callable[[], Awaitable[bytes]]:
    """STREAM_TICKET_SECRET, or a random key kept in the database, which every API process of
    the deployment reads: a ticket minted by one process opens a stream on any other."""

    async def load() -> bytes:
        if settings.stream_ticket_secret is not None:
            return settings.stream_ticket_secret.encode()
        return await shared_secret(app.state.statement_pool, "stream_tickets")

    return load


def _stop_embedded_database(settings: Settings):
    def stop() -> None:
        # Runs after the SQLAlchemy plugin disposed its engine: the database goes last.
        if settings.uses_embedded_database:
            EmbeddedPostgres.stop(settings.pgdata_dir)

    return stop


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings)
    cors = (
        CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_headers=["*"],
            allow_credentials="*" not in settings.cors_origins,
            expose_headers=[CORRELATION_HEADER, "ETag", "Idempotent-Replayed", "Retry-After", "Location"],
        )
        if settings.cors_origins
        else None
    )
    database = alchemy_config(settings)
    rate_limits = RateLimits(settings)
    app = Litestar(
        route_handlers=[
            HealthController,
            MetricsController,
            EventStreamController,
            # /hooks names its tenant in the path, as the path parameter ``tenant_id``.
            HookController,
            Router(
                path="/",
                route_handlers=[
                    ScriptController,
                    AuditController,
                    RunController,
                    ExecutionReportController,
                    CommandController,
                    EventTypeController,
                    SubscriptionController,
                    InternalSubscriptionController,
                    IncomingEventController,
                    ScriptScheduleController,
                    ScheduleController,
                    ScriptEndpointController,
                ],
                # The x-tenant-id header's tenant, for every tenant-scoped route.
                dependencies={"tenant_id": Provide(provide_tenant_id)},
            ),
        ],
        plugins=[SQLAlchemyPlugin(config=database), ScriptworksCLIPlugin(), PreciseStructSchemaPlugin()],
        dependencies={
            "actor": Provide(provide_actor),
            "page": Provide(provide_page_params),
        },
        middleware=[
            CorrelationIdMiddleware(),
            RequestMetricsMiddleware(),
            DefineMiddleware(BearerAuthMiddleware, exclude=["^/schema"], exclude_from_auth_key=PUBLIC_OPT),
            TenantRateLimitMiddleware(rate_limits),
            IdempotencyMiddleware(database, settings),
        ],
        exception_handlers={Exception: exception_to_response},
        before_send=[add_correlation_header],
        request_max_body_size=settings.max_body_bytes,
        cors_config=cors,
        lifespan=[_lifespan(settings, database, rate_limits)],
        on_shutdown=[_stop_embedded_database(settings)],
        openapi_config=OpenAPIConfig(
            title="Scriptworks API",
            version="1.0.0",
            description=API_DESCRIPTION,
            path="/schema",
            servers=[Server(url="http://127.0.0.1:8000", description="Local development")],
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            license=License(name="Proprietary"),
            components=Components(security_schemes=SECURITY_SCHEMES, responses=error_responses()),
            security=BEARER,
            tags=[
                Tag(name="Scripts", description="Scripts, immutable versions, publishing, audit."),
                Tag(name="Commands", description="Commands for integrations, drained by the outbox worker."),
                Tag(name="Events", description="Live events over Server-Sent Events."),
                Tag(name="Runs", description="Runs of script versions, their variables and executed steps."),
                Tag(
                    name="Triggers",
                    description="Event types, incoming events, schedules, custom endpoints.",
                ),
                Tag(
                    name="Trigger subscriptions",
                    description="Bind an event on a subject to a script (admin role).",
                ),
                Tag(
                    name="Trigger subscriptions (internal)",
                    description="The same for internal services, without the admin role.",
                ),
                Tag(name="Operations", description="Health, readiness and metrics."),
            ],
            use_handler_docstrings=False,
        ),
        state=State(
            {
                "settings": settings,
                "database": database,
                "migrations_head": migrations_head(),
            }
        ),
        logging_config=None,
        debug=False,
    )
    app.state.authenticator = Authenticator(settings, _stream_ticket_key(settings, app))
    document_contract(app)
    document_access(app)
    check_every_route_has_access(app, PUBLIC_OPT)
    return app
