"""The rules of runs: starting one, the variables and steps a runner reports, and finishing it.

Runs are the hottest write path of the product, so this service works on plain connections
rather than ORM objects: each public write is one unit of work, and wherever a single statement
does the whole change it runs autocommitted, in one round trip (no BEGIN, no COMMIT, no
read-after-write: ``RETURNING`` gives the row back). A second query runs only to explain why a
statement changed nothing. Recording steps needs a check between a read and the insert, so it
is an explicit transaction. The lifecycle events (``Run.Started``, ``Run.Finished``) are
data-modifying CTEs of the same statements, so a run and its event commit together. The SQL
itself lives in ``queries``.

When the request carries an Idempotency-Key the request's session owns the transaction (see
``app.lib.uow``): every statement then runs on that session's connection and the idempotency
layer commits it together with the stored response.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Unpack

import asyncpg
import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection
from uuid_utils.compat import uuid7

from app.domain.runs import repositories
from app.domain.runs.schemas import RunCreate, StepIn, VariableIn, check_steps, check_variables
from app.domain.runs.steps import NodeTypeCache, node_types_of, step_problems
from app.lib.correlation import current_correlation_id
from app.lib.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from app.lib.pagination import PageParams
from app.lib.principals import Principal
from app.lib.required import required
from app.lib.uow import UnitOfWork

__all__ = [
    "API_RUN",
    "RunService",
    "RunSource",
    "TriggeredStart",
    "encode_json",
    "node_type_cache",
    "now_to_the_millisecond",
    "run_finished",
    "start_active_runs",
    "to_millisecond",
]

encode_json = msgspec.json.Encoder().encode
node_type_cache = NodeTypeCache()


@dataclass(frozen=True, slots=True)
class RunSource:
    """What started a run; the database CHECK keeps these consistent with the trigger type."""

    trigger_type: str = "API_RUN"
    schedule_id: uuid.UUID | None = None
    planned_at: datetime.datetime | None = None
    triggering_event_id: uuid.UUID | None = None
    event_data: dict[str, Any] | None = None


API_RUN = RunSource()


@dataclass(frozen=True, slots=True)
class TriggeredStart:
    """A run a trigger asks for: of the script's active version, with what started it."""

    tenant_id: str
    script_id: uuid.UUID
    source: RunSource
    started_by_id: str | None = None


async def start_active_runs(
    connection: asyncpg.Connection,
    starts: Sequence[TriggeredStart],
    *,
    correlation_id: str | None = None,
    now: datetime.datetime | None = None,
) -> list[asyncpg.Record]:
    """Start runs of the scripts' active versions, with their Run.Started events, in one statement
    inside the caller's transaction (on its connection).

    Returns the runs started (``id, tenant_id, script_id, version, trigger_type, schedule_id,
    planned_at, triggering_event_id``), in input order. A script without an active version starts
    nothing, and neither does a start whose run exists already (one run per schedule fire time,
    one per incoming event and script): callers compare with what they asked for.
    """
    if not starts:
        return []
    return await connection.fetch(
        repositories.START_ACTIVE_RUNS,
        [uuid7() for _ in starts],
        [s.tenant_id for s in starts],
        [s.script_id for s in starts],
        [s.source.trigger_type for s in starts],
        [s.source.schedule_id for s in starts],
        [s.source.planned_at for s in starts],
        [s.source.triggering_event_id for s in starts],
        [_json_text(s.source.event_data) for s in starts],
        [s.started_by_id for s in starts],
        now or now_to_the_millisecond(),
        correlation_id,
    )


