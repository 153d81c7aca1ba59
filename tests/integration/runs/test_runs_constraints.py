"""The database itself keeps runs, variables, steps and trigger keys consistent, whatever writes to it.

The one place tests write SQL directly: the point is that the database refuses these rows.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from app.lib.db import asyncpg_connect_kwargs
from tests.support.api import Api
from tests.support.runs import script_with_version, start_run
from tests.support.triggers import event_type, post_event

NOW = datetime.datetime(2026, 3, 1, 10, 0, tzinfo=datetime.UTC)
SCHEDULE = {"schedule_id": uuid.uuid4(), "planned_at": NOW}
EVENT = {"triggering_event_id": uuid.uuid4()}


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(database_url))
    try:
        yield connection
    finally:
        await connection.close()


async def insert_run(
    db: asyncpg.Connection, tenant: str, script_id: str, version: int, **fields: Any
) -> None:
    row = {
        "id": uuid.uuid4(),
        "tenant_id": tenant,
        "script_id": uuid.UUID(script_id),
        "version": version,
        "status": "RUNNING",
        "trigger_type": "API_RUN",
        "started_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await db.execute(f"INSERT INTO runs ({columns}) VALUES ({placeholders})", *row.values())


CONSISTENT = [
    ("API_RUN", {}),
    ("ENDPOINT_REQUEST", {}),
    ("SCHEDULED_TASK", SCHEDULE),
    ("EVENT_TRIGGER", EVENT),
    ("LIFECYCLE_HOOK", EVENT),
]
INCONSISTENT = [
    ("SCHEDULED_TASK", {}),
    ("SCHEDULED_TASK", {"schedule_id": uuid.uuid4()}),
    ("SCHEDULED_TASK", {"planned_at": NOW}),
    ("SCHEDULED_TASK", {**SCHEDULE, **EVENT}),
    ("EVENT_TRIGGER", {}),
    ("EVENT_TRIGGER", {**EVENT, **SCHEDULE}),
    ("EVENT_TRIGGER", {**EVENT, "planned_at": NOW}),
    ("LIFECYCLE_HOOK", {}),
    ("LIFECYCLE_HOOK", {**EVENT, "schedule_id": uuid.uuid4()}),
    ("API_RUN", EVENT),
    ("API_RUN", SCHEDULE),
    ("ENDPOINT_REQUEST", {"planned_at": NOW}),
    ("ENDPOINT_REQUEST", EVENT),
]


async def real_source(api: Api, script_id: str, source: dict[str, Any]) -> dict[str, Any]:
    """The source with ids of a real schedule and a real incoming event (the foreign keys hold)."""
    real = dict(source)
    if "schedule_id" in real:
        response = await api.post(f"/scripts/{script_id}/schedules", json={"cron": "0 9 1 1 *"})
        real["schedule_id"] = uuid.UUID(response.json()["id"])
    if "triggering_event_id" in real:
        event = await post_event(api, await event_type(api), "sensor-1")
        real["triggering_event_id"] = uuid.UUID(event["eventId"])
    return real


@pytest.mark.parametrize(("trigger_type", "source"), CONSISTENT, ids=[t for t, _ in CONSISTENT])
async def test_the_database_accepts_a_run_whose_source_fits_its_trigger_type(
    api: Api, tenant: str, db: asyncpg.Connection, trigger_type: str, source: dict[str, Any]
) -> None:
    script_id, version = await script_with_version(api)

    await insert_run(
        db, tenant, script_id, version, trigger_type=trigger_type, **await real_source(api, script_id, source)
    )


@pytest.mark.parametrize(
    ("trigger_type", "source"),
    [("SCHEDULED_TASK", SCHEDULE), ("EVENT_TRIGGER", EVENT)],
    ids=["unknown-schedule", "unknown-event"],
)
async def test_the_database_refuses_a_run_of_an_unknown_schedule_or_event(
    api: Api, tenant: str, db: asyncpg.Connection, trigger_type: str, source: dict[str, Any]
) -> None:
    script_id, version = await script_with_version(api)

    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await insert_run(db, tenant, script_id, version, trigger_type=trigger_type, **source)


@pytest.mark.parametrize(
    ("trigger_type", "source", "index"),
    [
        ("SCHEDULED_TASK", SCHEDULE, "uq_runs_schedule_planned"),
        ("EVENT_TRIGGER", EVENT, "uq_runs_event_script"),
        ("LIFECYCLE_HOOK", EVENT, "uq_runs_event_script"),
    ],
    ids=["fire-time", "event-and-script", "hook-and-script"],
)
async def test_the_database_refuses_a_second_run_of_one_trigger_key(
    api: Api, tenant: str, db: asyncpg.Connection, trigger_type: str, source: dict[str, Any], index: str
) -> None:
    script_id, version = await script_with_version(api)
    real = await real_source(api, script_id, source)
    await insert_run(db, tenant, script_id, version, trigger_type=trigger_type, **real)

    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        await insert_run(db, tenant, script_id, version, trigger_type=trigger_type, **real)

    assert refused.value.constraint_name == index


async def test_the_database_refuses_a_second_active_subscription(
    api: Api, tenant: str, db: asyncpg.Connection
) -> None:
    name = await event_type(api)
    script_id, _ = await script_with_version(api)
    insert = (
        "INSERT INTO trigger_subscriptions (id, tenant_id, subject, event_name, script_id, active, "
        "deactivated_at, created_by_id, created_at, updated_at) "
        "VALUES ($1, $2, 's', $3, $4, $5, $6, 'x', now(), now())"
    )
    await db.execute(insert, uuid.uuid4(), tenant, name, uuid.UUID(script_id), False, NOW)
    await db.execute(insert, uuid.uuid4(), tenant, name, uuid.UUID(script_id), True, None)

    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        await db.execute(insert, uuid.uuid4(), tenant, name, uuid.UUID(script_id), True, None)

    assert refused.value.constraint_name == "uq_trigger_subscriptions_active"


@pytest.mark.parametrize(
    ("trigger_type", "source"),
    INCONSISTENT,
    ids=[f"{t}-with-{'+'.join(s) or 'nothing'}" for t, s in INCONSISTENT],
)
async def test_the_database_refuses_a_run_whose_source_contradicts_its_trigger_type(
    api: Api, tenant: str, db: asyncpg.Connection, trigger_type: str, source: dict[str, Any]
) -> None:
    script_id, version = await script_with_version(api)

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await insert_run(db, tenant, script_id, version, trigger_type=trigger_type, **source)

    assert refused.value.constraint_name == "ck_runs_trigger_source"


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"status": "PAUSED", "ended_at": NOW}, "ck_runs_status"),
        ({"trigger_type": "BY_HAND"}, "ck_runs_trigger_type"),
        ({"status": "RUNNING", "ended_at": NOW}, "ck_runs_ended_at"),
        ({"status": "SUCCEEDED"}, "ck_runs_ended_at"),
        ({"status": "FAILED", "ended_at": NOW - datetime.timedelta(seconds=1)}, "ck_runs_ended_after_start"),
    ],
    ids=[
        "unknown-status",
        "unknown-trigger",
        "running-with-end",
        "finished-without-end",
        "ends-before-start",
    ],
)
async def test_the_database_refuses_an_inconsistent_run_state(
    api: Api, tenant: str, db: asyncpg.Connection, fields: dict[str, Any], constraint: str
) -> None:
    script_id, version = await script_with_version(api)

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await insert_run(db, tenant, script_id, version, **fields)

    assert refused.value.constraint_name == constraint


async def test_the_database_refuses_a_run_of_a_version_that_does_not_exist(
    api: Api, tenant: str, db: asyncpg.Connection
) -> None:
    script_id, version = await script_with_version(api)

    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await insert_run(db, tenant, script_id, version + 1)


@pytest.mark.parametrize(
    "values",
    [{}, {"str_val": "a", "num_val": 1.0}, {"bool_val": True, "json_val": "{}"}],
    ids=["no-value", "two-values", "bool-and-json"],
)
async def test_the_database_refuses_a_variable_without_exactly_one_value(
    api: Api, tenant: str, db: asyncpg.Connection, values: dict[str, Any]
) -> None:
    run = await start_run(api)
    row = {"id": uuid.uuid4(), "tenant_id": tenant, "run_id": uuid.UUID(run["id"]), "key": "k", **values}
    columns = ", ".join([*row, "created_at", "updated_at"])
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute(
            f"INSERT INTO run_variables ({columns}) VALUES ({placeholders}, now(), now())", *row.values()
        )

    assert refused.value.constraint_name == "ck_run_variables_one_value"


@pytest.mark.parametrize(
    ("step_type", "data"),
    [("say", '{"dataType": "reportData"}'), ("report", '{"dataType": "closedQuestionData"}')],
    ids=["data-on-say", "wrong-tag"],
)
async def test_the_database_refuses_step_data_that_does_not_fit_the_step_type(
    api: Api, tenant: str, db: asyncpg.Connection, step_type: str, data: str
) -> None:
    run = await start_run(api)

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await db.execute(
            "INSERT INTO run_steps (id, tenant_id, run_id, node_id, step_type, executed_at, data, created_at,"
            " updated_at) VALUES ($1, $2, $3, 'n', $4, now(), $5::jsonb, now(), now())",
            uuid.uuid4(),
            tenant,
            uuid.UUID(run["id"]),
            step_type,
            data,
        )

    assert refused.value.constraint_name == "ck_run_steps_data_fits_type"
