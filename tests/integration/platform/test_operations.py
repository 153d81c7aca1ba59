"""Operations: readiness, metrics, structured access logs, retention."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from app.worker.deferred_runs import DeferredRunStarter
from app.worker.maintenance import Retention, prune
from tests.conftest import make_settings, process_env
from tests.support.api import ADMIN_TOKEN, Api, assert_error, new_tenant
from tests.support.runs import script_with_version
from tests.support.server import ServerProcess, free_port
from tests.support.triggers import event_type, post_event, published_script, subscribe
from tests.support.waiting import eventually
from tests.support.workers import Standalone

# ---- readiness -------------------------------------------------------------------------------


async def test_ready_reports_each_check(http: httpx.AsyncClient) -> None:
    response = await http.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "migrations": "ok"}}


async def test_ready_names_a_missing_worker_when_one_is_required(fresh_database_url: str) -> None:
    settings = make_settings(
        fresh_database_url, READY_REQUIRES_WORKER="true", WORKER_HEARTBEAT_STALE_SECONDS="5"
    )
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        without = await client.get("/health/ready")
        worker_settings = make_settings(fresh_database_url, WORKER_ENABLED="true", WORKER_POLL_SECONDS="0.2")
        async with AsyncTestClient(create_app(worker_settings), base_url="http://worker.local"):
            with_worker = await eventually(
                lambda: client.get("/health/ready"), lambda r: r.status_code == 200
            )

    body = assert_error(without, 503, "UNAVAILABLE")
    assert body["details"]["checks"]["worker"] == "no worker heartbeat"
    assert body["details"]["checks"]["database"] == "ok"
    assert "worker" in body["message"]
    assert with_worker.json()["checks"]["worker"] == "ok"


async def test_ready_names_the_database_when_it_cannot_be_reached(settings: Settings) -> None:
    down = make_settings("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    async with AsyncTestClient(create_app(down), base_url="http://testserver.local") as client:
        response = await client.get("/health/ready")

    body = assert_error(response, 503, "UNAVAILABLE")
    assert body["details"]["checks"]["database"].startswith("unavailable")
    assert "database" in body["message"]


# ---- metrics -----------------------------------------------------------------------------------


def _samples(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


async def test_metrics_need_a_token(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/metrics"), 401, "UNAUTHORIZED")


async def test_metrics_parse_and_move_with_traffic(api: Api) -> None:
    before = _samples((await api.get("/metrics")).text)
    await api.create_script()
    await api.post("/commands", json={"command": "X.Do.v1", "actor": {"userId": "u"}})
    response = await api.get("/metrics")
    after = _samples(response.text)

    assert response.headers["content-type"].startswith("text/plain")
    created = "scriptworks_requests_total{app_name=scriptworks,method=POST,path=/scripts,status_code=201}"
    assert after[created] == before.get(created, 0) + 1
    assert "scriptworks_outbox_pending{}" in after
    assert "scriptworks_outbox_oldest_pending_age_seconds{}" in after
    assert after["scriptworks_events_newest_id{}"] > before["scriptworks_events_newest_id{}"]
    for name in (
        "scriptworks_sse_connections{}",
        "scriptworks_db_pool_size{}",
        "scriptworks_db_pool_checked_out{}",
    ):
        assert name in after
    assert any(k.startswith("scriptworks_request_duration_seconds_bucket") for k in after)


# ---- logs --------------------------------------------------------------------------------------


async def test_json_access_log_has_one_line_per_request_and_no_secrets(database_url: str) -> None:
    server = ServerProcess(process_env(database_url, LOG_FORMAT="json", LOG_LEVEL="INFO")).start()
    tenant = new_tenant()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            await client.get(
                "/scripts",
                params={"access_token": "query-secret"},
                headers={
                    "Authorization": f"Bearer {ADMIN_TOKEN}",
                    "x-tenant-id": tenant,
                    "Correlation-Id": "log-1",
                },
            )
            await client.get(
                "/events/stream", params={"access_token": "stream-secret", "tenantId": "bad tenant"}
            )
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]

    requests = [
        line for line in lines if line.get("event") == "request" and line.get("correlation_id") == "log-1"
    ]
    assert len(requests) == 1
    line = requests[0]
    assert (line["method"], line["route"], line["status"]) == ("GET", "/scripts", 200)
    assert (line["tenant_id"], line["actor_id"]) == (tenant, "alice")
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"
    log = server.log()
    for secret in (ADMIN_TOKEN, "query-secret", "stream-secret"):
        assert secret not in log


# ---- retention ---------------------------------------------------------------------------------


@pytest.fixture
async def private_api(fresh_database_url: str) -> AsyncIterator[tuple[Api, Settings]]:
    settings = make_settings(fresh_database_url)
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        yield Api(client, new_tenant()), settings


async def test_retention_removes_exactly_what_is_past_its_age(private_api: tuple[Api, Settings]) -> None:
    api, settings = private_api
    script_id, version = await script_with_version(api)
    old_run = (await api.post("/runs", json={"scriptId": script_id, "version": version})).json()
    await api.post(f"/runs/{old_run['runId']}/vars", json=[{"key": "k", "strVal": "v"}])
    await api.post(
        f"/runs/{old_run['runId']}/steps",
        json=[{"nodeId": "greet", "stepType": "say", "executedAt": "2026-01-01T00:00:00.000Z"}],
    )
    await asyncio.sleep(0.01)  # the next run starts in a later millisecond
    new_run = (await api.post("/runs", json={"scriptId": script_id, "version": version})).json()
    boundary = datetime.datetime.fromisoformat(new_run["startedAt"])

    assert settings.database_url is not None
    pool = await asyncpg.create_pool(**asyncpg_connect_kwargs(settings.database_url), min_size=1, max_size=2)
    try:
        event_times = await pool.fetch("SELECT id, occurred_at FROM events ORDER BY id")
        pruned = await prune(
            pool,
            Retention(runs_days=1, events_days=1, commands_days=1),
            now=boundary + datetime.timedelta(days=1),
        )
        left_events = await pool.fetch("SELECT id FROM events ORDER BY id")
        left_vars = await pool.fetchval("SELECT count(*) FROM run_variables")
        left_steps = await pool.fetchval("SELECT count(*) FROM run_steps")
    finally:
        await pool.close()

    assert_error(await api.get(f"/runs/{old_run['runId']}"), 404, "NOT_FOUND")
    assert (await api.get(f"/runs/{new_run['runId']}")).status_code == 200
    assert pruned["runs"] == 1
    assert (left_vars, left_steps) == (0, 0)
    expected_events = [r["id"] for r in event_times if r["occurred_at"] >= boundary]
    assert [r["id"] for r in left_events] == expected_events
    assert pruned["events"] == len(event_times) - len(expected_events)


async def test_a_standalone_worker_serves_its_own_metrics(fresh_database_url: str) -> None:
    port = free_port()
    worker = ServerProcess(process_env(fresh_database_url, METRICS_PORT=str(port)), command=["worker"])
    worker.start(wait_for_health=False)
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await eventually(
                lambda: _get_or_none(client, f"http://127.0.0.1:{port}/metrics"), lambda r: r is not None
            )
    finally:
        worker.stop()

    samples = _samples(response.text)
    assert samples["scriptworks_worker_claimed_total{}"] == 0
    assert "scriptworks_worker_completed_total{}" in samples
    assert "scriptworks_trigger_events_received_total{}" in samples  # flow control's counters too


async def _get_or_none(client: httpx.AsyncClient, url: str) -> httpx.Response | None:
    try:
        return await client.get(url)
    except httpx.TransportError:
        return None


async def test_retention_removes_incoming_events_no_retained_run_refers_to(
    private_api: tuple[Api, Settings],
) -> None:
    api, settings = private_api
    name = await event_type(api)
    unheard = await post_event(api, name, "sensor-1")
    await subscribe(api, "sensor-2", name, await published_script(api))
    heard = await post_event(api, name, "sensor-2")
    assert len(heard["runs"]) == 1

    assert settings.database_url is not None
    pool = await asyncpg.create_pool(**asyncpg_connect_kwargs(settings.database_url), min_size=1, max_size=2)
    try:
        pruned = await prune(
            pool,
            Retention(runs_days=10, events_days=1, commands_days=1),
            now=datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=2),
        )
    finally:
        await pool.close()

    assert pruned["incoming_events"] == 1
    assert_error(await api.get(f"/events/{unheard['eventId']}"), 404, "NOT_FOUND")
    assert (await api.get(f"/events/{heard['eventId']}")).status_code == 200


async def test_metrics_show_the_outbox_per_tenant_with_the_rest_as_other(fresh_database_url: str) -> None:
    settings = make_settings(fresh_database_url, METRICS_TOP_TENANTS="2")
    async with AsyncTestClient(create_app(settings), base_url="http://testserver.local") as client:
        backlog = {"deep": 3, "middle": 2, "shallow-1": 1, "shallow-2": 1}
        for tenant, count in backlog.items():
            for _ in range(count):
                body = {"command": "X.Do.v1", "actor": {"userId": "u"}}
                assert (await Api(client, tenant).post("/commands", json=body)).status_code == 202
        samples = _samples((await Api(client, "deep").get("/metrics")).text)

    depth = {k: v for k, v in samples.items() if k.startswith("scriptworks_outbox_tenant_pending")}
    assert depth == {
        "scriptworks_outbox_tenant_pending{tenant=deep}": 3,
        "scriptworks_outbox_tenant_pending{tenant=middle}": 2,
        "scriptworks_outbox_tenant_pending{tenant=other}": 2,
    }
    assert samples["scriptworks_outbox_tenant_oldest_pending_age_seconds{tenant=deep}"] >= 0


async def test_retention_removes_closed_debounce_windows_and_idle_flows_with_their_events(
    private_api: tuple[Api, Settings],
) -> None:
    api, settings = private_api
    name = await event_type(api)
    script_id = await published_script(api)
    subscribed = await api.post(
        "/subjects/hall/subscriptions/triggers",
        json={"eventName": name, "scriptId": script_id, "flowControl": {"debounceSeconds": 5}},
    )
    assert subscribed.status_code == 201, subscribed.text
    event = await post_event(api, name, "hall")
    assert len(event["deferred"]) == 1
    assert settings.database_url is not None
    in_three_days = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3)
    short = Retention(runs_days=1, events_days=1, commands_days=1)

    pool = await asyncpg.create_pool(**asyncpg_connect_kwargs(settings.database_url), min_size=1, max_size=2)
    starter = Standalone(lambda shared: DeferredRunStarter(settings, shared), settings.database_url)
    await starter.open()
    try:
        pending = await prune(
            pool, Retention(runs_days=10, events_days=1, commands_days=1), now=in_three_days
        )
        # the pending window and its event wait for the worker; its flow row holds the window
        assert (pending["incoming_events"], pending["deferred_runs"], pending["trigger_flows"]) == (0, 0, 0)

        assert await starter.run_once(now=in_three_days) == 1
        kept = await prune(pool, Retention(runs_days=10, events_days=1, commands_days=1), now=in_three_days)
        # the run the window started is retained, so is its triggering event and the window
        assert (kept["incoming_events"], kept["deferred_runs"], kept["trigger_flows"]) == (0, 0, 1)

        # the run started at the pass's time: two days later everything of the window is past
        gone = await prune(pool, short, now=in_three_days + datetime.timedelta(days=2))
        windows = await pool.fetchval("SELECT count(*) FROM deferred_runs WHERE tenant_id = $1", api.tenant)
        flows = await pool.fetchval("SELECT count(*) FROM trigger_flows WHERE tenant_id = $1", api.tenant)
    finally:
        await starter.stop()
        await pool.close()

    assert (gone["runs"], gone["incoming_events"], gone["deferred_runs"]) == (1, 1, 1)
    assert (windows, flows) == (0, 0)
    assert_error(await api.get(f"/events/incoming/{event['eventId']}"), 404, "NOT_FOUND")
