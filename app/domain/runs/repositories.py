"""All SQL of runs, variables and steps, built once at import.

Statements are SQLAlchemy Core (compiled once, then served from its cache) except the one that
starts a run: that is the hot path, so it is plain SQL handed straight to the asyncpg driver.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any, TypedDict, Unpack

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


# The Run.Started event of every run a statement inserted (the CTE ``run``), as a data-modifying
# CTE of that statement: every way of starting a run stores its event in the same round trip.
def _run_started_event(correlation_id: str) -> str:
    return f"""INSERT INTO events (tenant_id, event, correlation_id, success, payload)
        SELECT tenant_id, 'Run.Started', {correlation_id}, true,
               jsonb_build_object('runId', id, 'scriptId', script_id, 'version', version,
                                  'triggerType', trigger_type)
        FROM run"""


# Starts a run of an existing version of one of the tenant's scripts, and stores its Run.Started
# event, in one statement: the SELECT proves the version exists and belongs to the tenant (when
# it does not, nothing is inserted), and the event is a data-modifying CTE, so run and event
# commit together in a single round trip.
# Parameters: $1 id, $2 tenant, $3 script, $4 version, $5 trigger type, $6 schedule,
# $7 planned at, $8 triggering event, $9 event data (JSON text), $10 started by,
# $11 connector type, $12 connector key, $13 now, $14 correlation id.
_START_RUN = """
    WITH run AS (
        INSERT INTO runs (id, tenant_id, script_id, version, status, trigger_type, schedule_id, planned_at,
                          triggering_event_id, event_data, started_by_id, connector_type, connector_key,
                          started_at, created_at, updated_at)
        SELECT $1::uuid, v.tenant_id, v.script_id, v.version, 'RUNNING', $5::varchar, $6::uuid,
               $7::timestamptz, $8::uuid, $9::jsonb, $10::varchar, $11::varchar, $12::varchar,
               $13::timestamptz, $13::timestamptz, $13::timestamptz
        FROM script_versions AS v
        WHERE v.script_id = $3::uuid AND v.version = $4::integer AND v.tenant_id = $2::varchar
          {startable}
        {on_conflict}
        RETURNING {columns}
    ), started AS (
        {started}
    )
    SELECT * FROM run
"""
START_RUN = _START_RUN.format(
    on_conflict="",
    columns=", ".join(RUN_COLUMN_NAMES),
    started=_run_started_event("$14::varchar"),
    # Archived scripts start nothing (POST /runs answers 409 SCRIPT_ARCHIVED).
    startable="AND NOT EXISTS (SELECT FROM scripts AS s WHERE s.id = v.script_id AND s.status = 'ARCHIVED')",
)
# The same, for a run that may exist already (an execution report's run, keyed by the unique
# (schedule_id, planned_at) or (triggering_event_id, script_id)): inserts nothing when it does.
START_RUN_ONCE = _START_RUN.format(
    on_conflict="ON CONFLICT DO NOTHING",
    columns=", ".join(RUN_COLUMN_NAMES),
    started=_run_started_event("$14::varchar"),
    # A report records an execution that happened: it is recorded even if the script has been
    # archived since.
    startable="",
)

# Starts runs of the ACTIVE versions of scripts, one per input row, in one statement with their
# Run.Started events: what triggers (incoming events, schedules, endpoints, lifecycle hooks) use,
# inside the caller's transaction. A script without an active version (or of another tenant)
# starts nothing; a run that exists already by its trigger key (one per schedule fire time, one
# per incoming event and script) is not started twice (ON CONFLICT DO NOTHING).
# Parameters: $1 ids, $2 tenants, $3 scripts, $4 trigger types, $5 schedules, $6 planned ats,
# $7 triggering events, $8 event data (JSON texts), $9 started by (all arrays, one item per run),
# $10 now, $11 correlation id.
START_ACTIVE_RUNS = f"""
    WITH input AS (
        SELECT * FROM unnest($1::uuid[], $2::varchar[], $3::uuid[], $4::varchar[], $5::uuid[],
                             $6::timestamptz[], $7::uuid[], $8::text[], $9::varchar[])
            WITH ORDINALITY AS i(id, tenant_id, script_id, trigger_type, schedule_id, planned_at,
                                 triggering_event_id, event_data, started_by_id, position)
    ), run AS (
        INSERT INTO runs (id, tenant_id, script_id, version, status, trigger_type, schedule_id, planned_at,
                          triggering_event_id, event_data, started_by_id, started_at, created_at, updated_at)
        SELECT i.id, s.tenant_id, s.id, v.version, 'RUNNING', i.trigger_type, i.schedule_id, i.planned_at,
               i.triggering_event_id, i.event_data::jsonb, i.started_by_id,
               $10::timestamptz, $10::timestamptz, $10::timestamptz
        FROM input AS i
        JOIN scripts AS s ON s.id = i.script_id AND s.tenant_id = i.tenant_id AND s.status <> 'ARCHIVED'
        JOIN script_versions AS v ON v.id = s.active_version_id
        ORDER BY i.position
        ON CONFLICT DO NOTHING
        RETURNING id, tenant_id, script_id, version, trigger_type, schedule_id, planned_at,
                  triggering_event_id
    ), started AS (
        {_run_started_event("$11::varchar")}
    )
    SELECT * FROM run
