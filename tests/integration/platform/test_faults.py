"""Faults, scaled down (bench/stress.py runs the full sizes): a worker SIGKILLed during a stream
of commands, a client that stops reading its event stream, an exhausted connection pool, and
PostgreSQL restarted under load."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from tests.support.faults import pool_exhaustion, postgres_restart, slow_reader, worker_kills
from tests.support.server import ServerProcess


async def test_worker_killed_three_times_during_500_commands_loses_none_and_readers_miss_none(
    fresh_database_url: str,
) -> None:
    report = await worker_kills(fresh_database_url, commands=500, kills=3, readers=2, rate=150)

    assert report.kills == report.kills_mid_batch == 3
    assert (report.completed, report.lost, report.duplicate_events) == (500, 0, 0)
    assert report.events_skipped == 0
    assert report.reader_duplicates == 0
    assert report.reader_connections > 2  # the readers did drop and resume


async def test_a_client_that_stops_reading_is_dropped_without_slowing_the_others(
    live_server: ServerProcess, database_url: str
) -> None:
    report = await slow_reader(live_server.url, database_url)

    assert report.dropped
    assert report.healthy_received == report.events
    assert report.healthy_worst_lag < 5


async def test_an_exhausted_pool_gives_fast_503s_and_recovers(fresh_database_url: str) -> None:
    report = await pool_exhaustion(fresh_database_url, excess=20, pool_timeout=0.5)

    assert report.unavailable == report.excess_requests
    assert report.slowest_503 < 3
    assert report.all_answered_in < 4  # together, not one pool timeout after another
    assert report.held_request_status == 200
    assert report.after_release_status == 200


async def test_postgres_restarted_under_load_gives_503s_then_recovers_and_loses_nothing() -> None:
    folder = Path(tempfile.mkdtemp(prefix="scriptworks-restart-"))
    folder.chmod(0o755)  # noqa: ASYNC240 -- the server may run as another user
    try:
        report = await postgres_restart(folder, duration=4.5, rate=40, outage_seconds=1.5)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    assert report.unavailable > 0, report
    assert report.failed == 0, report
    assert report.slowest_503 < 3, report
    assert report.lost == 0, report
    assert report.recovery_seconds < 10, report
