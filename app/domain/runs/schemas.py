"""Wire shapes of runs, their variables and steps, and the batch rules msgspec cannot express."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from app.domain.runs.step_data import StepData, StepType
from app.lib.errors import ValidationFailed
from app.lib.schema import CamelStruct, Out, TenantClaim, TenantResourceOut, Timestamp, TimestampOrNone

__all__ = [
    "MAX_BATCH",
    "ExecutionReport",
    "FinishStatus",
    "RunCreate",
    "RunDetail",
    "RunFinish",
    "RunOut",
    "RunStarted",
    "RunStatus",
    "ScheduledExecutionReport",
    "StepIn",
    "StepOut",
    "TriggerType",
    "VariableIn",
    "VariableOut",
    "check_report",
    "check_steps",
    "check_variables",
]

RunStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
FinishStatus = Literal["SUCCEEDED", "FAILED", "CANCELLED"]
TriggerType = Literal["API_RUN", "SCHEDULED_TASK", "EVENT_TRIGGER", "ENDPOINT_REQUEST", "LIFECYCLE_HOOK"]
VersionNumber = Annotated[int, Meta(ge=1, le=2_147_483_647)]
ActorId = Annotated[str, Meta(min_length=1, max_length=128)]
ConnectorType = Annotated[str, Meta(min_length=1, max_length=100)]
ConnectorKey = Annotated[str, Meta(min_length=1, max_length=200)]
VariableKey = Annotated[str, Meta(min_length=1, max_length=200)]
NodeId = Annotated[str, Meta(min_length=1, max_length=200)]
AwareTime = Annotated[datetime.datetime, Meta(tz=True)]

# Items per POST of variables or steps; larger reports are split by the runner.
MAX_BATCH = 1000


class RunCreate(CamelStruct):
    script_id: UUID
    version: VersionNumber
    started_by_id: ActorId | None = None
    connector_type: ConnectorType | None = None
    connector_key: ConnectorKey | None = None
    tenant_id: TenantClaim | None = None


class RunFinish(CamelStruct):
    status: FinishStatus
    tenant_id: TenantClaim | None = None


class VariableIn(CamelStruct):
    """One variable; exactly one of the four values must be present and not null."""

    key: VariableKey
    str_val: str | None = None
    num_val: float | None = None
    bool_val: bool | None = None
    json_val: Any = None

    def values(self) -> list[Any]:
        return [v for v in (self.str_val, self.num_val, self.bool_val, self.json_val) if v is not None]


class StepIn(CamelStruct):
    node_id: NodeId
    step_type: StepType
    executed_at: AwareTime
    next_node_id: NodeId | None = None
    data: StepData | None = None


class ExecutionReport(CamelStruct, kw_only=True):
    """A runner's report of a whole triggered execution: the version it ran, its steps and,
    when it is over, the final status."""

    version: VersionNumber
    steps: list[StepIn]
    status: FinishStatus | None = None
    started_at: AwareTime | None = None
    ended_at: AwareTime | None = None
    tenant_id: TenantClaim | None = None


class ScheduledExecutionReport(ExecutionReport, kw_only=True):
    """The same for a scheduled execution, which the schedule's fire time identifies."""

    planned_at: AwareTime


def _number(value: float | None) -> float | int | None:
    """Whole numbers go back out as integers (``42``, not ``42.0``) while a double holds them exactly."""
    if value is not None and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _step_data(value: Any) -> StepData | None:
    return None if value is None else msgspec.convert(value, StepData)


class RunOut(TenantResourceOut):
    script_id: UUID
    version: int
    status: RunStatus
    trigger_type: TriggerType
    schedule_id: UUID | None
    planned_at: TimestampOrNone
    triggering_event_id: UUID | None
    event_data: dict[str, Any] | None
    started_by_id: str | None
    connector_type: str | None
    connector_key: str | None
    started_at: Timestamp
    ended_at: TimestampOrNone


class RunStarted(RunOut):
    """The run just started; ``runId`` repeats ``id`` for runners that look for it."""

    run_id: UUID

    @classmethod
    def of(cls, row: Any, /, **values: Any) -> RunStarted:
        return super().of(row, run_id=row["id"], **values)


class VariableOut(Out):
    key: str
    str_val: str | None
    num_val: float | int | None
    bool_val: bool | None
    json_val: Any
    created_at: Timestamp
    updated_at: Timestamp

    converters: ClassVar[dict[str, Callable[[Any], Any]]] = {"num_val": _number}


class StepOut(Out):
    id: UUID
    node_id: str
    step_type: StepType
    next_node_id: str | None
    executed_at: Timestamp
    data: StepData | None

    converters: ClassVar[dict[str, Callable[[Any], Any]]] = {"data": _step_data}


class RunDetail(RunOut):
    """A run with its variables (by key) and steps (in executedAt order)."""

    vars: list[VariableOut]
    steps: list[StepOut]

    @classmethod
    def of_parts(cls, run: Any, variables: Sequence[Any], steps: Sequence[Any]) -> RunDetail:
        return cls.of(run, vars=[VariableOut.of(v) for v in variables], steps=[StepOut.of(s) for s in steps])


def _check_batch(items: Sequence[Any], noun: str) -> None:
    if not items:
        raise ValidationFailed(
            f"Send at least one {noun}.", details=[{"field": "body", "message": "must not be empty"}]
        )
    if len(items) > MAX_BATCH:
        raise ValidationFailed(
            f"Send at most {MAX_BATCH} {noun}s per request.",
            details=[{"field": "body", "message": f"has {len(items)} items, at most {MAX_BATCH} allowed"}],
        )


def check_variables(items: Sequence[VariableIn]) -> None:
    """Exactly one value per item and each key once per request; every problem is reported."""
    _check_batch(items, "variable")
    problems: list[dict[str, str]] = []
    first_index: dict[str, int] = {}
    for index, item in enumerate(items):
        count = len(item.values())
        if count != 1:
            problems.append(
                {
                    "field": f"[{index}]",
                    "message": f"exactly one of strVal, numVal, boolVal, jsonVal must be set, got {count}",
                }
            )
        if item.key in first_index:
            problems.append(
                {
                    "field": f"[{index}].key",
                    "message": f"duplicate key {item.key!r} (also at [{first_index[item.key]}])",
                }
            )
        else:
            first_index[item.key] = index
    if problems:
        raise ValidationFailed(f"Invalid {problems[0]['field']}: {problems[0]['message']}", details=problems)


def check_steps(items: Sequence[StepIn]) -> None:
    _check_batch(items, "step")


def check_report(report: ExecutionReport) -> None:
    """The rules of an execution report msgspec cannot express; steps as in ``check_steps``."""
    if not report.steps:
        raise ValidationFailed(
            "Send at least one step.", details=[{"field": "steps", "message": "must not be empty"}]
        )
    if len(report.steps) > MAX_BATCH:
        raise ValidationFailed(
            f"Send at most {MAX_BATCH} steps per report.",
            details=[{"field": "steps", "message": f"has {len(report.steps)} items, at most {MAX_BATCH}"}],
        )
    if report.ended_at is not None and report.status is None:
        raise ValidationFailed(
            "endedAt needs the final status.",
            details=[{"field": "endedAt", "message": "only with status"}],
        )
    if report.started_at is not None and report.ended_at is not None and report.ended_at < report.started_at:
        raise ValidationFailed(
            "endedAt is before startedAt.",
            details=[{"field": "endedAt", "message": "is before startedAt"}],
        )
