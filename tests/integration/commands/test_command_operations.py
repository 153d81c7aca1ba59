"""The operator's side of the outbox (SPEC 6): GET /commands (the dead-letter view is
status=FAILED), each command's outcome event, POST /commands/{correlationId}/retry and /cancel,
their audit entries, who may call them, the tenant boundary, and a cancel racing a worker's claim.

Commands that must stay PENDING live in a database no worker ever drains (a worker of another
test module would otherwise take them); tests that need a worker, or claim commands themselves,
get a database of their own.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import make_url

from app.config import Settings
from app.domain.commands.outbox import Outbox
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from app.worker.dispatcher import OutboxWorker
from tests.conftest import make_settings
from tests.support.api import ROLE_TOKENS, SERVICE_TOKEN, USER_TOKEN, Api, assert_error, new_tenant
from tests.support.database import scratch_database
from tests.support.waiting import eventually
from tests.support.workers import Standalone

CONTACTS = "Contacts.UpsertAndLink.v1"
FAILING = "Dev.Fail.v1"


# ---- a database no worker drains, for commands that must stay PENDING -----------------------------


@pytest.fixture(scope="module")
def quiet_database(server_url: str, template_url: str) -> Iterator[str]:
    with scratch_database(server_url, template=make_url(template_url).database) as url:
        yield url


@pytest.fixture(scope="module")
async def quiet_http(quiet_database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with AsyncTestClient(
        app=create_app(make_settings(quiet_database)), base_url="http://testserver.local"
    ) as client:
        yield client


@pytest.fixture
def api(quiet_http: httpx.AsyncClient, tenant: str) -> Api:
    return Api(quiet_http, tenant)


@pytest.fixture
def other_api(quiet_http: httpx.AsyncClient) -> Api:
    return Api(quiet_http, new_tenant())


# ---- a database of the test's own, with a worker on demand ---------------------------------------


@dataclass
class Outboxed:
    """The API and, on demand, an in-process worker on a database of this test's own."""

    api: Api
    settings: Settings

    @property
    def url(self) -> str:
        assert self.settings.database_url is not None
        return self.settings.database_url

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[OutboxWorker]:
        running = Standalone(lambda shared: OutboxWorker(self.settings, shared), self.url)
        await running.start()
        try:
            yield running
        finally:
            await running.stop()


@pytest.fixture
async def outboxed(fresh_database_url: str) -> AsyncIterator[Outboxed]:
    """One attempt per command, so Dev.Fail.v1 is FAILED after its first run."""
    settings = make_settings(
        fresh_database_url,
        WORKER_MAX_ATTEMPTS="1",
        WORKER_POLL_SECONDS="0.1",
        WORKER_RETRY_BASE_SECONDS="0.02",
    )
    async with AsyncTestClient(app=create_app(settings), base_url="http://testserver.local") as client:
        yield Outboxed(Api(client, new_tenant()), settings)


# ---- helpers ---------------------------------------------------------------------------------------


async def post_command(api: Api, command: str = CONTACTS, **fields: Any) -> str:
    body = {"command": command, "actor": {"userId": "user-42"}, "payload": {"n": 1}, **fields}
    response = await api.post("/commands", json=body)
    assert response.status_code == 202, response.text
    return response.json()["correlationId"]


