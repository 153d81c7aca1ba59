"""The SQL of runs, variables and steps, built once at import.

Statements are SQLAlchemy Core (compiled once, then served from its cache) except the one that
starts a run: that is the hot path, so it is plain SQL handed straight to the asyncpg driver.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from sqlalchemy import Select, bindparam, select, text
from sqlalchemy.dialects.postgresql import JSONB

from app.db.runs import Run, RunStep, RunVariable
from app.db.scripts import ScriptVersion
from app.lib.pagination import Keyset, PageParams

runs = Run.__table__
versions = ScriptVersion.__table__

RUN_COLUMN_NAMES = (
    "id", "tenant_id", "script_id", "version", "status", "trigger_type", "schedule_id", "planned_at",
    "triggering_event_id", "event_data", "started_by_id", "connector_type", "connector_key",
    "started_at", "ended_at",
)  # fmt: skip
RUN_COLUMNS = [runs.c[name] for name in RUN_COLUMN_NAMES]

# Starts a run of an existing version of one of the tenant's scripts, and stores its Run.Started
# event, in one statement: the SELECT proves the version exists and belongs to the tenant (when
# it does not, nothing is inserted), and the event is a data-modifying CTE, so run and event
# commit together in a single round trip.
# Parameters: $1 id, $2 tenant, $3 script, $4 version, $5 trigger type, $6 schedule,
# $7 planned at, $8 triggering event, $9 event data (JSON text), $10 started by,
# $11 connector type, $12 connector key, $13 now, $14 correlation id.
START_RUN = f"""
    WITH run AS (
        INSERT INTO runs (id, tenant_id, script_id, version, status, trigger_type, schedule_id, planned_at,
                          triggering_event_id, event_data, started_by_id, connector_type, connector_key,
                          started_at, created_at, updated_at)
        SELECT $1::uuid, v.tenant_id, v.script_id, v.version, 'RUNNING', $5::varchar, $6::uuid,
               $7::timestamptz, $8::uuid, $9::jsonb, $10::varchar, $11::varchar, $12::varchar,
               $13::timestamptz, $13::timestamptz, $13::timestamptz
        FROM script_versions AS v
        WHERE v.script_id = $3::uuid AND v.version = $4::integer AND v.tenant_id = $2::varchar
        RETURNING {", ".join(RUN_COLUMN_NAMES)}
    ), started AS (
        INSERT INTO events (tenant_id, event, correlation_id, success, payload)
        SELECT tenant_id, 'Run.Started', $14::varchar, true,
               jsonb_build_object('runId', id, 'scriptId', script_id, 'version', version,
                                  'triggerType', trigger_type)
        FROM run
    )
    SELECT * FROM run
