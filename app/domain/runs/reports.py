"""Execution reports: a runner reports a whole triggered or scheduled execution in one request.

``PUT /scripts/{id}/runs/triggered/{eventId}`` and ``PUT /scripts/{id}/runs/scheduled/{scheduleId}``
are idempotent, so a runner may simply retry them:

- the run is found by its trigger key, the same unique keys the triggers start runs with:
  (incoming event, script) for triggered runs and (schedule, plannedAt) for scheduled ones. When
  the trigger already started the run, the report completes that run; otherwise the report
  creates it (``INSERT … ON CONFLICT DO NOTHING``, then read), so concurrent retries end up with
  one run;
- steps are checked against the run's version graph exactly like ``POST /runs/{id}/steps``, and
  a step is stored once per (node, executedAt): the run's row lock serialises reports of one run,
  and the insert skips steps the run already has;
- the final status, when given, finishes the run (with its Run.Finished event); the same status
  again is a no-op, a different one 409 ``RUN_FINISHED``, as are new steps for a finished run.

Everything of one report is one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from app.domain.runs import repositories
from app.domain.runs.schemas import ExecutionReport, ScheduledExecutionReport, check_report
from app.domain.runs.services import (
    RunService,
    RunSource,
    encode_json,
    node_type_cache,
    now_to_the_millisecond,
    run_finished,
    to_millisecond,
)
from app.domain.runs.steps import node_types_of, step_problems
from app.lib.correlation import current_correlation_id
from app.lib.errors import Conflict, NotFound, Unprocessable
from app.lib.principals import Principal

__all__ = ["ExecutionReportService"]


class ExecutionReportService(RunService):
    async def report_triggered(
        self,
        tenant_id: str,
        actor: Principal,
        script_id: uuid.UUID,
        event_id: uuid.UUID,
        report: ExecutionReport,
    ) -> None:
        """Record (or complete) the run of the script that the incoming event triggered."""
        check_report(report)
        async with self.uow.transaction() as conn:
            # Through SQLAlchemy first: its transaction begins with its first statement, and the
            # driver statements below must run inside it (a refused report leaves no run behind).
            is_lifecycle = (
                await conn.exec_driver_sql(repositories.INCOMING_EVENT_IS_LIFECYCLE, (event_id, tenant_id))
            ).scalar()
            driver = await _driver(conn)
            if is_lifecycle is None:
                raise NotFound("No incoming event with this id.")

            def find() -> Awaitable[asyncpg.Record | None]:
                return driver.fetchrow(repositories.EVENT_RUN_FOR_UPDATE, event_id, script_id, tenant_id)

            run = await find()
            if run is None:
                source = RunSource(
                    trigger_type="LIFECYCLE_HOOK" if is_lifecycle else "EVENT_TRIGGER",
                    triggering_event_id=event_id,
                )
                run = await self._create_run(driver, tenant_id, actor, script_id, report, source, find)
            await self._apply(conn, tenant_id, run, report)

    async def report_scheduled(
        self,
        tenant_id: str,
        actor: Principal,
        script_id: uuid.UUID,
        schedule_id: uuid.UUID,
        report: ScheduledExecutionReport,
    ) -> None:
        """Record (or complete) the run of the schedule's fire time ``plannedAt``."""
        check_report(report)
        planned_at = to_millisecond(report.planned_at)
        async with self.uow.transaction() as conn:
            # Through SQLAlchemy first, for the reason given in ``report_triggered``.
            schedule = (
                (await conn.exec_driver_sql(repositories.SCHEDULE_FOR_REPORT, (schedule_id, tenant_id)))
                .mappings()
                .one_or_none()
            )
            driver = await _driver(conn)
            if schedule is None or schedule["script_id"] != script_id:
                raise NotFound("No schedule with this id for this script.")

            def find() -> Awaitable[asyncpg.Record | None]:
                return driver.fetchrow(
                    repositories.SCHEDULED_RUN_FOR_UPDATE, schedule_id, planned_at, tenant_id
                )

            run = await find()
            if run is None:
                if schedule["deleted"]:
                    # Runs the schedule started before it was deleted can still be completed.
                    raise NotFound("No schedule with this id for this script.")
                source = RunSource(
                    trigger_type="SCHEDULED_TASK", schedule_id=schedule_id, planned_at=planned_at
                )
                run = await self._create_run(driver, tenant_id, actor, script_id, report, source, find)
            await self._apply(conn, tenant_id, run, report)

    # ---- helpers -----------------------------------------------------------------------------

    async def _create_run(
        self,
        driver: asyncpg.Connection,
        tenant_id: str,
        actor: Principal,
        script_id: uuid.UUID,
        report: ExecutionReport,
        source: RunSource,
        find: Callable[[], Awaitable[asyncpg.Record | None]],
    ) -> asyncpg.Record:
        started_at = (
            now_to_the_millisecond() if report.started_at is None else to_millisecond(report.started_at)
        )
        run = await driver.fetchrow(
            repositories.START_RUN_ONCE,
            uuid7(),
            tenant_id,
            script_id,
            report.version,
            source.trigger_type,
            source.schedule_id,
            source.planned_at,
            source.triggering_event_id,
            None if source.event_data is None else encode_json(source.event_data).decode(),
            actor.id,
            None,
            None,
            started_at,
            current_correlation_id(),
        )
        if run is not None:
            return run
        # A concurrent report created the run first (and has committed: the insert waited for it).
        run = await find()
        if run is not None:
            return run
        if not await driver.fetchval(repositories.SCRIPT_EXISTS, script_id, tenant_id):
            raise NotFound("No script with this id.")
        raise Unprocessable(
            f"Version {report.version} of this script does not exist.",
            code="VERSION_NOT_FOUND",
            details=[{"field": "version", "message": "no such version of the script"}],
        )

    async def _apply(
        self, conn: AsyncConnection, tenant_id: str, run: asyncpg.Record, report: ExecutionReport
    ) -> None:
        """Add the report's new steps to the (locked) run and finish it if the report says so."""
        if run["version"] != report.version:
            raise Conflict(
                f"This execution's run is of version {run['version']}, not {report.version}.",
                details=[{"field": "version", "message": f"the run is of version {run['version']}"}],
            )
        run_id = run["id"]
        located = (
            await conn.execute(repositories.RUN_FOR_STEPS, {"run_id": run_id, "tenant_id": tenant_id})
        ).one()
        node_types = node_type_cache.get(located.version_id)
        if node_types is None:
            nodes = await conn.scalar(repositories.VERSION_NODES, {"version_id": located.version_id})
            node_types = node_types_of(nodes)
            node_type_cache.put(located.version_id, node_types)
        problems = step_problems(report.steps, node_types)
        if problems:
            for problem in problems:
                problem["field"] = f"steps{problem['field']}"
            raise Unprocessable(
                "The steps do not fit the run's version graph.", code=problems[0]["code"], details=problems
            )
        now = now_to_the_millisecond()
        added = (
            await conn.execute(repositories.INSERT_NEW_STEPS, _step_params(tenant_id, run_id, report, now))
        ).all()
        if run["status"] != "RUNNING":
            if added or (report.status is not None and report.status != run["status"]):
                raise run_finished(run["status"])
            return
        if report.status is not None:
            ended_at = to_millisecond(report.ended_at) if report.ended_at is not None else now
            await conn.execute(
                repositories.FINISH_RUN,
                {
                    "run_id": run_id,
                    "tenant_id": tenant_id,
                    "status": report.status,
                    "now": now,
                    "ended_at": ended_at,
                    "correlation_id": current_correlation_id(),
                },
            )


def _step_params(tenant_id: str, run_id: uuid.UUID, report: ExecutionReport, now: Any) -> dict[str, Any]:
    steps = report.steps
    return {
        "run_id": run_id,
        "tenant_id": tenant_id,
        "now": now,
        "ids": [uuid7() for _ in steps],
        "node_ids": [step.node_id for step in steps],
        "step_types": [step.step_type for step in steps],
        "next_node_ids": [step.next_node_id for step in steps],
        "executed_ats": [to_millisecond(step.executed_at) for step in steps],
        "datas": [None if step.data is None else encode_json(step.data).decode() for step in steps],
    }


async def _driver(conn: AsyncConnection) -> asyncpg.Connection:
    return (await conn.get_raw_connection()).driver_connection  # type: ignore[return-value]