async def status_of(api: Api, correlation_id: str) -> dict[str, Any]:
    response = await api.get(f"/commands/{correlation_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def until(api: Api, correlation_id: str, status: str) -> dict[str, Any]:
    return await eventually(lambda: status_of(api, correlation_id), lambda s: s["status"] == status)


async def listed(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/commands", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    assert response.json()["nextCursor"] is None
    return response.json()["items"]


async def events_of(url: str, tenant: str, correlation_id: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        rows = await connection.fetch(
            "SELECT id, event, success, payload::text AS payload FROM events "
            "WHERE tenant_id = $1 AND correlation_id = $2 ORDER BY id",
            tenant,
            correlation_id,
        )
    finally:
        await connection.close()
    return [{**dict(row), "payload": json.loads(row["payload"])} for row in rows]


async def trail(api: Api, action: str | None = None) -> list[dict[str, Any]]:
    response = await api.get("/audit", params={"action": action} if action else {})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def cancel(api: Api, correlation_id: str, **kw: Any) -> httpx.Response:
    return await api.post(f"/commands/{correlation_id}/cancel", **kw)


async def retry(api: Api, correlation_id: str, **kw: Any) -> httpx.Response:
    return await api.post(f"/commands/{correlation_id}/retry", **kw)


# ---- GET /commands ---------------------------------------------------------------------------------


async def test_list_is_newest_first_in_keyset_pages_of_the_same_shape_as_one_command(api: Api) -> None:
    posted = [await post_command(api) for _ in range(5)]

    seen: list[dict[str, Any]] = []
    cursor = None
    for _ in range(3):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/commands", params=params)).json()
        seen += page["items"]
        cursor = page["nextCursor"]
    assert cursor is None
    assert [c["correlationId"] for c in seen] == posted[::-1]
    assert seen[0] == await status_of(api, posted[-1])
    assert seen[0]["outcome"] is None


async def test_list_filters_by_status(api: Api) -> None:
    first, second, third = [await post_command(api) for _ in range(3)]
    assert (await cancel(api, second)).status_code == 200

    cancelled = await listed(api, status="CANCELLED")
    pending = await listed(api, status="PENDING")

    assert [c["correlationId"] for c in cancelled] == [second]
    assert [c["correlationId"] for c in pending] == [third, first]
    assert await listed(api, status="FAILED") == []


async def test_list_filters_by_command_name(api: Api) -> None:
    billing = await post_command(api, "Billing.Charge.v1")
    await post_command(api, CONTACTS)
    billing_again = await post_command(api, "Billing.Charge.v1")

    found = await listed(api, command="Billing.Charge.v1")

    assert [c["correlationId"] for c in found] == [billing_again, billing]
    assert await listed(api, command="Billing.Charge.v2") == []


async def test_list_window_from_is_inclusive_and_to_exclusive(api: Api) -> None:
    posted = []
    for _ in range(3):
        posted.append(await post_command(api))
        await asyncio.sleep(0.005)  # createdAt apart by more than its shown milliseconds
    middle = (await status_of(api, posted[1]))["createdAt"]

    since = await listed(api, **{"from": middle})
    before = await listed(api, to=middle)

    assert [c["correlationId"] for c in since] == [posted[2], posted[1]]
    assert [c["correlationId"] for c in before] == [posted[0]]


async def test_list_filters_combine_and_keep_to_the_tenant(api: Api, other_api: Api) -> None:
    mine = await post_command(api, "Billing.Charge.v1")
    await post_command(api, "Billing.Charge.v1")
    await post_command(other_api, "Billing.Charge.v1")
    assert (await cancel(api, mine)).status_code == 200

    found = await listed(api, status="CANCELLED", command="Billing.Charge.v1")

    assert [c["correlationId"] for c in found] == [mine]
    assert {c["tenantId"] for c in await listed(api)} == {api.tenant}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "LOST"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
    ],
)
async def test_list_rejects_bad_parameters(api: Api, params: dict[str, Any], field: str) -> None:
    body = assert_error(await api.get("/commands", params=params), 400, "VALIDATION_ERROR")

    assert field in str(body["details"])


# ---- outcomes and the dead-letter view -----------------------------------------------------------


async def test_dead_letter_view_lists_failed_commands_with_their_failure_event(outboxed: Outboxed) -> None:
    api = outboxed.api
    failed = [await post_command(api, FAILING), await post_command(api, FAILING)]
    completed = await post_command(api, CONTACTS)
    async with outboxed.worker():
        for correlation_id in failed:
            await until(api, correlation_id, "FAILED")
        await until(api, completed, "COMPLETED")

    dead = await listed(api, status="FAILED")

    assert [c["correlationId"] for c in dead] == failed[::-1]
    for command in dead:
        assert command["attempts"] == 1
        assert "always fails" in command["lastError"]
        outcome = command["outcome"]
        assert (outcome["event"], outcome["success"]) == ("Dev.FailCompleted.v1", False)
        assert outcome["payload"] == {"command": FAILING, "error": command["lastError"], "attempts": 1}
        assert [e["id"] for e in await events_of(outboxed.url, api.tenant, command["correlationId"])] == [
            outcome["id"]
        ]


async def test_a_completed_command_shows_its_completion_event(outboxed: Outboxed) -> None:
    api = outboxed.api
    correlation_id = await post_command(api, CONTACTS)
    async with outboxed.worker():
        done = await until(api, correlation_id, "COMPLETED")

    outcome = done["outcome"]
    assert set(outcome) == {"id", "event", "success", "payload", "occurredAt"}
    assert (outcome["event"], outcome["success"]) == ("Contacts.Upserted.v1", True)
    assert outcome["payload"]["contacts"][0]["contactId"].startswith("cnt_")
    assert outcome["occurredAt"].endswith("Z")


async def test_the_outcome_is_never_a_lifecycle_event_of_the_same_correlation_id(api: Api) -> None:
    """A command's correlationId defaults to the request's Correlation-Id, which a script change
    made in another request may have carried too."""
    shared = "0190b5a0-7c1e-7b3c-9d4e-2f6a8b1c3d5e"
    await api.post("/scripts", json={"name": "S", "slug": "shared-corr"}, headers={"Correlation-Id": shared})
    response = await api.post(
        "/commands", json={"command": CONTACTS, "actor": {"userId": "u"}}, headers={"Correlation-Id": shared}
    )
    assert response.json()["correlationId"] == shared
    assert (await status_of(api, shared))["outcome"] is None

    assert (await cancel(api, shared)).status_code == 200

    outcome = (await status_of(api, shared))["outcome"]
    assert (outcome["event"], outcome["success"]) == ("Contacts.Upserted.v1", False)


# ---- retry -----------------------------------------------------------------------------------------


async def test_retry_of_a_failed_command_runs_it_again_and_records_its_new_outcome(
    outboxed: Outboxed,
) -> None:
    api = outboxed.api
    correlation_id = await post_command(api, FAILING)
    async with outboxed.worker():
        first = (await until(api, correlation_id, "FAILED"))["outcome"]

        response = await retry(api, correlation_id)

        assert response.status_code == 200, response.text
        retried = response.json()
        assert (retried["status"], retried["attempts"], retried["outcome"]) == ("PENDING", 0, None)
        assert retried["completedAt"] is None
        assert "always fails" in retried["lastError"]  # kept until a new attempt replaces it
        again = await eventually(
            lambda: status_of(api, correlation_id),
            lambda s: s["status"] == "FAILED" and s["outcome"]["id"] != first["id"],
        )

    assert again["attempts"] == 1
    assert again["outcome"]["id"] > first["id"]
    assert "(attempt 1)" in again["lastError"]
    events = await events_of(outboxed.url, api.tenant, correlation_id)
    assert [(e["event"], e["success"]) for e in events] == [("Dev.FailCompleted.v1", False)] * 2


async def test_retry_of_a_cancelled_command_runs_it_to_completion(outboxed: Outboxed) -> None:
    api = outboxed.api
    correlation_id = await post_command(api, CONTACTS)
    assert (await cancel(api, correlation_id)).status_code == 200

    assert (await retry(api, correlation_id)).status_code == 200
    async with outboxed.worker():
        done = await until(api, correlation_id, "COMPLETED")

    assert (done["attempts"], done["lastError"]) == (1, None)
    assert (done["outcome"]["event"], done["outcome"]["success"]) == ("Contacts.Upserted.v1", True)
    events = await events_of(outboxed.url, api.tenant, correlation_id)
    assert [e["success"] for e in events] == [False, True]


async def test_retry_of_a_pending_command_is_not_retryable(api: Api) -> None:
    correlation_id = await post_command(api)
    before = await status_of(api, correlation_id)

    body = assert_error(await retry(api, correlation_id), 409, "COMMAND_NOT_RETRYABLE")

    assert body["details"] == {"status": "PENDING"}
    assert await status_of(api, correlation_id) == before
    assert await trail(api) == []


async def test_retry_of_a_completed_command_is_not_retryable(outboxed: Outboxed) -> None:
    api = outboxed.api
    correlation_id = await post_command(api, CONTACTS)
    async with outboxed.worker():
        done = await until(api, correlation_id, "COMPLETED")

    body = assert_error(await retry(api, correlation_id), 409, "COMMAND_NOT_RETRYABLE")

    assert body["details"] == {"status": "COMPLETED"}
    assert await status_of(api, correlation_id) == done
    assert await trail(api) == []


# ---- cancel ----------------------------------------------------------------------------------------


async def test_cancel_of_a_pending_command_writes_one_failure_event_and_no_worker_runs_it(
    outboxed: Outboxed,
) -> None:
    api = outboxed.api
    correlation_id = await post_command(api, "Billing.Charge.v1")

    response = await cancel(api, correlation_id)

    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["attempts"], cancelled["nextAttemptAt"]) == ("CANCELLED", 0, None)
    assert cancelled["completedAt"] is not None
    outcome = cancelled["outcome"]
    assert (outcome["event"], outcome["success"]) == ("Billing.ChargeCompleted.v1", False)
    assert outcome["payload"] == {"command": "Billing.Charge.v1", "error": "cancelled", "attempts": 0}
    assert await status_of(api, correlation_id) == cancelled

    later = await post_command(api, "Billing.Charge.v1")
    async with outboxed.worker() as worker:
        await until(api, later, "COMPLETED")

    assert worker.claimed == 1
    assert await status_of(api, correlation_id) == cancelled
    assert [e["id"] for e in await events_of(outboxed.url, api.tenant, correlation_id)] == [outcome["id"]]