"""
SCRIPT_EXISTS = "SELECT EXISTS (SELECT FROM scripts WHERE id = $1::uuid AND tenant_id = $2::varchar)"

# Finishes a running run and stores its Run.Finished event in the same statement; a run already
# finished is left alone (the caller tells why). Another process's clock may lag the starter's:
# a run never ends before it started.
FINISH_RUN = text(
    f"""
    WITH finished AS (
        UPDATE runs SET status = :status, ended_at = greatest(CAST(:now AS timestamptz), started_at),
                        updated_at = CAST(:now AS timestamptz)
        WHERE id = :run_id AND tenant_id = :tenant_id AND status = 'RUNNING'
        RETURNING {", ".join(RUN_COLUMN_NAMES)}
    ), event AS (
        INSERT INTO events (tenant_id, event, correlation_id, success, payload)
        SELECT tenant_id, 'Run.Finished', :correlation_id, true,
               jsonb_build_object('runId', id, 'scriptId', script_id, 'version', version, 'status', status)
        FROM finished
    )
    SELECT * FROM finished
    """
).columns(*RUN_COLUMNS)

GET_RUN = select(*RUN_COLUMNS).where(
    runs.c.id == bindparam("run_id"), runs.c.tenant_id == bindparam("tenant_id")
)
RUN_STATUS = select(runs.c.status).where(
    runs.c.id == bindparam("run_id"), runs.c.tenant_id == bindparam("tenant_id")
)


def list_runs(
    tenant_id: str,
    page: PageParams,
    *,
    script_id: uuid.UUID | None = None,
    status: str | None = None,
    trigger_type: str | None = None,
    triggering_event_id: uuid.UUID | None = None,
    started_from: datetime.datetime | None = None,
    started_before: datetime.datetime | None = None,
) -> Select[Any]:
    """A keyset page of the tenant's runs, newest first; each filter is served by an index
    (README, "Runs: indexes")."""
    statement = select(*RUN_COLUMNS).where(runs.c.tenant_id == tenant_id)
    if script_id is not None:
        statement = statement.where(runs.c.script_id == script_id)
    if status is not None:
        statement = statement.where(runs.c.status == status)
    if trigger_type is not None:
        statement = statement.where(runs.c.trigger_type == trigger_type)
    if triggering_event_id is not None:
        statement = statement.where(runs.c.triggering_event_id == triggering_event_id)
    if started_from is not None:
        statement = statement.where(runs.c.started_at >= started_from)
    if started_before is not None:
        statement = statement.where(runs.c.started_at < started_before)
    return Keyset(("started_at", "id"), page).append_to_statement(statement, Run)


# The run's state and version, share-locked against a concurrent finish until the steps are in.
RUN_FOR_STEPS = (
    select(runs.c.status, versions.c.id.label("version_id"))
    .join(versions, (versions.c.script_id == runs.c.script_id) & (versions.c.version == runs.c.version))
    .where(runs.c.id == bindparam("run_id"), runs.c.tenant_id == bindparam("tenant_id"))
    .with_for_update(read=True, of=runs)
)
VERSION_NODES = select(versions.c.graph_json["nodes"]).where(versions.c.id == bindparam("version_id"))

# Upserts a batch of variables in one statement, only while the run is RUNNING. The run row is
# share-locked, so a concurrent finish waits for this batch, or this batch sees the run finished
# and writes nothing.
UPSERT_VARIABLES = text(
    """
    INSERT INTO run_variables
        (id, tenant_id, run_id, key, str_val, num_val, bool_val, json_val, created_at, updated_at)
    SELECT item.id, r.tenant_id, r.id, item.key, item.str_val, item.num_val, item.bool_val,
           CAST(item.json_val AS jsonb), CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM (SELECT id, tenant_id FROM runs
          WHERE id = :run_id AND tenant_id = :tenant_id AND status = 'RUNNING'
          FOR SHARE) AS r,
         unnest(CAST(:ids AS uuid[]), CAST(:keys AS varchar[]), CAST(:str_vals AS text[]),
                CAST(:num_vals AS float8[]), CAST(:bool_vals AS boolean[]), CAST(:json_vals AS text[]))
             AS item(id, key, str_val, num_val, bool_val, json_val)
    ON CONFLICT (run_id, key) DO UPDATE
        SET str_val = excluded.str_val, num_val = excluded.num_val, bool_val = excluded.bool_val,
            json_val = excluded.json_val, updated_at = excluded.updated_at
    RETURNING key, str_val, num_val, bool_val, json_val, created_at, updated_at
    """
).columns(
    key=RunVariable.key.type,
    str_val=RunVariable.str_val.type,
    num_val=RunVariable.num_val.type,
    bool_val=RunVariable.bool_val.type,
    json_val=JSONB(),
    created_at=RunVariable.created_at.type,
    updated_at=RunVariable.updated_at.type,
)

# Inserts a checked batch of steps in one statement, in request order.
INSERT_STEPS = text(
    """
    INSERT INTO run_steps
        (id, tenant_id, run_id, node_id, step_type, next_node_id, executed_at, data, created_at, updated_at)
    SELECT item.id, CAST(:tenant_id AS varchar), CAST(:run_id AS uuid), item.node_id, item.step_type,
           item.next_node_id, item.executed_at, CAST(item.data AS jsonb),
           CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM unnest(CAST(:ids AS uuid[]), CAST(:node_ids AS varchar[]), CAST(:step_types AS varchar[]),
                CAST(:next_node_ids AS varchar[]), CAST(:executed_ats AS timestamptz[]),
                CAST(:datas AS text[]))
         WITH ORDINALITY AS item(id, node_id, step_type, next_node_id, executed_at, data, position)
    ORDER BY item.position
    RETURNING id, node_id, step_type, next_node_id, executed_at, data
    """
).columns(
    id=RunStep.id.type,
    node_id=RunStep.node_id.type,
    step_type=RunStep.step_type.type,
    next_node_id=RunStep.next_node_id.type,
    executed_at=RunStep.executed_at.type,
    data=JSONB(),
)

RUN_VARIABLES = (
    select(RunVariable.__table__).where(RunVariable.run_id == bindparam("run_id")).order_by(RunVariable.key)
)
RUN_STEPS = (
    select(RunStep.__table__)
    .where(RunStep.run_id == bindparam("run_id"))
    .order_by(RunStep.executed_at, RunStep.id)
)
