"""The rules of runs: starting one, the variables and steps a runner reports, and finishing it.

Every public write is one unit of work that commits before it returns. The write paths are
single SQL statements built once at import (SQLAlchemy Core, ``RETURNING`` instead of
read-after-write); a second query runs only to explain why a statement changed nothing. Where a
lifecycle event (``Run.Started``, ``Run.Finished``) is to be stored with its change, the place is
the line before the commit.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService
from sqlalchemy import Row, bindparam, func, insert, literal, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from app.config import Actor
from app.db.runs import Run, RunStep, RunVariable
from app.db.scripts import Script, ScriptVersion
from app.domain.runs.schemas import RunCreate, StepIn, VariableIn, check_steps, check_variables
from app.domain.runs.steps import NodeTypeCache, node_types_of, step_problems
from app.lib.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from app.lib.pagination import Keyset, PageParams

__all__ = ["API_RUN", "RunService", "RunSource"]

runs = Run.__table__
versions = ScriptVersion.__table__
RUN_COLUMNS = [runs.c[name] for name in (
    "id", "tenant_id", "script_id", "version", "status", "trigger_type", "schedule_id", "planned_at",
    "triggering_event_id", "event_data", "started_by_id", "connector_type", "connector_key",
    "started_at", "ended_at",
)]  # fmt: skip
JSON_PARAM = JSONB(none_as_null=True)


@dataclass(frozen=True, slots=True)
class RunSource:
    """What started a run; the database CHECK keeps these consistent with the trigger type."""

    trigger_type: str = "API_RUN"
    schedule_id: uuid.UUID | None = None
    planned_at: datetime.datetime | None = None
    triggering_event_id: uuid.UUID | None = None
    event_data: dict[str, Any] | None = None


API_RUN = RunSource()


def _param(name: str, column: str) -> Any:
    # Named apart from the columns: INSERT and UPDATE reserve the column names for themselves.
    return bindparam(f"p_{name}", type_=runs.c[column].type)


# Starts a run of an existing version of a script of the tenant, in one statement: the SELECT
# proves the version exists (and the script is the tenant's); nothing is inserted otherwise.
_NEW_RUN = {
    "id": _param("id", "id"),
    "tenant_id": versions.c.tenant_id,
    "script_id": versions.c.script_id,
    "version": versions.c.version,
    "status": literal("RUNNING"),
    "trigger_type": _param("trigger_type", "trigger_type"),
    "schedule_id": _param("schedule_id", "schedule_id"),
    "planned_at": _param("planned_at", "planned_at"),
    "triggering_event_id": _param("triggering_event_id", "triggering_event_id"),
    "event_data": bindparam("p_event_data", type_=JSON_PARAM),
    "started_by_id": _param("started_by_id", "started_by_id"),
    "connector_type": _param("connector_type", "connector_type"),
    "connector_key": _param("connector_key", "connector_key"),
    "started_at": _param("now", "started_at"),
    "created_at": _param("now", "started_at"),
    "updated_at": _param("now", "started_at"),
}
START_RUN = (
    insert(runs)
    .from_select(
        list(_NEW_RUN),
        select(*_NEW_RUN.values()).where(
            versions.c.script_id == bindparam("p_script_id"),
            versions.c.version == bindparam("p_version"),
            versions.c.tenant_id == bindparam("p_tenant_id"),
        ),
    )
    .returning(*RUN_COLUMNS)
)

# Finishes a running run; a run already finished is left alone (the caller tells why).
FINISH_RUN = (
    update(runs)
    .where(
        runs.c.id == bindparam("run_id"),
        runs.c.tenant_id == bindparam("p_tenant_id"),
        runs.c.status == "RUNNING",
    )
    .values(
        status=bindparam("p_status"),
        # Another process's clock may lag the starter's: a run never ends before it started.
        ended_at=func.greatest(bindparam("now", type_=runs.c.ended_at.type), runs.c.started_at),
        updated_at=bindparam("now"),
    )
    .returning(*RUN_COLUMNS)
)

GET_RUN = select(*RUN_COLUMNS).where(
    runs.c.id == bindparam("run_id"), runs.c.tenant_id == bindparam("tenant_id")
)

# The run's state and version, locked against a concurrent finish until this transaction ends.
RUN_FOR_STEPS = (
    select(runs.c.status, versions.c.id.label("version_id"))
    .join(versions, (versions.c.script_id == runs.c.script_id) & (versions.c.version == runs.c.version))
    .where(runs.c.id == bindparam("run_id"), runs.c.tenant_id == bindparam("tenant_id"))
    .with_for_update(read=True, of=runs)
)

VERSION_NODES = select(versions.c.graph_json["nodes"]).where(versions.c.id == bindparam("version_id"))

SCRIPT_EXISTS = select(Script.id).where(
    Script.id == bindparam("script_id"), Script.tenant_id == bindparam("tenant_id")
)

# Upserts a batch of variables in one statement, only while the run is RUNNING; the run row is
# share-locked so a concurrent finish waits for this batch (or this batch sees the run finished).
UPSERT_VARIABLES = text(
    """
    INSERT INTO run_variables AS v
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

