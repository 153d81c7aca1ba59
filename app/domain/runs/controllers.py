"""HTTP surface of runs, their variables and steps (``/runs``)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_204_NO_CONTENT

from app.domain.runs.reports import ExecutionReportService
from app.domain.runs.schemas import (
    MAX_BATCH,
    ExecutionReport,
    RunCreate,
    RunDetail,
    RunFinish,
    RunOut,
    RunStarted,
    RunStatus,
    ScheduledExecutionReport,
    StepIn,
    StepOut,
    TriggerType,
    VariableIn,
    VariableOut,
)
from app.domain.runs.services import RunService
from app.lib.dependencies import Paging, Tenant, Window
from app.lib.openapi import errors, json_batch, json_body
from app.lib.pagination import Page, build_page
from app.lib.principals import Principal
from app.lib.routes import action_route, create_route, list_route, read_route
from app.lib.tenancy import ensure_same_tenant
from app.lib.timerange import provide_time_window
from app.lib.uow import UnitOfWork

__all__ = ["ExecutionReportController", "RunController"]

Runs = NamedDependency[RunService]
VariablesBody = Annotated[list[VariableIn], json_batch(1, MAX_BATCH)]
StepsBody = Annotated[list[StepIn], json_batch(1, MAX_BATCH)]


async def provide_run_service(request: Request[Any, Any, Any], tenant_id: Tenant) -> RunService:
    """The run service on the request's unit of work (``app.lib.uow``).

    It takes ``tenant_id`` only to chain after it: Litestar resolves a batch of independent
    dependencies in a task group, a sizeable share of the CPU time of the hot ``POST /runs``;
    chained, every batch holds one. For the same reason the handlers read the caller from
    ``request.user`` (what the ``actor`` dependency returns) instead of a second dependency.
    """
    return RunService(UnitOfWork.of_request(request))


async def provide_report_service(
    request: Request[Any, Any, Any], tenant_id: Tenant
) -> ExecutionReportService:
    """Like ``provide_run_service``."""
    return ExecutionReportService(UnitOfWork.of_request(request))


_REPORT_STEPS = [
    {"nodeId": "greet", "stepType": "say", "nextNodeId": "confirm", "executedAt": "2026-03-01T10:00:00.120Z"},
    {
        "nodeId": "confirm",
        "stepType": "closedQuestion",
        "executedAt": "2026-03-01T10:00:04.500Z",
        "data": {"dataType": "closedQuestionData", "answer": "yes", "probability": 0.93},
    },
]
TriggeredReportBody = Annotated[
    ExecutionReport,
    json_body(
        {
            "version": 3,
            "status": "SUCCEEDED",
            "startedAt": "2026-03-01T10:00:00.000Z",
            "endedAt": "2026-03-01T10:00:05.000Z",
            "steps": _REPORT_STEPS,
        },
        "status and endedAt only when the execution is over; startedAt only counts when the report "
        "creates the run.",
    ),
]
ScheduledReportBody = Annotated[
    ScheduledExecutionReport,
    json_body(
        {
            "version": 3,
            "plannedAt": "2026-03-01T10:00:00.000Z",
            "status": "FAILED",
            "steps": _REPORT_STEPS[:1],
        },
        "plannedAt is the fire time the execution belongs to (the run's plannedAt).",
    ),
]
_REPORT_RULES = (
    "Steps are checked like `POST /runs/{runId}/steps` (400/422 alike) and stored once per "
    "(nodeId, executedAt), so a retry adds nothing; `status` finishes the run (the same status again is "
    "a no-op; a different one, or new steps for a finished run, 409 RUN_FINISHED). The report's "
    "`version` must be the run's (409 CONFLICT); when it creates the run, the version must exist "
    "(422 VERSION_NOT_FOUND)."
)


def report_route(path: str, summary: str, which_run: str, unknown: str) -> put:
    """PUT of an execution report: which run it completes or creates, the rules every report
    follows, and what is unknown (404)."""
    return put(
        path,
        status_code=HTTP_204_NO_CONTENT,
        summary=summary,
        description=f"{which_run} {_REPORT_RULES} {unknown}",
        responses=errors(400, 401, 403, 404, 409, 413, 422),
    )


class ExecutionReportController(Controller):
    """Runners report a whole triggered or scheduled execution at once (idempotent PUTs)."""

    path = "/scripts/{script_id:uuid}/runs"
    tags = ["Runs"]
    dependencies = {"reports": Provide(provide_report_service)}

    @report_route(
        "/triggered/{event_id:uuid}",
        "Report a triggered execution",
        "Completes the run the incoming event started for this script, or creates it "
        "(EVENT_TRIGGER, or LIFECYCLE_HOOK for a recorded lifecycle event) when there is none.",
        "Unknown event or script (of this tenant) → 404.",
    )
    async def report_triggered(
        self,
        reports: NamedDependency[ExecutionReportService],
        tenant_id: Tenant,
        request: Request[Principal, Any, Any],
        script_id: FromPath[UUID],
        event_id: FromPath[UUID],
        data: TriggeredReportBody,
    ) -> None:
        ensure_same_tenant(tenant_id, data.tenant_id)
        await reports.report_triggered(tenant_id, request.user, script_id, event_id, data)

    @report_route(
        "/scheduled/{schedule_id:uuid}",
        "Report a scheduled execution",
        "Completes the run of the schedule's fire time `plannedAt`, or creates it (SCHEDULED_TASK) "
        "when there is none.",
        "Unknown schedule, a schedule of another script, or unknown script → 404.",
    )
    async def report_scheduled(
        self,
        reports: NamedDependency[ExecutionReportService],
        tenant_id: Tenant,
        request: Request[Principal, Any, Any],
        script_id: FromPath[UUID],
        schedule_id: FromPath[UUID],
        data: ScheduledReportBody,
    ) -> None:
        ensure_same_tenant(tenant_id, data.tenant_id)
        await reports.report_scheduled(tenant_id, request.user, script_id, schedule_id, data)


class RunController(Controller):
    path = "/runs"
    tags = ["Runs"]
    dependencies = {"runs": Provide(provide_run_service), "window": Provide(provide_time_window)}

    @create_route(
        "Start a run",
        "Starts an API_RUN of a version (published or not) of one of the tenant's scripts. "
        "`startedById` defaults to the caller. The answer is the run, with `runId` equal to `id`. "
        "Unknown script → 404; unknown version → 422 VERSION_NOT_FOUND; an archived script → 409 "
        "SCRIPT_ARCHIVED (it starts nothing until set back to DRAFT or PUBLISHED).",
        also=(404, 422),
    )
    async def start_run(
        self, runs: Runs, tenant_id: Tenant, request: Request[Principal, Any, Any], data: JSONBody[RunCreate]
    ) -> RunStarted:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return RunStarted.of(await runs.start_run(tenant_id, request.user, data))

    @list_route(
        "List runs",
        "Newest first (by startedAt, then id). `from` is inclusive and `to` exclusive, both on "
        "startedAt, both RFC 3339 with a UTC offset.",
    )
    async def list_runs(
        self,
        runs: Runs,
        tenant_id: Tenant,
        page: Paging,
        window: Window,
        script_id: Annotated[
            UUID | None, QueryParameter(name="scriptId", description="Only runs of this script.")
        ] = None,
        status: Annotated[RunStatus | None, QueryParameter(description="Only runs in this status.")] = None,
        trigger_type: Annotated[
            TriggerType | None, QueryParameter(name="triggerType", description="Only runs started this way.")
        ] = None,
        triggering_event_id: Annotated[
            UUID | None,
            QueryParameter(name="triggeringEventId", description="Only runs started by this incoming event."),
        ] = None,
    ) -> Page[RunOut]:
        rows = await runs.list_runs(
            tenant_id,
            page,
            script_id=script_id,
            status=status,
            trigger_type=trigger_type,
            triggering_event_id=triggering_event_id,
            started_from=window.since,
            started_before=window.until,
        )
        return build_page(rows, page, lambda r: (r["started_at"], r["id"]), RunOut.of)

    @read_route(
        "/{run_id:uuid}",
        "Get a run with its variables and steps",
        "Variables in key order; steps in executedAt order.",
    )
    async def get_run(self, runs: Runs, tenant_id: Tenant, run_id: FromPath[UUID]) -> RunDetail:
        return RunDetail.of_parts(*await runs.get_run(tenant_id, run_id))

    @action_route(
        "/{run_id:uuid}/vars",
        "Set run variables",
        "A JSON array of up to 1000 `{key, strVal | numVal | boolVal | jsonVal}`, exactly one "
        "value present and not null per item, each key once per request. Each key is inserted or "
        "overwritten (all in one statement). Answers with the stored variables. A finished run takes "
        "no variables (409 RUN_FINISHED).",
        also=(413,),
    )
    async def upsert_variables(
        self, runs: Runs, tenant_id: Tenant, run_id: FromPath[UUID], data: VariablesBody
    ) -> list[VariableOut]:
        return [VariableOut.of(v) for v in await runs.upsert_variables(tenant_id, run_id, data)]

    @create_route(
        "Record executed steps",
        "A JSON array of up to 1000 steps. Every `nodeId` and `nextNodeId` must be a node of the "
        "run's version graph (422 NODE_NOT_IN_VERSION), `stepType` must be that node's type "
        "(422 STEP_TYPE_MISMATCH), and `data`, when present, must be the tag that fits the step type "
        "(422 STEP_DATA_MISMATCH; types without a tag take no data). Nothing is stored unless every "
        "step passes. Answers with the stored steps, in request order. A finished run takes no steps "
        "(409 RUN_FINISHED).",
        path="/{run_id:uuid}/steps",
        also=(404, 422),
    )
    async def record_steps(
        self, runs: Runs, tenant_id: Tenant, run_id: FromPath[UUID], data: StepsBody
    ) -> list[StepOut]:
        return [StepOut.of(s) for s in await runs.record_steps(tenant_id, run_id, data)]

    @action_route(
        "/{run_id:uuid}/finish",
        "Finish a run",
        "Sets the final status and endedAt. Repeating the same finish changes nothing and "
        "answers the run as it is; a different final status → 409 RUN_FINISHED.",
        also=(413,),
    )
    async def finish_run(
        self, runs: Runs, tenant_id: Tenant, run_id: FromPath[UUID], data: JSONBody[RunFinish]
    ) -> RunOut:
        ensure_same_tenant(tenant_id, data.tenant_id)
        return RunOut.of(await runs.finish_run(tenant_id, run_id, data.status))