class RunService:
    """On the request's unit of work: one autocommitted statement per write on the hot paths, a
    transaction where a write takes several, the request's transaction when one is held."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    # ---- reads -------------------------------------------------------------------------------

    async def get_run(
        self, tenant_id: str, run_id: uuid.UUID
    ) -> tuple[Mapping[str, Any], list[Any], list[Any]]:
        """The run, its variables by key and its steps in executedAt order."""
        async with self.uow.autocommit() as conn:
            run = await _read_run(conn, repositories.GET_RUN, tenant_id, run_id)
            variables = (await conn.execute(repositories.RUN_VARIABLES, {"run_id": run_id})).all()
            steps = (await conn.execute(repositories.RUN_STEPS, {"run_id": run_id})).all()
        return run._mapping, list(variables), list(steps)

    async def list_runs(
        self, tenant_id: str, page: PageParams, **filters: Unpack[repositories.RunFilters]
    ) -> list[Mapping[str, Any]]:
        """A page of the tenant's runs, newest first; ``started_from`` inclusive, ``started_before`` not."""
        started_from = filters["started_from"] = _as_utc(filters.get("started_from"))
        started_before = filters["started_before"] = _as_utc(filters.get("started_before"))
        if started_from is not None and started_before is not None and started_from > started_before:
            raise ValidationFailed(
                "`from` must not be after `to`.",
                details=[{"field": "from", "message": "is after `to`", "source": "query"}],
            )
        statement = repositories.list_runs(tenant_id, page, **filters)
        async with self.uow.autocommit() as conn:
            return [row._mapping for row in await conn.execute(statement)]

    # ---- writes ------------------------------------------------------------------------------

    async def start_run(
        self, tenant_id: str, actor: Principal, data: RunCreate, source: RunSource = API_RUN
    ) -> dict[str, Any]:
        """Start a run of a version of one of the tenant's scripts: one statement, one round trip."""
        async with self.uow.statements() as driver:
            row = await driver.fetchrow(
                repositories.START_RUN,
                uuid7(),
                tenant_id,
                data.script_id,
                data.version,
                source.trigger_type,
                source.schedule_id,
                source.planned_at,
                source.triggering_event_id,
                _json_text(source.event_data),
                data.started_by_id or actor.id,
                data.connector_type,
                data.connector_key,
                now_to_the_millisecond(),
                current_correlation_id(),
            )
            if row is None:
                script_status = await driver.fetchval(repositories.SCRIPT_STATUS, data.script_id, tenant_id)
        if row is None:
            if script_status is None:
                raise NotFound("No script with this id.")
            if script_status == "ARCHIVED":
                raise Conflict(
                    "The script is archived: it starts no runs until it is set back to DRAFT or PUBLISHED.",
                    code="SCRIPT_ARCHIVED",
                )
            raise Unprocessable(
                f"Version {data.version} of this script does not exist.",
                code="VERSION_NOT_FOUND",
                details=[{"field": "version", "message": "no such version of the script"}],
            )
        # Both kinds of connection decode JSON columns (the same codecs are installed on each).
        return dict(row.items())

    async def upsert_variables(
        self, tenant_id: str, run_id: uuid.UUID, items: Sequence[VariableIn]
    ) -> list[Any]:
        """Insert or overwrite variables by key, all in one statement, only while the run is RUNNING."""
        check_variables(items)
        async with self.uow.autocommit() as conn:
            batch = _batch(
                tenant_id, run_id, items, "key", "str_val", "num_val", "bool_val", json_val=_json_text
            )
            stored = (await conn.execute(repositories.UPSERT_VARIABLES, batch)).all()
            if not stored:
                await self._explain_not_running(conn, tenant_id, run_id)
        return list(stored)

    async def record_steps(self, tenant_id: str, run_id: uuid.UUID, items: Sequence[StepIn]) -> list[Any]:
        """Check every step against the version graph, then insert them all in one statement."""
        check_steps(items)
        async with self.uow.transaction() as conn:
            run = await _read_run(conn, repositories.RUN_FOR_STEPS, tenant_id, run_id)
            if run.status != "RUNNING":
                raise run_finished(run.status)
            node_types = node_type_cache.get(run.version_id)
            if node_types is None:
                nodes = await conn.scalar(repositories.VERSION_NODES, {"version_id": run.version_id})
                node_types = node_types_of(nodes)
                node_type_cache.put(run.version_id, node_types)
            problems = step_problems(items, node_types)
            if problems:
                raise Unprocessable(
                    "The steps do not fit the run's version graph.",
                    code=problems[0]["code"],
                    details=problems,
                )
            columns = ("node_id", "step_type", "next_node_id")
            batch = _batch(tenant_id, run_id, items, *columns, executed_at=to_millisecond, data=_json_text)
            stored = (await conn.execute(repositories.INSERT_STEPS, batch)).all()
        return list(stored)

    async def finish_run(self, tenant_id: str, run_id: uuid.UUID, status: str) -> Mapping[str, Any]:
        """Finish a running run; the same finish again is a no-op, a different one a conflict."""
        now = now_to_the_millisecond()
        async with self.uow.autocommit() as conn:
            finish = {
                "run_id": run_id,
                "tenant_id": tenant_id,
                "status": status,
                "now": now,
                "ended_at": now,
                "correlation_id": current_correlation_id(),
            }
            run = (await conn.execute(repositories.FINISH_RUN, finish)).one_or_none()
            if run is not None:
                return run._mapping
            current = await _read_run(conn, repositories.GET_RUN, tenant_id, run_id)
        if current.status != status:
            raise run_finished(current.status)
        return current._mapping

    # ---- helpers -----------------------------------------------------------------------------

    async def _explain_not_running(self, conn: AsyncConnection, tenant_id: str, run_id: uuid.UUID) -> None:
        raise run_finished((await _read_run(conn, repositories.RUN_STATUS, tenant_id, run_id)).status)


async def _read_run(conn: AsyncConnection, statement: Any, tenant_id: str, run_id: uuid.UUID) -> Any:
    """The row ``statement`` reads of the tenant's run (by ``:run_id`` and ``:tenant_id``); 404
    when the tenant has no such run."""
    found = (await conn.execute(statement, {"run_id": run_id, "tenant_id": tenant_id})).one_or_none()
    return required(found, _run_not_found)


def _batch(
    tenant_id: str, run_id: uuid.UUID, items: Sequence[Any], *columns: str, **converted: Callable[[Any], Any]
) -> dict[str, Any]:
    """The parameters of one statement that writes a batch of the run's rows: the run, now, a new
    id per item, and per column one array (named after the column, plural: ``keys``, ``datas``)
    of the items' values, as they are or through the column's converter."""
    batch: dict[str, Any] = {
        "run_id": run_id,
        "tenant_id": tenant_id,
        "now": now_to_the_millisecond(),
        "ids": [uuid7() for _ in items],
    }
    for column in columns:
        batch[f"{column}s"] = [getattr(item, column) for item in items]
    for column, convert in converted.items():
        batch[f"{column}s"] = [convert(getattr(item, column)) for item in items]
    return batch


def _json_text(value: Any) -> str | None:
    """A JSON value as the text a ``CAST(... AS jsonb)`` parameter takes (None stays NULL)."""
    return None if value is None else encode_json(value).decode()


def now_to_the_millisecond() -> datetime.datetime:
    """Now, to the millisecond: what is stored is exactly what the API shows."""
    return to_millisecond(datetime.datetime.now(datetime.UTC))


def to_millisecond(value: datetime.datetime) -> datetime.datetime:
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _as_utc(value: datetime.datetime | None) -> datetime.datetime | None:
    """Query times without an offset are taken as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=datetime.UTC)
    return value


def _run_not_found() -> NotFound:
    return NotFound("No run with this id.")


def run_finished(status: str) -> Conflict:
    return Conflict(f"The run has already finished ({status}).", code="RUN_FINISHED")
