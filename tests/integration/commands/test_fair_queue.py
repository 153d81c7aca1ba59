"""Fair sharing between tenants (SPEC 11): claims round-robin by tenant, FIFO within a tenant,
TENANT_MAX_IN_FLIGHT, and the same fairness for due schedules. Each test on a database of its own.

Backlogs of tens of thousands of commands are written with one INSERT ... SELECT (posting them
one by one would test the API, not the queue); the commands whose delay is measured are posted
through the API.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.domain.commands.handlers import ClaimedCommand, CommandResult, default_registry
from app.domain.commands.outbox import Outbox
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from app.worker.scheduler import Scheduler
from tests.conftest import make_settings
from tests.integration.commands.test_outbox_worker import new_worker
from tests.support.api import Api, new_tenant
from tests.support.triggers import published_script, runs_of
from tests.support.waiting import eventually
from tests.support.workers import Standalone

BATCH = 100

# `count` due commands of one tenant, the first due `oldest_seconds` ago and each next one
# `step_ms` later; correlation ids `<prefix>-1` ... `<prefix>-<count>`.
_BACKLOG = """
INSERT INTO commands (id, created_at, updated_at, tenant_id, correlation_id, command, actor,
                      context, payload, status, attempts, available_at)
SELECT gen_random_uuid(), now(), now(), $1, $2 || '-' || n, $3, '{"userId": "bulk"}', '{}',
       '{"n": 1}', 'PENDING', 0,
       now() - make_interval(secs => $4) + make_interval(secs => n * $5 / 1000.0)
