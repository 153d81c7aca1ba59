"""OpenAPI links: from each operation that creates something to the operations that take its id.

Keyed by operationId (Litestar's, from method and path). A client generator or a stateful test
follows them: POST /scripts answers an id that GET /scripts/{script_id} takes, and so on.
``tests/unit/test_openapi_file.py`` checks that every link names an operation and parameters it has.
"""

from __future__ import annotations

from litestar.openapi.spec import Link

__all__ = ["LINKS"]


def _link(operation_id: str, description: str, **parameters: str) -> Link:
    """``parameters``: the target's parameter -> a runtime expression, e.g. ``$response.body#/id``."""
    return Link(operation_id=operation_id, description=description, parameters=parameters)


_ID = "$response.body#/id"
_SCRIPT_ID = "$response.body#/scriptId"
_CORRELATION_ID = "$response.body#/correlationId"


def _script(script_id: str) -> dict[str, Link]:
    return {
        "GetScript": _link(
            "ScriptsScriptIdGetScript", "Read the script (and its ETag).", script_id=script_id
        ),
        "UpdateScript": _link(
            "ScriptsScriptIdUpdateScript", "Change or archive the script.", script_id=script_id
        ),
        "ListAudit": _link("ScriptsScriptIdAuditListAudit", "The script's audit trail.", script_id=script_id),
        "ListVersions": _link(
            "ScriptsScriptIdVersionsListVersions", "The script's versions.", script_id=script_id
        ),
        "CreateVersion": _link(
            "ScriptsScriptIdVersionsCreateVersion", "Save a new version of the script.", script_id=script_id
        ),
        "ListRuns": _link("RunsListRuns", "The script's runs.", scriptId=script_id),
        "ListSchedules": _link(
            "ScriptsScriptIdSchedulesListSchedules", "The script's schedules.", script_id=script_id
        ),
        "CreateSchedule": _link(
            "ScriptsScriptIdSchedulesCreateSchedule", "Schedule runs of the script.", script_id=script_id
        ),
        "ListEndpoints": _link(
            "ScriptsScriptIdEndpointsListEndpoints", "The script's custom endpoints.", script_id=script_id
        ),
        "CreateEndpoint": _link(
            "ScriptsScriptIdEndpointsCreateEndpoint",
            "Start the script from a custom endpoint.",
            script_id=script_id,
        ),
    }


def _run(run_id: str) -> dict[str, Link]:
    return {
        "GetRun": _link("RunsRunIdGetRun", "Read the run.", run_id=run_id),
        "FinishRun": _link("RunsRunIdFinishFinishRun", "Finish the run.", run_id=run_id),
        "RecordSteps": _link(
            "RunsRunIdStepsRecordSteps", "Record the steps the run executed.", run_id=run_id
        ),
        "UpsertVariables": _link("RunsRunIdVarsUpsertVariables", "Set the run's variables.", run_id=run_id),
    }


def _unsubscribe(operation_id: str) -> dict[str, Link]:
    return {
        "Unsubscribe": _link(
            operation_id, "Delete the subscription.", subject="$response.body#/subject", subscription_id=_ID
        )
    }


_HOOKS = ("PostEndpoint", "GetCallEndpoint", "PutCallEndpoint", "PatchCallEndpoint", "DeleteCallEndpoint")

LINKS: dict[str, dict[str, Link]] = {
    "ScriptsCreateScript": _script(_ID),
    "ScriptsScriptIdVersionsCreateVersion": {
        "GetVersion": _link(
            "ScriptsScriptIdVersionsGetVersion",
            "Read the version.",
            script_id=_SCRIPT_ID,
            version="$response.body#/version",
        ),
        "PublishVersion": _link(
            "ScriptsScriptIdVersionsPublishPublishVersion",
            "Publish the version.",
            script_id=_SCRIPT_ID,
            version="$response.body#/version",
        ),
    },
    "RunsStartRun": {
        **_run(_ID),
        "GetScript": _link("ScriptsScriptIdGetScript", "The script the run runs.", script_id=_SCRIPT_ID),
    },
    "CommandsPostCommand": {
        "GetCommand": _link(
            "CommandsCorrelationIdGetCommand",
            "The command's status and outcome event.",
            correlation_id=_CORRELATION_ID,
        ),
        "RetryCommand": _link(
            "CommandsCorrelationIdRetryRetryCommand",
            "Retry the command once it has FAILED (or was CANCELLED).",
            correlation_id=_CORRELATION_ID,
        ),
        "CancelCommand": _link(
            "CommandsCorrelationIdCancelCancelCommand",
            "Cancel the command while it is PENDING.",
            correlation_id=_CORRELATION_ID,
        ),
        "AwaitOutcome": _link(
            "EventsStreamStream",
            "The command's events, live, and replayed when already written.",
            correlationId=_CORRELATION_ID,
        ),
    },
    "EventsReceiveEvent": {
        "GetEvent": _link(
            "EventsEventIdGetEvent",
            "The stored incoming event and the runs it started.",
            event_id="$response.body#/eventId",
        ),
        "GetIncomingEvent": _link(
            "EventsIncomingEventIdGetIncomingEvent",
            "What became of the event per subscription, once debounce windows close too.",
            event_id="$response.body#/eventId",
        ),
    },
    "EventsStreamTicketsMintStreamTicket": {
        "OpenStream": _link(
            "EventsStreamStream",
            "Open the stream with the ticket as ?access_token=.",
            access_token="$response.body#/ticket",
        )
    },
    "ScriptsScriptIdSchedulesCreateSchedule": {
        "GetSchedule": _link("SchedulesScheduleIdGetSchedule", "Read the schedule.", schedule_id=_ID),
        "UpdateSchedule": _link("SchedulesScheduleIdUpdateSchedule", "Change the schedule.", schedule_id=_ID),
        "DeleteSchedule": _link("SchedulesScheduleIdDeleteSchedule", "Delete the schedule.", schedule_id=_ID),
        "ReportScheduled": _link(
            "ScriptsScriptIdRunsScheduledScheduleIdReportScheduled",
            "Report an execution of the schedule.",
            script_id=_SCRIPT_ID,
            schedule_id=_ID,
        ),
    },
    "ScriptsScriptIdEndpointsCreateEndpoint": {
        "DeleteEndpoint": _link(
            "ScriptsScriptIdEndpointsEndpointIdDeleteEndpoint",
            "Delete the endpoint.",
            script_id=_SCRIPT_ID,
            endpoint_id=_ID,
        )
    },
    "SubjectsSubscriptionsTriggersSubscribe": _unsubscribe(
        "SubjectsSubscriptionsTriggersSubscriptionIdUnsubscribe"
    ),
    "InternalSubjectsSubscriptionsTriggersSubscribe": _unsubscribe(
        "InternalSubjectsSubscriptionsTriggersSubscriptionIdUnsubscribe"
    ),
    **{
        f"HooksTenantIdRoute{hook}": {
            "GetRun": _link("RunsRunIdGetRun", "The run the call started.", run_id="$response.body#/runId")
        }
        for hook in _HOOKS
    },
}
