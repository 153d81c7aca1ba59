"""Flow control on trigger subscriptions (SPEC 7.1): debounce, throttle, both, and what became
of every incoming event.

Events are received on a simulated clock (``flow_control.event_clock``) and the deferred-run
starter's passes are driven with the same ``now``, so a burst of ten seconds replays in
milliseconds; the worker-process tests at the end run in real time.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from app.config import Settings
from app.domain.incoming_events import flow_control
from app.lib.db import asyncpg_connect_kwargs
from app.server.core import create_app
from app.worker.deferred_runs import DeferredRunStarter
from tests.conftest import make_settings, process_env
from tests.support.api import ROLE_TOKENS, Api, assert_error
from tests.support.server import ServerProcess
from tests.support.triggers import event_type, post_event, published_script, runs_of, subscribe
from tests.support.waiting import eventually
from tests.support.workers import Standalone

TENANT = "care-home"
SECOND = datetime.timedelta(seconds=1)


def parse(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


class Clock:
    """The simulated time incoming events are received at."""

    def __init__(self) -> None:
        self.now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    def __call__(self) -> datetime.datetime:
        return self.now


@pytest.fixture
def settings_(fresh_database_url: str) -> Settings:
    return make_settings(fresh_database_url, WORKER_BATCH_SIZE="10", SCHEDULER_POLL_SECONDS="0.1")


@pytest.fixture
async def api(settings_: Settings) -> AsyncIterator[Api]:
    async with AsyncTestClient(app=create_app(settings_), base_url="http://testserver.local") as client:
        yield Api(client, TENANT)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(flow_control, "event_clock", clock)
    return clock


def new_starter(settings: Settings) -> Standalone[DeferredRunStarter]:
    url = settings.database_url
    assert url is not None
    return Standalone(lambda shared: DeferredRunStarter(settings, shared), url)


@pytest.fixture
async def starter(settings_: Settings) -> AsyncIterator[Standalone[DeferredRunStarter]]:
    starter = new_starter(settings_)
    await starter.open()
    yield starter
    await starter.stop()


async def subscription(api: Api, subject: str = "robot-1", **flow: Any) -> tuple[str, dict[str, Any]]:
    """An event name and a subscription of a published script to it on ``subject``."""
    name = await event_type(api)
    script_id = await published_script(api)
    response = await api.post(
        f"/subjects/{subject}/subscriptions/triggers",
        json={"eventName": name, "scriptId": script_id, "flowControl": flow},
    )
    assert response.status_code == 201, response.text
    return name, response.json()


async def burst(
    api: Api, clock: Clock, name: str, subject: str, count: int, every: float, **body: Any
) -> list[dict[str, Any]]:
    answers = []
    for _ in range(count):
        answers.append(await post_event(api, name, subject, **body))
        clock.now += every * SECOND
    clock.now -= every * SECOND  # the clock stays at the last event
    return answers


async def outcome(api: Api, event_id: str) -> dict[str, Any]:
    response = await api.get(f"/events/incoming/{event_id}")
    assert response.status_code == 200, response.text
    (only,) = response.json()["outcomes"]
    return only


async def event_runs(api: Api) -> list[dict[str, Any]]:
    runs = await runs_of(api, triggerType="EVENT_TRIGGER")
    return sorted(runs, key=lambda r: (r["startedAt"], r["triggeringEventId"]))


# ---- debounce ----------------------------------------------------------------------------------


async def test_ten_events_a_second_apart_start_one_run_three_seconds_after_the_last(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, sub = await subscription(api, debounceSeconds=3)
    first = clock.now
    answers = []
    for i in range(10):
        clock.now = first + i * SECOND
        assert await starter.run_once(now=clock.now) == 0  # nothing is due during the burst
        answers.append(await post_event(api, name, "robot-1", payload={"n": i}))
    ids = [a["eventId"] for a in answers]

    assert all(a["runs"] == [] and a["suppressed"] == [] for a in answers)
    assert [parse(a["deferred"][0]["dueAt"]) for a in answers] == [
        first + (i + 3) * SECOND for i in range(10)
    ]
    assert answers[0]["deferred"][0] == {
        "subscriptionId": sub["id"],
        "scriptId": sub["scriptId"],
        "dueAt": answers[0]["deferred"][0]["dueAt"],
    }
    assert await starter.run_once(now=first + 12 * SECOND - datetime.timedelta(milliseconds=1)) == 0
    assert await starter.run_once(now=first + 12 * SECOND) == 1
    assert await starter.run_once(now=first + 60 * SECOND) == 0

    (run,) = await event_runs(api)
    assert parse(run["startedAt"]) == first + 12 * SECOND  # 3 s after the last event
    assert run["triggeringEventId"] == ids[-1]
    assert run["eventData"]["coalescedEventIds"] == ids
    assert run["eventData"]["payload"] == {"n": 9}
    for event_id in ids:
        folded = await outcome(api, event_id)
        assert (folded["outcome"], folded["foldedInto"], folded["reason"]) == ("FOLDED", run["id"], None)
    assert (await api.get("/runs", params={"triggeringEventId": ids[-1]})).json()["items"][0]["id"] == run[
        "id"
    ]


async def test_max_delay_starts_a_run_by_five_seconds_after_the_first_event_and_the_rest_fold_into_a_second(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, _ = await subscription(api, debounceSeconds=3, maxDelaySeconds=5)
    first = clock.now
    ids = []
    for i in range(10):
        clock.now = first + i * SECOND
        await starter.run_once(now=clock.now)  # a worker polling as the events arrive
        ids.append((await post_event(api, name, "robot-1"))["eventId"])
    await starter.run_once(now=first + 10 * SECOND)

    runs = await event_runs(api)
    assert [parse(r["startedAt"]) for r in runs] == [first + 5 * SECOND, first + 10 * SECOND]
    assert [r["eventData"]["coalescedEventIds"] for r in runs] == [ids[:5], ids[5:]]
    assert [r["triggeringEventId"] for r in runs] == [ids[4], ids[9]]


async def test_an_event_after_the_window_is_due_opens_the_next_window_even_before_the_worker_passes(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, _ = await subscription(api, debounceSeconds=3, maxDelaySeconds=5)
    first = clock.now
    answers = await burst(api, clock, name, "robot-1", 10, 1.0)
    ids = [a["eventId"] for a in answers]

    assert await starter.run_once(now=first + 20 * SECOND) == 2

    runs = await event_runs(api)
    assert [r["eventData"]["coalescedEventIds"] for r in runs] == [ids[:5], ids[5:]]
    assert [parse(a["deferred"][0]["dueAt"]) for a in answers[4:6]] == [
        first + 5 * SECOND,
        first + 8 * SECOND,
    ]


async def test_two_subjects_never_share_a_window(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, _ = await subscription(api, "*", debounceSeconds=3)
    by_subject: dict[str, list[str]] = {"kitchen": [], "hall": []}
    for i in range(6):
        subject = "kitchen" if i % 2 == 0 else "hall"
        by_subject[subject].append((await post_event(api, name, subject))["eventId"])
        clock.now += SECOND

    assert await starter.run_once(now=clock.now + 10 * SECOND) == 2

    runs = await event_runs(api)
    assert {r["eventData"]["subject"]: r["eventData"]["coalescedEventIds"] for r in runs} == by_subject


async def test_concurrent_events_of_one_subject_fold_into_one_window(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, _ = await subscription(api, debounceSeconds=3)

    answers = await asyncio.gather(*(post_event(api, name, "robot-1") for _ in range(10)))
    assert await starter.run_once(now=clock.now + 3 * SECOND) == 1

    (run,) = await event_runs(api)
    assert sorted(run["eventData"]["coalescedEventIds"]) == sorted(a["eventId"] for a in answers)


# ---- throttle ----------------------------------------------------------------------------------


async def test_twenty_events_in_ten_seconds_start_two_runs_and_the_rest_are_suppressed(
    api: Api, clock: Clock
) -> None:
    name, sub = await subscription(api, throttle={"runs": 2, "perSeconds": 60})

    answers = await burst(api, clock, name, "robot-1", 20, 0.5)

    started = [a for a in answers if a["runs"]]
    suppressed = [a for a in answers if a["suppressed"]]
    assert (len(started), len(suppressed)) == (2, 18)
    assert started == answers[:2]
    assert len(await event_runs(api)) == 2
    for answer in suppressed:
        assert answer["suppressed"] == [
            {"subscriptionId": sub["id"], "scriptId": sub["scriptId"], "reason": "THROTTLED"}
        ]
        assert answer["runs"] == []
        assert answer["deferred"] == []
        seen = await outcome(api, answer["eventId"])
        assert (seen["outcome"], seen["reason"], seen["runId"]) == ("SUPPRESSED", "THROTTLED", None)
    seen = await outcome(api, started[0]["eventId"])
    assert (seen["outcome"], seen["runId"]) == ("STARTED", started[0]["runs"][0]["runId"])

    clock.now = parse((await event_runs(api))[0]["startedAt"]) + 60 * SECOND  # the first start slid out
    assert len((await post_event(api, name, "robot-1"))["runs"]) == 1
    assert len((await post_event(api, name, "robot-1"))["suppressed"]) == 1


async def test_the_throttle_counts_each_subject_on_its_own(api: Api, clock: Clock) -> None:
    name, _ = await subscription(api, "*", throttle={"runs": 1, "perSeconds": 60})

    answers = [await post_event(api, name, subject) for subject in ("a", "b", "a", "b")]

    assert [len(a["runs"]) for a in answers] == [1, 1, 0, 0]


async def test_debounce_first_then_the_throttle_counts_the_runs_debouncing_produced(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, _ = await subscription(api, debounceSeconds=2, throttle={"runs": 1, "perSeconds": 60})
    first_burst = await burst(api, clock, name, "robot-1", 3, 0.5)
    assert await starter.run_once(now=clock.now + 2 * SECOND) == 1
    clock.now += 10 * SECOND
    second_burst = await burst(api, clock, name, "robot-1", 3, 0.5)
    assert await starter.run_once(now=clock.now + 2 * SECOND) == 1

    (run,) = await event_runs(api)
    assert run["eventData"]["coalescedEventIds"] == [a["eventId"] for a in first_burst]
    for answer in second_burst:
        assert answer["deferred"]
        assert not answer["suppressed"]
        seen = await outcome(api, answer["eventId"])
        assert (seen["outcome"], seen["reason"], seen["foldedInto"]) == ("SUPPRESSED", "THROTTLED", None)


# ---- several workers, restarts, cancelling -----------------------------------------------------


async def test_two_workers_and_a_hundred_subjects_start_exactly_one_run_per_window(
    api: Api, clock: Clock, settings_: Settings
) -> None:
    name, _ = await subscription(api, "*", debounceSeconds=5)
    subjects = [f"room-{i:03d}" for i in range(100)]
    for _ in range(2):
        for subject in subjects:
            await post_event(api, name, subject)
        clock.now += SECOND
    workers = [new_starter(settings_) for _ in range(2)]
    for worker in workers:
        await worker.open()
    try:
        due = clock.now + 10 * SECOND
        while sum(await asyncio.gather(*(w.run_once(now=due) for w in workers))):
            pass
    finally:
        for worker in workers:
            await worker.stop()

    runs = await event_runs(api)
    assert len(runs) == 100
    assert sorted(r["eventData"]["subject"] for r in runs) == subjects
    assert all(len(r["eventData"]["coalescedEventIds"]) == 2 for r in runs)
    assert all(w.runs_started > 0 for w in workers)  # both took a share (batches of 10)
    assert sum(w.runs_started for w in workers) == 100


async def test_archiving_the_script_cancels_its_pending_runs(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, sub = await subscription(api, debounceSeconds=60)
    event_id = (await post_event(api, name, "robot-1"))["eventId"]
    assert (await outcome(api, event_id))["outcome"] == "DEFERRED"

    archived = await api.patch(f"/scripts/{sub['scriptId']}", json={"status": "ARCHIVED"})
    assert archived.status_code == 200, archived.text
    assert (await api.patch(f"/scripts/{sub['scriptId']}", json={"status": "PUBLISHED"})).status_code == 200

    assert await starter.run_once(now=clock.now + 3600 * SECOND) == 0
    assert await event_runs(api) == []
    seen = await outcome(api, event_id)
    assert (seen["outcome"], seen["reason"], seen["foldedInto"]) == ("CANCELLED", "SCRIPT_ARCHIVED", None)


async def test_deactivating_the_subscription_cancels_its_pending_runs(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter]
) -> None:
    name, sub = await subscription(api, debounceSeconds=60)
    event_id = (await post_event(api, name, "robot-1"))["eventId"]

    deleted = await api.delete(f"/subjects/robot-1/subscriptions/triggers/{sub['id']}")
    assert deleted.status_code == 204

    assert await starter.run_once(now=clock.now + 3600 * SECOND) == 0
    assert await event_runs(api) == []
    seen = await outcome(api, event_id)
    assert (seen["outcome"], seen["reason"]) == ("CANCELLED", "SUBSCRIPTION_DEACTIVATED")


async def test_a_window_still_pending_for_a_subscription_deactivated_meanwhile_is_cancelled_when_due(
    api: Api, clock: Clock, starter: Standalone[DeferredRunStarter], settings_: Settings
) -> None:
    """The worker checks again when a window is due (an event may race with the deactivation)."""
    name, sub = await subscription(api, debounceSeconds=5)
    event_id = (await post_event(api, name, "robot-1"))["eventId"]
    url = settings_.database_url
    assert url is not None
    # A deactivation that, as in a race with the event, left the window pending.
    connection = await asyncpg.connect(**asyncpg_connect_kwargs(url))
    try:
        await connection.execute(
            "UPDATE trigger_subscriptions SET active = false, deactivated_at = now() WHERE id = $1",
            uuid.UUID(sub["id"]),
        )
    finally:
        await connection.close()

    assert await starter.run_once(now=clock.now + 5 * SECOND) == 1
    assert await event_runs(api) == []
    assert (await outcome(api, event_id))["reason"] == "SUBSCRIPTION_DEACTIVATED"


# ---- the API surface ---------------------------------------------------------------------------


INVALID_FLOW_CONTROLS = [
    ({"debounceSeconds": 0}, "flowControl.debounceSeconds"),
    ({"debounceSeconds": 3601}, "flowControl.debounceSeconds"),
    ({"debounceSeconds": 2.5}, "flowControl.debounceSeconds"),
    ({"debounceSeconds": 10, "maxDelaySeconds": 5}, "flowControl.maxDelaySeconds"),
    ({"debounceSeconds": 10, "maxDelaySeconds": 86401}, "flowControl.maxDelaySeconds"),
    ({"maxDelaySeconds": 60}, "flowControl.maxDelaySeconds"),
    ({"throttle": {"runs": 0, "perSeconds": 60}}, "flowControl.throttle.runs"),
    ({"throttle": {"runs": 1001, "perSeconds": 60}}, "flowControl.throttle.runs"),
    ({"throttle": {"runs": 1, "perSeconds": 86401}}, "flowControl.throttle.perSeconds"),
    ({"throttle": {"runs": 1}}, "flowControl.throttle.perSeconds"),
    ({"throttle": {"runs": 1, "perSeconds": 1, "burst": 2}}, "flowControl.throttle"),
    ({"debounce": 5}, "flowControl"),
    ({}, "flowControl"),
    ([5], "flowControl"),
]


async def test_invalid_flow_control_is_400_naming_the_field(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)

    for flow, field in INVALID_FLOW_CONTROLS:
        for prefix in ("", "/internal"):
            response = await api.post(
                f"{prefix}/subjects/robot-1/subscriptions/triggers",
                json={"eventName": name, "scriptId": script_id, "flowControl": flow},
            )
            body = assert_error(response, 400, "VALIDATION_ERROR")
            assert body["details"][0]["field"].startswith(field), (flow, body)
    listed = await api.get("/subjects/robot-1/subscriptions/triggers")
    assert listed.json()["items"] == []


async def test_flow_control_is_not_for_lifecycle_events(api: Api) -> None:
    response = await api.post(
        "/subjects/*/subscriptions/triggers",
        json={
            "eventName": "Script.Published",
            "scriptId": await published_script(api),
            "flowControl": {"debounceSeconds": 5},
        },
    )
    assert assert_error(response, 400, "VALIDATION_ERROR")["details"][0]["field"] == "flowControl"


async def test_a_subscription_shows_its_flow_control_on_both_routes(api: Api) -> None:
    name = await event_type(api)
    script_id = await published_script(api)
    flow = {"debounceSeconds": 30, "maxDelaySeconds": 120, "throttle": {"runs": 1, "perSeconds": 600}}
    created = await api.as_(token=ROLE_TOKENS["service"]).post(
        "/internal/subjects/robot-1/subscriptions/triggers",
        json={"eventName": name, "scriptId": script_id, "flowControl": flow},
    )
    assert created.status_code == 201, created.text
    plain = await subscribe(api, "robot-2", name, script_id)

    assert created.json()["flowControl"] == flow
    assert plain["flowControl"] is None
    (listed,) = (await api.get("/subjects/robot-1/subscriptions/triggers")).json()["items"]
    assert listed["flowControl"] == flow
    partial = await api.post(
        "/subjects/robot-3/subscriptions/triggers",
        json={
            "eventName": name,
            "scriptId": script_id,
            "flowControl": {"throttle": {"runs": 3, "perSeconds": 60}},
        },
    )
    assert partial.json()["flowControl"] == {
        "debounceSeconds": None,
        "maxDelaySeconds": None,
        "throttle": {"runs": 3, "perSeconds": 60},
    }


async def test_replays_answer_a_deferred_event_identically(api: Api, clock: Clock) -> None:
    name, _ = await subscription(api, debounceSeconds=30)
    headers = {"Idempotency-Key": "sensor-burst-1"}
    body = {"eventName": name, "subject": "robot-1"}

    first = await api.post("/events", json=body, headers=headers)
    clock.now += SECOND
    again = await api.post("/events", json=body, headers=headers)
    by_source = [await post_event(api, name, "robot-1", sourceEventId="s-1") for _ in range(2)]

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert len(first.json()["deferred"]) == 1
    assert by_source[0] == by_source[1]
    listed = (await api.get("/events/incoming")).json()["items"]
    assert len(listed) == 2  # the replays stored nothing


async def test_incoming_events_are_listed_newest_first_with_filters_and_a_cursor(
    api: Api, clock: Clock
) -> None:
    name, sub = await subscription(api, "*", debounceSeconds=30)
    start = clock.now
    ids = []
    for i in range(5):
        ids.append((await post_event(api, name, "hall" if i % 2 else "kitchen"))["eventId"])
        clock.now += SECOND

    first = (await api.get("/events/incoming", params={"limit": 2})).json()
    rest = (await api.get("/events/incoming", params={"limit": 10, "cursor": first["nextCursor"]})).json()
    kitchen = (await api.get("/events/incoming", params={"subject": "kitchen"})).json()["items"]
    windowed = (
        await api.get(
            "/events/incoming",
            params={
                "from": (start + SECOND).isoformat().replace("+00:00", "Z"),
                "to": (start + 3 * SECOND).isoformat().replace("+00:00", "Z"),
                "eventName": name,
            },
        )
    ).json()["items"]
    other_name = (await api.get("/events/incoming", params={"eventName": "NOPE"})).json()["items"]

    assert [e["id"] for e in first["items"] + rest["items"]] == ids[::-1]
    assert rest["nextCursor"] is None
    assert [e["id"] for e in kitchen] == [ids[4], ids[2], ids[0]]
    assert [e["id"] for e in windowed] == [ids[2], ids[1]]
    assert other_name == []
    assert first["items"][0]["outcomes"] == [
        {
            "subscriptionId": sub["id"],
            "scriptId": sub["scriptId"],
            "outcome": "DEFERRED",
            "reason": None,
            "runId": None,
            "dueAt": first["items"][0]["deferred"][0]["dueAt"],
            "foldedInto": None,
        }
    ]


async def test_metrics_count_received_started_deferred_and_suppressed(api: Api, clock: Clock) -> None:
    name, _ = await subscription(api, throttle={"runs": 1, "perSeconds": 60})
    other, _ = await subscription(api, debounceSeconds=60)
    for _ in range(2):
        await post_event(api, name, "robot-1")
        await post_event(api, other, "robot-1")

    text = (await api.as_(token=ROLE_TOKENS["operator"]).get("/metrics")).text

    for metric in (
        "scriptworks_trigger_events_received_total",
        'scriptworks_trigger_runs_started_total{mode="immediate"}',
        "scriptworks_trigger_runs_deferred_total",
        'scriptworks_trigger_runs_suppressed_total{reason="THROTTLED"}',
        "scriptworks_trigger_deferred_pending",
    ):
        assert metric in text, metric


# ---- real time, real worker processes ----------------------------------------------------------


async def test_a_restarted_worker_starts_the_pending_runs_once_and_on_time(
    fresh_database_url: str, processes: list[Any]
) -> None:
    poll = 0.2
    env = process_env(fresh_database_url, SCHEDULER_POLL_SECONDS=str(poll))
    app = create_app(make_settings(fresh_database_url))
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as client:
        api = Api(client, TENANT)
        name, _ = await subscription(api, "*", debounceSeconds=3)
        first = ServerProcess(env, command=["worker"]).start(wait_for_health=False)
        processes.append(first)
        answers = [await post_event(api, name, subject) for subject in ("kitchen", "hall", "kitchen")]
        first.kill()  # gone while both runs are deferred
        second = ServerProcess(env, command=["worker"]).start(wait_for_health=False)
        processes.append(second)

        runs = await eventually(lambda: event_runs(api), lambda runs: len(runs) >= 2, timeout=20, every=0.1)
        second.stop()
        runs = await event_runs(api)

    assert len(runs) == 2
    due = {
        a["deferred"][0]["dueAt"]: a["eventId"] for a in answers
    }  # the kitchen's second event moved its window
    for run in runs:
        (due_at,) = [d for d, e in due.items() if e == run["triggeringEventId"]]
        late = (parse(run["startedAt"]) - parse(due_at)).total_seconds()
        assert 0 <= late <= poll + 0.5, (run, due_at)
    kitchen = next(r for r in runs if r["eventData"]["subject"] == "kitchen")
    assert kitchen["eventData"]["coalescedEventIds"] == [answers[0]["eventId"], answers[2]["eventId"]]