FROM generate_series(1, $6) AS n
"""


@pytest.fixture
def queue_settings(fresh_database_url: str) -> Settings:
    return make_settings(fresh_database_url, WORKER_BATCH_SIZE=str(BATCH), WORKER_POLL_SECONDS="0.2")


@pytest.fixture
async def client(queue_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(app=create_app(queue_settings), base_url="http://testserver.local") as client:
        yield client


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(min_size=1, max_size=4, **asyncpg_connect_kwargs(fresh_database_url))
    yield pool
    await pool.close()


async def backlog(
    db: asyncpg.Pool,
    tenant: str,
    count: int,
    *,
    prefix: str = "bulk",
    oldest_seconds: float = 3600,
    step_ms: float = 1,
    command: str = "Billing.Charge.v1",
) -> None:
    await db.execute(_BACKLOG, tenant, prefix, command, oldest_seconds, step_ms, count)


async def post_command(
    api: Api, correlation_id: str, command: str = "Billing.Charge.v1", **payload: Any
) -> None:
    body = {"command": command, "actor": {"userId": "u"}, "payload": payload, "correlationId": correlation_id}
    response = await api.post("/commands", json=body)
    assert response.status_code == 202, response.text


async def status_counts(db: asyncpg.Pool, tenant: str) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT status, count(*) FROM commands WHERE tenant_id = $1 GROUP BY status", tenant
    )
    return {row["status"]: row["count"] for row in rows}


async def test_a_tenants_backlog_delays_another_tenants_command_by_one_claim_round(
    queue_settings: Settings, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    noisy, quiet = new_tenant(), new_tenant()
    await backlog(db, noisy, 100_000, oldest_seconds=3600)
    await backlog(db, noisy, 3_000, prefix="later", oldest_seconds=60)
    await post_command(Api(client, quiet), "the-one")

    worker = new_worker(queue_settings)
    await worker.start()
    try:
        await eventually(lambda: status_counts(db, noisy), lambda s: s.get("COMPLETED", 0) >= 2_000)
    finally:
        await worker.stop()

    the_one = await db.fetchrow(
        "SELECT status, attempts, completed_at FROM commands WHERE tenant_id = $1", quiet
    )
    assert (the_one["status"], the_one["attempts"]) == ("COMPLETED", 1)
    noisy_done_before = await db.fetchval(
        "SELECT count(*) FROM commands WHERE tenant_id = $1 AND completed_at <= $2",
        noisy,
        the_one["completed_at"],
    )
    assert noisy_done_before < 2 * BATCH  # the quiet command went in the first claim round
    assert (await status_counts(db, noisy))["PENDING"] > 90_000


async def test_a_worker_with_every_slot_taken_still_starts_a_tenant_it_holds_nothing_of(
    fresh_database_url: str, client: httpx.AsyncClient, db: asyncpg.Pool
) -> None:
    # Two-command batches (four slots) of handlers that take 1.5 s: the busy tenant fills them all.
    settings = make_settings(
        fresh_database_url, WORKER_BATCH_SIZE="2", WORKER_FAKE_DELAY_MS="1500", WORKER_POLL_SECONDS="0.2"
    )
    busy, quiet = new_tenant(), new_tenant()
    await backlog(db, busy, 8, oldest_seconds=60)
    worker = new_worker(settings)
    await worker.start()
    try:
        await eventually(lambda: status_counts(db, busy), lambda s: s.get("PROCESSING", 0) == 4)
        await post_command(Api(client, quiet), "the-one")
        # One snapshot: the quiet command's status and how many of the busy tenant's are done.
        seen = await eventually(
            lambda: db.fetchrow(
                "SELECT (SELECT status FROM commands WHERE tenant_id = $1) AS quiet,"
                " (SELECT count(*) FROM commands WHERE tenant_id = $2 AND status = 'COMPLETED') AS busy_done",
                quiet,
                busy,
            ),
            lambda row: row["quiet"] != "PENDING",
        )
        await eventually(lambda: status_counts(db, quiet), lambda s: s.get("COMPLETED", 0) == 1)
    finally:
        await worker.stop()

    # Started while the busy tenant's first round still held every slot, not after it.
    assert (seen["quiet"], seen["busy_done"]) == ("PROCESSING", 0)


async def test_one_statement_inserting_commands_of_two_quiet_tenants_wakes_an_express_claim_for_both(
    fresh_database_url: str, db: asyncpg.Pool
) -> None:
    # Its wake-up names no tenant, so the express claim is the fair one, one command per tenant.
    # Batches of 20: 40 slots, and 2 express slots.
    settings = make_settings(
        fresh_database_url, WORKER_BATCH_SIZE="20", WORKER_FAKE_DELAY_MS="1500", WORKER_POLL_SECONDS="0.2"
    )
    busy, first, second = new_tenant(), new_tenant(), new_tenant()
    await backlog(db, busy, 80, oldest_seconds=60)
    worker = new_worker(settings)
    await worker.start()
    try:
        await eventually(lambda: status_counts(db, busy), lambda s: s.get("PROCESSING", 0) == 40)
        await db.execute(
            """
            INSERT INTO commands (id, created_at, updated_at, tenant_id, correlation_id, command, actor,
                                  context, payload, status, attempts, available_at)
            SELECT gen_random_uuid(), now(), now(), t, 'one', 'Billing.Charge.v1', '{"userId": "u"}',
                   '{}', '{}', 'PENDING', 0, now()
            FROM unnest($1::text[]) AS t
            """,
            [first, second],
        )
        seen = await eventually(
            lambda: db.fetchrow(
                "SELECT count(*) FILTER (WHERE tenant_id = ANY($1) AND status <> 'PENDING') AS quiet_started,"
                " count(*) FILTER (WHERE tenant_id = $2 AND status = 'COMPLETED') AS busy_done FROM commands",
                [first, second],
                busy,
            ),
            lambda row: row["quiet_started"] == 2,
        )
    finally:
        await worker.stop()

    assert seen["busy_done"] == 0


async def test_a_busy_worker_claims_and_starts_nothing_more_while_a_quiet_tenants_command_is_express(
    fresh_database_url: str, db: asyncpg.Pool
) -> None:
    # Zero-delay handlers and a deep backlog: the busy tenant's claims follow one another without
    # a pause, and its handlers count their starts. The quiet tenant's handler takes 0.3 s.
    # Neither a claim nor a busy handler may start from the quiet tenant's wake-up until its
    # command is done: not even the commands of a claim that was already under way, which,
    # started at once, would run before the express claim's answer could be handled.
    settings = make_settings(fresh_database_url, WORKER_BATCH_SIZE="50", WORKER_FAKE_DELAY_MS="0")
    busy, quiet = new_tenant(), new_tenant()
    await backlog(db, busy, 20_000, oldest_seconds=60, command="Busy.Counted.v1")
    busy_starts = 0
    claims: dict[str, int] = {}
    starts: dict[str, int] = {}

    async def counted(command: ClaimedCommand) -> CommandResult:
        nonlocal busy_starts
        busy_starts += 1
        return CommandResult(event="Busy.Counted.v1.Completed", payload={})

    async def watched(command: ClaimedCommand) -> CommandResult:
        claims["at_start"], starts["at_start"] = worker.claimed, busy_starts
        await asyncio.sleep(0.3)
        claims["at_end"], starts["at_end"] = worker.claimed, busy_starts
        return CommandResult(event="Quiet.Watched.v1.Completed", payload={})

    registry = default_registry()
    registry.register("Busy.Counted.v1", counted)
    registry.register("Quiet.Watched.v1", watched)
    worker = new_worker(settings, registry)
    worker.part.express_priority_seconds = 5.0  # longer than the handler: the test sees the whole hold
    on_notify = worker.part._on_notify

    def watch_wake_ups(tenant: str) -> None:
        if tenant == quiet:
            starts["at_wake_up"] = busy_starts
        on_notify(tenant)

    worker.part._on_notify = watch_wake_ups  # type: ignore[method-assign]
    await worker.start()
    try:
        await eventually(lambda: status_counts(db, busy), lambda s: s.get("COMPLETED", 0) >= 500)
        await backlog(db, quiet, 1, oldest_seconds=1, command="Quiet.Watched.v1")
        await eventually(lambda: status_counts(db, quiet), lambda s: s.get("COMPLETED", 0) == 1)
        busy_after = await status_counts(db, busy)
    finally:
        await worker.stop()

    # The busy tenant still had work, and not one claim was made while the quiet command ran.
    assert busy_after.get("PENDING", 0) > 0
    assert claims["at_end"] == claims["at_start"]
    # ...and no busy handler started from its wake-up on.
    assert starts["at_wake_up"] == starts["at_start"] == starts["at_end"], starts


async def test_a_tenants_commands_complete_in_the_order_they_became_due(
    queue_settings: Settings, db: asyncpg.Pool
) -> None:
    noisy, other = new_tenant(), new_tenant()
    await backlog(db, noisy, 100_000, oldest_seconds=3600)
    await backlog(db, other, 500, oldest_seconds=1800, step_ms=500)

    worker = new_worker(queue_settings)
    await worker.start()
    try:
        await eventually(
            lambda: status_counts(db, noisy), lambda s: s.get("COMPLETED", 0) >= 3_000, timeout=30
        )
    finally:
        await worker.stop()

    order = await db.fetchrow(
        """
        SELECT count(*) FILTER (WHERE completed_at < previous) AS out_of_order,
               count(*) FILTER (WHERE completed_at IS NULL AND previous IS NOT NULL) AS gaps,
               count(completed_at) AS completed
        FROM (
            SELECT completed_at, lag(completed_at) OVER (ORDER BY available_at, id) AS previous
            FROM commands WHERE tenant_id = $1
        ) AS queue
        """,
        noisy,
    )
    # Completed ones are a prefix of the queue, each finished no earlier than the one before it.
    assert order["completed"] >= 3_000
    assert (order["out_of_order"], order["gaps"]) == (0, 1)


async def test_with_1000_tenants_each_claim_takes_the_oldest_command_of_the_next_100(
    db: asyncpg.Pool,
) -> None:
    # 1,000 tenants with 10 due commands each; tenant i's commands are all older than tenant
    # i+1's, so oldest-first across tenants would take ten tenants' whole queues.
    tenants = [f"fair-{i:04d}" for i in range(1_000)]
    await db.execute(
        """
        INSERT INTO commands (id, created_at, updated_at, tenant_id, correlation_id, command, actor,
                              context, payload, status, attempts, available_at)
        SELECT gen_random_uuid(), now(), now(), 'fair-' || lpad(t::text, 4, '0'), 'c-' || k,
               'Billing.Charge.v1', '{}', '{}', '{}', 'PENDING', 0,
               now() - interval '3 hours' + t * interval '10 seconds' + k * interval '1 ms'
        FROM generate_series(0, 999) AS t, generate_series(1, 10) AS k
        """
    )
    outbox = Outbox(db)

    first = await outbox.claim(BATCH, lease_seconds=30)
    second = await outbox.claim(BATCH, lease_seconds=30)

    assert [(c.tenant_id, c.correlation_id) for c in first] == [(t, "c-1") for t in tenants[:BATCH]]
    assert [(c.tenant_id, c.correlation_id) for c in second] == [
        (t, "c-1") for t in tenants[BATCH : 2 * BATCH]
    ]


async def test_a_batch_takes_every_tenants_oldest_before_any_tenants_second(db: asyncpg.Pool) -> None:
    big, medium, small = new_tenant(), new_tenant(), new_tenant()
    await backlog(db, big, 1_000, oldest_seconds=600)
    await backlog(db, medium, 40, oldest_seconds=300)
    await backlog(db, small, 5, oldest_seconds=60)

    claimed = await Outbox(db).claim(BATCH, lease_seconds=30)

    taken = {
        tenant: [c.correlation_id for c in claimed if c.tenant_id == tenant]
        for tenant in (big, medium, small)
    }
    assert {tenant: len(ids) for tenant, ids in taken.items()} == {big: 55, medium: 40, small: 5}
    for ids in taken.values():
        assert ids == [f"bulk-{n}" for n in range(1, len(ids) + 1)]  # each tenant's oldest, in order


async def test_tenant_max_in_flight_caps_what_a_worker_runs_of_one_tenant(
    fresh_database_url: str, db: asyncpg.Pool
) -> None:
    settings = make_settings(fresh_database_url, TENANT_MAX_IN_FLIGHT="2", WORKER_POLL_SECONDS="0.2")
    busy, other = new_tenant(), new_tenant()
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as http:
        for n in range(6):
            await post_command(Api(http, busy), f"sleep-{n}", "Dev.Sleep.v1", seconds=1)
        for n in range(3):
            await post_command(Api(http, other), f"quick-{n}")

    most_at_once = 0
    other_done_while_busy_waited = False
    worker = new_worker(settings)
    await worker.start()
    try:
        while True:
            busy_now, other_now = await status_counts(db, busy), await status_counts(db, other)
            most_at_once = max(most_at_once, busy_now.get("PROCESSING", 0))
            if other_now.get("COMPLETED") == 3 and busy_now.get("PENDING", 0) > 0:
                other_done_while_busy_waited = True
            if busy_now.get("COMPLETED") == 6:
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.stop()

    assert most_at_once == 2
    assert other_done_while_busy_waited


async def test_a_scheduler_pass_serves_every_tenant_with_due_schedules(fresh_database_url: str) -> None:
    settings = make_settings(fresh_database_url, WORKER_BATCH_SIZE="10")
    crowded, sparse = new_tenant(), new_tenant()
    firsts: list[datetime.datetime] = []
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as http:
        # 30 due schedules each; the crowded tenant's fire every minute (first due soonest), the
        # sparse tenant's on the hour: at `now` below all are due, the crowded ones longest.
        for tenant, cron in ((crowded, "* * * * *"), (sparse, "0 * * * *")):
            api = Api(http, tenant)
            for _ in range(2):
                script_id = await published_script(api)
                for _ in range(15):
                    response = await api.post(f"/scripts/{script_id}/schedules", json={"cron": cron})
                    assert response.status_code == 201, response.text
                    fire = response.json()["nextFireTimes"][0]
                    firsts.append(datetime.datetime.fromisoformat(fire.replace("Z", "+00:00")))

        scheduler = Standalone(lambda shared: Scheduler(settings, shared), fresh_database_url)
        await scheduler.open()
        try:
            claimed = await scheduler.run_once(now=max(firsts))
        finally:
            await scheduler.stop()
        fired = {
            tenant: {
                run["scheduleId"] for run in await runs_of(Api(http, tenant), triggerType="SCHEDULED_TASK")
            }
            for tenant in (crowded, sparse)
        }

    assert claimed == 10
    assert {tenant: len(schedules) for tenant, schedules in fired.items()} == {crowded: 5, sparse: 5}


async def test_schedules_of_a_tenant_behind_others_backlogs_wait_at_most_one_rotation(
    fresh_database_url: str,
) -> None:
    settings = make_settings(fresh_database_url, WORKER_BATCH_SIZE="2")
    busy, also_busy, late = new_tenant(), new_tenant(), new_tenant()
    firsts: list[datetime.datetime] = []
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as http:
        # Two tenants with three schedules due every minute; the third tenant's one schedule is
        # due last (on the hour), behind all six.
        for tenant, cron, count in (
            (busy, "* * * * *", 3),
            (also_busy, "* * * * *", 3),
            (late, "0 * * * *", 1),
        ):
            api = Api(http, tenant)
            script_id = await published_script(api)
            for _ in range(count):
                response = await api.post(f"/scripts/{script_id}/schedules", json={"cron": cron})
                assert response.status_code == 201, response.text
                fire = response.json()["nextFireTimes"][0]
                firsts.append(datetime.datetime.fromisoformat(fire.replace("Z", "+00:00")))

        scheduler = Standalone(lambda shared: Scheduler(settings, shared), fresh_database_url)
        await scheduler.open()
        try:
            passes = [await scheduler.run_once(now=max(firsts)) for _ in range(2)]
        finally:
            await scheduler.stop()
        served = {
            tenant: len(await runs_of(Api(http, tenant), triggerType="SCHEDULED_TASK"))
            for tenant in (busy, also_busy, late)
        }

    assert passes == [2, 2]
    assert all(served.values()), served  # three tenants, two passes of two: everyone once