async def test_cancel_of_a_claimed_command_is_not_cancellable(outboxed: Outboxed) -> None:
    api = outboxed.api
    correlation_id = await post_command(api, "Dev.Sleep.v1", payload={"seconds": 60})
    pool = await asyncpg.create_pool(min_size=1, max_size=1, **asyncpg_connect_kwargs(outboxed.url))
    try:
        assert [c.correlation_id for c in await Outbox(pool).claim(10, 60)] == [correlation_id]
    finally:
        await pool.close()

    body = assert_error(await cancel(api, correlation_id), 409, "COMMAND_NOT_CANCELLABLE")

    assert body["details"] == {"status": "PROCESSING"}
    assert (await status_of(api, correlation_id))["status"] == "PROCESSING"
    assert await events_of(outboxed.url, api.tenant, correlation_id) == []
    assert await trail(api) == []


async def test_cancel_of_a_completed_command_is_not_cancellable(outboxed: Outboxed) -> None:
    api = outboxed.api
    correlation_id = await post_command(api, CONTACTS)
    async with outboxed.worker():
        done = await until(api, correlation_id, "COMPLETED")

    body = assert_error(await cancel(api, correlation_id), 409, "COMMAND_NOT_CANCELLABLE")

    assert body["details"] == {"status": "COMPLETED"}
    assert await status_of(api, correlation_id) == done
    assert len(await events_of(outboxed.url, api.tenant, correlation_id)) == 1
    assert await trail(api) == []