# Inserts a validated batch of steps in one statement.
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

_encode_json = msgspec.json.Encoder().encode
node_type_cache = NodeTypeCache()


def _now() -> datetime.datetime:
    """Now, to the millisecond: what is stored is exactly what the API shows."""
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def _to_millisecond(value: datetime.datetime) -> datetime.datetime:
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


class RunRepository(SQLAlchemyAsyncRepository[Run]):
    model_type = Run


class RunService(SQLAlchemyAsyncRepositoryService[Run, RunRepository]):
    repository_type = RunRepository

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.session = self.repository.session

    async def _connection(self) -> AsyncConnection:
        # Core statements go straight to the session's connection (and its transaction):
        # nothing here needs the ORM's identity map.
        return await self.session.connection()

    # ---- reads -------------------------------------------------------------------------------

    async def get_run(self, tenant_id: str, run_id: uuid.UUID) -> tuple[Row[Any], list[Any], list[Any]]:
        """The run, its variables by key and its steps in executedAt order."""
        conn = await self._connection()
        run = (await conn.execute(GET_RUN, {"run_id": run_id, "tenant_id": tenant_id})).one_or_none()
        if run is None:
            raise _run_not_found()
        variables = (await conn.execute(RUN_VARIABLES, {"run_id": run_id})).all()
        steps = (await conn.execute(RUN_STEPS, {"run_id": run_id})).all()
        return run, list(variables), list(steps)

    async def list_runs(
        self,
        tenant_id: str,
        page: PageParams,
        *,
        script_id: uuid.UUID | None = None,
        status: str | None = None,
        trigger_type: str | None = None,
        triggering_event_id: uuid.UUID | None = None,
        started_from: datetime.datetime | None = None,
        started_before: datetime.datetime | None = None,
    ) -> list[Run]:
        started_from, started_before = _as_utc(started_from), _as_utc(started_before)
        if started_from is not None and started_before is not None and started_from > started_before:
            raise ValidationFailed(
                "`from` must not be after `to`.",
                details=[{"field": "from", "message": "is after `to`", "source": "query"}],
            )
        conditions: list[Any] = [Run.tenant_id == tenant_id]
        if script_id is not None:
            conditions.append(Run.script_id == script_id)
        if status is not None:
            conditions.append(Run.status == status)
        if trigger_type is not None:
            conditions.append(Run.trigger_type == trigger_type)
        if triggering_event_id is not None:
            conditions.append(Run.triggering_event_id == triggering_event_id)
        if started_from is not None:
            conditions.append(Run.started_at >= started_from)
        if started_before is not None:
            conditions.append(Run.started_at < started_before)
        return list(await self.repository.get_many(Keyset(("started_at", "id"), page), *conditions))

    # ---- writes ------------------------------------------------------------------------------

    async def start_run(
        self, tenant_id: str, actor: Actor, data: RunCreate, source: RunSource = API_RUN
    ) -> Row[Any]:
        """Start a run: one INSERT … SELECT … RETURNING, then the commit."""
        now = _now()
        conn = await self._connection()
        run = (
            await conn.execute(
                START_RUN,
                {
                    "p_id": uuid7(),
                    "p_tenant_id": tenant_id,
                    "p_script_id": data.script_id,
                    "p_version": data.version,
                    "p_trigger_type": source.trigger_type,
                    "p_schedule_id": source.schedule_id,
                    "p_planned_at": source.planned_at,
                    "p_triggering_event_id": source.triggering_event_id,
                    "p_event_data": source.event_data,
                    "p_started_by_id": data.started_by_id or actor.id,
                    "p_connector_type": data.connector_type,
                    "p_connector_key": data.connector_key,
                    "p_now": now,
                },
            )
        ).one_or_none()
        if run is None:
            script = await conn.scalar(SCRIPT_EXISTS, {"script_id": data.script_id, "tenant_id": tenant_id})
            await self.session.rollback()
            if script is None:
                raise NotFound("No script with this id.")
            raise Unprocessable(
                f"Version {data.version} of this script does not exist.",
                code="VERSION_NOT_FOUND",
                details=[{"field": "version", "message": "no such version of the script"}],
            )
        await self.session.commit()
        return run

    async def upsert_variables(
        self, tenant_id: str, run_id: uuid.UUID, items: list[VariableIn]
    ) -> list[Row[Any]]:
        """Insert or overwrite variables by key, all in one statement; only while the run is RUNNING."""
        check_variables(items)
        now = _now()
        conn = await self._connection()
        stored = (
            await conn.execute(
                UPSERT_VARIABLES,
                {
                    "run_id": run_id,
                    "tenant_id": tenant_id,
                    "now": now,
                    "ids": [uuid7() for _ in items],
                    "keys": [item.key for item in items],
                    "str_vals": [item.str_val for item in items],
                    "num_vals": [item.num_val for item in items],
                    "bool_vals": [item.bool_val for item in items],
                    "json_vals": [
                        None if item.json_val is None else _encode_json(item.json_val).decode()
                        for item in items
                    ],
                },
            )
        ).all()
        if not stored:
            await self._explain_not_running(conn, tenant_id, run_id)
        await self.session.commit()
        return list(stored)

    async def record_steps(self, tenant_id: str, run_id: uuid.UUID, items: list[StepIn]) -> list[Row[Any]]:
        """Check every step against the version graph, then insert them all in one statement."""
        check_steps(items)
        conn = await self._connection()
        run = (await conn.execute(RUN_FOR_STEPS, {"run_id": run_id, "tenant_id": tenant_id})).one_or_none()
        if run is None:
            await self.session.rollback()
            raise _run_not_found()
        if run.status != "RUNNING":
            await self.session.rollback()
            raise _run_finished(run.status)
        node_types = node_type_cache.get(run.version_id)
        if node_types is None:
            node_types = node_types_of(await conn.scalar(VERSION_NODES, {"version_id": run.version_id}))
            node_type_cache.put(run.version_id, node_types)
        problems = step_problems(items, node_types)
        if problems:
            await self.session.rollback()
            raise Unprocessable(
                "The steps do not fit the run's version graph.", code=problems[0]["code"], details=problems
            )
        stored = (
            await conn.execute(
                INSERT_STEPS,
                {
                    "run_id": run_id,
                    "tenant_id": tenant_id,
                    "now": _now(),
                    "ids": [uuid7() for _ in items],
                    "node_ids": [item.node_id for item in items],
                    "step_types": [item.step_type for item in items],
                    "next_node_ids": [item.next_node_id for item in items],
                    "executed_ats": [_to_millisecond(item.executed_at) for item in items],
                    "datas": [
                        None if item.data is None else _encode_json(item.data).decode() for item in items
                    ],
                },
            )
        ).all()
        await self.session.commit()
        return list(stored)

    async def finish_run(self, tenant_id: str, run_id: uuid.UUID, status: str) -> Row[Any]:
        """Finish a running run; the same finish again is a no-op, a different one a conflict."""
        conn = await self._connection()
        finish = {"run_id": run_id, "p_tenant_id": tenant_id, "p_status": status, "now": _now()}
        run = (await conn.execute(FINISH_RUN, finish)).one_or_none()
        if run is not None:
            await self.session.commit()
            return run
        current = (await conn.execute(GET_RUN, {"run_id": run_id, "tenant_id": tenant_id})).one_or_none()
        await self.session.rollback()
        if current is None:
            raise _run_not_found()
        if current.status != status:
            raise _run_finished(current.status)
        return current

    # ---- helpers -----------------------------------------------------------------------------

    async def _explain_not_running(self, conn: AsyncConnection, tenant_id: str, run_id: uuid.UUID) -> None:
        status = await conn.scalar(
            select(runs.c.status).where(runs.c.id == run_id, runs.c.tenant_id == tenant_id)
        )
        await self.session.rollback()
        if status is None:
            raise _run_not_found()
        raise _run_finished(status)


def _as_utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """Query times without an offset are taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


def _run_not_found() -> NotFound:
    return NotFound("No run with this id.")


def _run_finished(status: str) -> Conflict:
    return Conflict(f"The run has already finished ({status}).", code="RUN_FINISHED")
