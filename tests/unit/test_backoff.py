"""The two waits: a retry's delay grows with its attempts, capped, jittered; a lost database is
retried at doubling intervals that start over after a success."""

from __future__ import annotations

import pytest

from app.lib.backoff import Backoff, retry_delay


@pytest.mark.parametrize(("attempts", "expected"), [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (40, 60.0)])
def test_a_retry_waits_twice_as_long_per_attempt_up_to_the_cap(attempts: int, expected: float) -> None:
    delays = [retry_delay(attempts, base_seconds=2.0, max_seconds=60.0) for _ in range(200)]

    assert all(0.75 * expected <= d <= 1.25 * expected for d in delays)
    assert len(set(delays)) > 1  # jittered: failures do not retry in step


def test_losing_the_database_backs_off_doubling_to_five_seconds_and_a_success_starts_over() -> None:
    backoff = Backoff()

    assert [backoff.next() for _ in range(8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 0.1