"""
SCRIPT_EXISTS = "SELECT EXISTS (SELECT FROM scripts WHERE id = $1::uuid AND tenant_id = $2::varchar)"
SCRIPT_STATUS = "SELECT status FROM scripts WHERE id = $1::uuid AND tenant_id = $2::varchar"

# Finishes a running run and stores its Run.Finished event in the same statement; a run already
# finished is left alone (the caller tells why). ``ended_at`` is now, or the end an execution
# report gives. Another process's clock may lag the starter's: a run never ends before it started.
FINISH_RUN = text(
    f"""
    WITH finished AS (
        UPDATE runs SET status = :status, ended_at = greatest(CAST(:ended_at AS timestamptz), started_at),
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


class RunFilters(TypedDict, total=False):
    """What narrows the list of a tenant's runs (None narrows nothing)."""

    script_id: uuid.UUID | None
    status: str | None
    trigger_type: str | None
    triggering_event_id: uuid.UUID | None
    started_from: datetime.datetime | None  # inclusive
    started_before: datetime.datetime | None  # exclusive


# The filters that keep the runs equal to their value in the column of the same name.
_EQUAL_FILTERS = ("script_id", "status", "trigger_type", "triggering_event_id")


def list_runs(tenant_id: str, page: PageParams, **filters: Unpack[RunFilters]) -> Select[Any]:
    """A keyset page of the tenant's runs, newest first; each filter is served by an index
    (docs/performance.md, "The runs list: indexes")."""
    statement = select(*RUN_COLUMNS).where(runs.c.tenant_id == tenant_id)
    for name in _EQUAL_FILTERS:
        if (value := filters.get(name)) is not None:
            statement = statement.where(runs.c[name] == value)
    if (started_from := filters.get("started_from")) is not None:
        statement = statement.where(runs.c.started_at >= started_from)
    if (started_before := filters.get("started_before")) is not None:
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
# Both step inserts: the batch's rows (``item``, a new id per step, in request order by
# ``position``) as run_steps rows. Parameters: :tenant_id, :run_id, :now, and one array per column
# (:ids, :node_ids, :step_types, :next_node_ids, :executed_ats, :datas).
_INSERT_STEP_ITEMS = """
    INSERT INTO run_steps
        (id, tenant_id, run_id, node_id, step_type, next_node_id, executed_at, data, created_at, updated_at)
    SELECT item.id, CAST(:tenant_id AS varchar), CAST(:run_id AS uuid), item.node_id, item.step_type,
           item.next_node_id, item.executed_at, CAST(item.data AS jsonb),
           CAST(:now AS timestamptz), CAST(:now AS timestamptz)
"""
_STEP_ITEMS = """
    unnest(CAST(:ids AS uuid[]), CAST(:node_ids AS varchar[]), CAST(:step_types AS varchar[]),
           CAST(:next_node_ids AS varchar[]), CAST(:executed_ats AS timestamptz[]), CAST(:datas AS text[]))
    WITH ORDINALITY AS item(id, node_id, step_type, next_node_id, executed_at, data, position)
"""

INSERT_STEPS = text(
    f"""{_INSERT_STEP_ITEMS}
    FROM {_STEP_ITEMS}
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

# ---- execution reports (``PUT /scripts/{id}/runs/triggered|scheduled/…``) ---------------------

_RUN_COLUMN_LIST = ", ".join(RUN_COLUMN_NAMES)
# Whether the incoming event exists in the tenant, and whether it is a recorded lifecycle event.
INCOMING_EVENT_IS_LIFECYCLE = (
    "SELECT lifecycle_event_id IS NOT NULL FROM incoming_events "
    "WHERE id = $1::uuid AND tenant_id = $2::varchar"
)
SCHEDULE_FOR_REPORT = (
    "SELECT script_id, deleted_at IS NOT NULL AS deleted FROM schedules "
    "WHERE id = $1::uuid AND tenant_id = $2::varchar"
)
# A report's run, locked until the report is applied: concurrent retries of one report serialise.
EVENT_RUN_FOR_UPDATE = f"""
    SELECT {_RUN_COLUMN_LIST} FROM runs
    WHERE triggering_event_id = $1::uuid AND script_id = $2::uuid AND tenant_id = $3::varchar
    FOR UPDATE
"""
SCHEDULED_RUN_FOR_UPDATE = f"""
    SELECT {_RUN_COLUMN_LIST} FROM runs
    WHERE schedule_id = $1::uuid AND planned_at = $2::timestamptz AND trigger_type = 'SCHEDULED_TASK'
      AND tenant_id = $3::varchar
    FOR UPDATE
"""

# Inserts the steps of a report that the run does not have yet: a step is the same step when it
# has the same node and the same executedAt (to the millisecond), so a retried report adds
# nothing. Callers hold the run's row lock, which makes the NOT EXISTS race-free; duplicates
# within one report are kept once. Served by ix_run_steps_run_executed.
INSERT_NEW_STEPS = text(
    f"""{_INSERT_STEP_ITEMS}
    FROM (
        SELECT DISTINCT ON (node_id, executed_at) *
        FROM {_STEP_ITEMS}
        ORDER BY node_id, executed_at, position
    ) AS item
    WHERE NOT EXISTS (
        SELECT FROM run_steps AS s
        WHERE s.run_id = CAST(:run_id AS uuid) AND s.executed_at = item.executed_at
          AND s.node_id = item.node_id
    )
    ORDER BY item.position
    RETURNING id
    """
)


# Retention (the worker's maintenance runs it in batches of $1 rows).
# Run ids are UUIDv7, minted just before startedAt: every run started before the cutoff has an id
# below the cutoff's UUIDv7 floor, so the primary key range finds them without another index.
PRUNE_RUNS = """
DELETE FROM runs WHERE id IN (
    SELECT id FROM runs WHERE id < $2 AND started_at < $3
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
"""