async def test_cancel_twice_is_not_cancellable_and_writes_one_event(api: Api, quiet_database: str) -> None:
    correlation_id = await post_command(api)
    assert (await cancel(api, correlation_id)).status_code == 200

    body = assert_error(await cancel(api, correlation_id), 409, "COMMAND_NOT_CANCELLABLE")

    assert body["details"] == {"status": "CANCELLED"}
    assert len(await events_of(quiet_database, api.tenant, correlation_id)) == 1
    assert len(await trail(api, "CANCEL")) == 1


async def test_a_cancel_with_an_idempotency_key_is_replayed_not_repeated(
    api: Api, quiet_database: str
) -> None:
    correlation_id = await post_command(api)
    key = {"Idempotency-Key": f"cancel-{correlation_id}"}

    first = await cancel(api, correlation_id, headers=key)
    second = await cancel(api, correlation_id, headers=key)

    assert first.status_code == second.status_code == 200
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()
    assert len(await events_of(quiet_database, api.tenant, correlation_id)) == 1
    assert len(await trail(api, "CANCEL")) == 1


async def test_unknown_commands_are_not_found(api: Api) -> None:
    assert_error(await retry(api, "no-such-command"), 404, "NOT_FOUND")
    assert_error(await cancel(api, "no-such-command"), 404, "NOT_FOUND")


# ---- audit, roles, tenants -----------------------------------------------------------------------


async def test_cancel_and_retry_each_write_one_audit_entry_by_their_caller(api: Api) -> None:
    correlation_id = await post_command(api)

    assert (await cancel(api.as_(token=USER_TOKEN), correlation_id)).status_code == 200
    assert (await retry(api.as_(token=SERVICE_TOKEN), correlation_id)).status_code == 200

    cancelled, retried = await trail(api, "CANCEL"), await trail(api, "RETRY")
    assert [(e["actorId"], e["correlationId"], e["scriptId"], e["version"]) for e in cancelled] == [
        ("bob", correlation_id, None, None)
    ]
    assert cancelled[0]["diffJson"] == {"status": {"from": "PENDING", "to": "CANCELLED"}}
    assert [(e["actorId"], e["correlationId"], e["scriptId"]) for e in retried] == [
        ("svc-1", correlation_id, None)
    ]
    assert retried[0]["diffJson"] == {
        "status": {"from": "CANCELLED", "to": "PENDING"},
        "attempts": {"from": 0, "to": 0},
    }
    assert [e["action"] for e in await trail(api)] == ["RETRY", "CANCEL"]
    assert [e["id"] for e in await trail(api.as_(token=USER_TOKEN), "CANCEL")] == [cancelled[0]["id"]]
    assert (await api.get("/audit", params={"actorId": "svc-1"})).json()["items"] == retried


