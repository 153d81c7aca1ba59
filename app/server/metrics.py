"""``GET /metrics`` in Prometheus text format.

Request counts and latencies by route and status come from Litestar's Prometheus middleware
(paths grouped by their template), and what incoming events became (received, runs started,
deferred, suppressed by reason: ``app.domain.incoming_events.flow_control``) from counters of this
process. The rest is read at scrape time: the outbox (depth, oldest pending age), the event
store (newest id) and the pending debounced runs from the database, SSE connections from the hub,
claims/completions/failures from this process's worker, and the connection pool.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import text

from app.lib.openapi import errors

__all__ = ["MetricsController"]


_OUTBOX = text(
    """
    SELECT
        (SELECT count(*) FROM commands WHERE status = 'PENDING') AS pending,
        (SELECT count(*) FROM commands WHERE status = 'PROCESSING') AS processing,
        (SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)
           FROM commands WHERE status = 'PENDING') AS oldest_pending_age,
        (SELECT coalesce(max(id), 0) FROM events) AS newest_event_id,
        (SELECT count(*) FROM deferred_runs WHERE status = 'PENDING') AS deferred_pending,
        (SELECT coalesce(extract(epoch FROM now() - min(due_at)), 0)
           FROM deferred_runs WHERE status = 'PENDING' AND due_at <= now()) AS deferred_overdue
    """
)


# The outbox per tenant, with bounded label cardinality: the tenants with the deepest backlogs
# get a series of their own, every other tenant adds up under tenant="other".
_OUTBOX_BY_TENANT = text(
    """
    WITH per_tenant AS (
        SELECT tenant_id, count(*) AS pending, extract(epoch FROM now() - min(created_at)) AS oldest
        FROM commands WHERE status = 'PENDING' GROUP BY tenant_id
    ), ranked AS (
        SELECT *, row_number() OVER (ORDER BY pending DESC, tenant_id) AS rank FROM per_tenant
    )
    SELECT CASE WHEN rank <= :top THEN tenant_id ELSE 'other' END AS tenant,
           sum(pending) AS pending, max(oldest) AS oldest
    FROM ranked GROUP BY 1 ORDER BY 1
    """
)


class _Snapshot:
    """A one-off collector holding the values read for this scrape."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


async def _families(request: Request[Any, Any, Any]) -> list[Any]:
    state = request.app.state
    families: list[Any] = []
    database = state.database
    engine = database.get_engine()
    async with engine.connect() as connection:
        row = (await connection.execute(_OUTBOX)).one()
        tenants = (
            await connection.execute(_OUTBOX_BY_TENANT, {"top": state.settings.metrics_top_tenants})
        ).all()
    depth = GaugeMetricFamily(
        "scriptworks_outbox_tenant_pending",
        "Commands waiting to be claimed, per tenant (the METRICS_TOP_TENANTS deepest; the rest as other).",
        labels=["tenant"],
    )
    age = GaugeMetricFamily(
        "scriptworks_outbox_tenant_oldest_pending_age_seconds",
        "Age of the tenant's oldest pending command (the METRICS_TOP_TENANTS deepest; the rest as other).",
        labels=["tenant"],
    )
    for tenant in tenants:
        depth.add_metric([tenant.tenant], float(tenant.pending))
        age.add_metric([tenant.tenant], float(tenant.oldest))
    families += [depth, age]
    families += [
        _gauge("scriptworks_outbox_pending", "Commands waiting to be claimed.", row.pending),
        _gauge("scriptworks_outbox_processing", "Commands claimed and in progress.", row.processing),
        _gauge(
            "scriptworks_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending command.",
            float(row.oldest_pending_age),
        ),
        _gauge(
            "scriptworks_events_newest_id",
            "Id of the newest stored event (events written).",
            row.newest_event_id,
        ),
        _gauge(
            "scriptworks_trigger_deferred_pending",
            "Debounced runs waiting for their due time (all processes).",
            row.deferred_pending,
        ),
        _gauge(
            "scriptworks_trigger_deferred_overdue_seconds",
            "How long the most overdue debounced run has been due without a worker starting it.",
            float(row.deferred_overdue),
        ),
    ]
    hub = getattr(state, "hub", None)
    if hub is not None:
        families += [
            _gauge(
                "scriptworks_sse_connections", "Open event streams on this process.", hub.subscriber_count
            ),
            _counter(
                "scriptworks_hub_events_delivered",
                "Events this process's hub read and fanned out.",
                hub.delivered,
            ),
        ]
    background = getattr(state, "worker", None)
    worker = background.outbox if background is not None else None
    if worker is not None:
        families += [
            _counter(
                "scriptworks_worker_claimed", "Commands claimed by this process's worker.", worker.claimed
            ),
            _counter(
                "scriptworks_worker_completed",
                "Commands completed by this process's worker.",
                worker.completed,
            ),
            _counter(
                "scriptworks_worker_failed_attempts",
                "Handler failures (retried or final) in this process's worker.",
                worker.failed_attempts,
            ),
        ]
    pool = engine.pool
    families += [
        _gauge("scriptworks_db_pool_size", "Configured connection pool size.", pool.size()),
        _gauge("scriptworks_db_pool_checked_out", "Pooled connections in use.", pool.checkedout()),
        _gauge(
            "scriptworks_db_pool_overflow", "Connections open beyond the pool size.", max(pool.overflow(), 0)
        ),
    ]
    return families


class MetricsController(Controller):
    path = "/metrics"
    tags = ["Operations"]

    @get(
        "/",
        summary="Prometheus metrics",
        description="Prometheus text exposition format. Needs a bearer token like every other route.",
        media_type=CONTENT_TYPE_LATEST,
        responses=errors(401),
    )
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        snapshot = CollectorRegistry()
        snapshot.register(_Snapshot(await _families(request)))
        return Response(
            generate_latest(REGISTRY) + generate_latest(snapshot),
            media_type=CONTENT_TYPE_LATEST,
        )