@pytest.mark.parametrize("role", ["viewer", "runner", "operator"])
async def test_roles_that_may_not_post_commands_may_neither_retry_nor_cancel(api: Api, role: str) -> None:
    pending, cancelled = await post_command(api), await post_command(api)
    assert (await cancel(api, cancelled)).status_code == 200
    before = [await status_of(api, c) for c in (pending, cancelled)]
    caller = api.as_(token=ROLE_TOKENS[role])

    assert_error(await cancel(caller, pending), 403, "FORBIDDEN")
    assert_error(await retry(caller, cancelled), 403, "FORBIDDEN")

    assert [await status_of(api, c) for c in (pending, cancelled)] == before
    assert [e["action"] for e in await trail(api)] == ["CANCEL"]


async def test_another_tenant_gets_not_found_and_changes_nothing(
    api: Api, other_api: Api, quiet_database: str
) -> None:
    pending, cancelled = await post_command(api), await post_command(api)
    assert (await cancel(api, cancelled)).status_code == 200
    before = [await status_of(api, c) for c in (pending, cancelled)]

    assert_error(await cancel(other_api, pending), 404, "NOT_FOUND")
    assert_error(await retry(other_api, cancelled), 404, "NOT_FOUND")
    assert_error(await cancel(other_api, cancelled), 404, "NOT_FOUND")
    assert_error(await retry(other_api, pending), 404, "NOT_FOUND")

    assert [await status_of(api, c) for c in (pending, cancelled)] == before
    assert len(await events_of(quiet_database, api.tenant, pending)) == 0
    assert [e["action"] for e in await trail(api)] == ["CANCEL"]
    assert await trail(other_api) == []
    assert await listed(other_api) == []


# ---- a cancel racing a worker's claim --------------------------------------------------------------


ROUNDS = 33


class ClaimingThread:
    """A worker's claims from a thread of their own, on its own event loop and pool.

    The test client answers a request by blocking the test's event loop until the app has
    answered. A claim made on that loop could then be left between its statement and its
    COMMIT while the app's cancel waits for the row the claim has locked: neither would ever
    finish. A worker's claims run on their own loop, as here.
    """

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="claims", daemon=True)
        self.thread.start()

        async def open_pool() -> asyncpg.Pool:
            return await asyncpg.create_pool(min_size=2, max_size=4, **asyncpg_connect_kwargs(url))

        self.pool: asyncpg.Pool = self._wait(open_pool())
        self.outbox = Outbox(self.pool)

    def _wait(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    async def claim(self, limit: int, lease_seconds: float) -> list[Any]:
        return await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self.outbox.claim(limit, lease_seconds), self.loop)
        )

    def close(self) -> None:
        self._wait(self.pool.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def test_a_cancel_racing_a_claim_has_exactly_one_winner(outboxed: Outboxed) -> None:
    api = outboxed.api
    outcomes = {"cancelled": 0, "claimed": 0}
    claims = await asyncio.to_thread(ClaimingThread, outboxed.url)
    try:

        async def after(delay: float, action: Any) -> Any:
            await asyncio.sleep(delay)
            return await action

        for round_ in range(ROUNDS):
            correlation_id = await post_command(api)
            # Each round starts one side a little before the other (from 0 to 20 ms either way),
            # so the race is run at every offset, including the ones where both overlap.
            lead = (round_ % 11 - 5) * 0.004
            response, claimed = await asyncio.gather(
                after(max(-lead, 0), cancel(api, correlation_id)), after(max(lead, 0), claims.claim(10, 60))
            )

            taken = [c.correlation_id for c in claimed]
            state = await status_of(api, correlation_id)
            events = await events_of(outboxed.url, api.tenant, correlation_id)
            if response.status_code == 200:
                outcomes["cancelled"] += 1
                assert taken == []
                assert (state["status"], state["attempts"]) == ("CANCELLED", 0)
                assert [e["success"] for e in events] == [False]
            else:
                outcomes["claimed"] += 1
                assert_error(response, 409, "COMMAND_NOT_CANCELLABLE")
                assert taken == [correlation_id]
                assert (state["status"], state["attempts"]) == ("PROCESSING", 1)
                assert events == []
    finally:
        await asyncio.to_thread(claims.close)

    assert sum(outcomes.values()) == ROUNDS, outcomes
    assert len(await trail(api, "CANCEL")) == outcomes["cancelled"]
