"""The in-process fixed windows behind the per-tenant rate limits."""

from __future__ import annotations

import pytest

from app.lib import rate_limit
from app.lib.rate_limit import FixedWindows


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1_000_000.0]
    monkeypatch.setattr(rate_limit.time, "time", lambda: now[0])
    return now


def test_a_key_is_refused_at_its_limit_until_the_window_resets(clock: list[float]) -> None:
    windows = FixedWindows(60)

    answers = [windows.hit("commands:acme", 3) for _ in range(4)]
    clock[0] += 59
    still_refused = windows.hit("commands:acme", 3)
    clock[0] += 1
    after_reset = windows.hit("commands:acme", 3)

    assert answers == [
        (True, 1, 1_000_060),
        (True, 2, 1_000_060),
        (True, 3, 1_000_060),
        (False, 3, 1_000_060),
    ]
    assert still_refused == (False, 3, 1_000_060)
    assert after_reset == (True, 1, 1_000_120)


def test_keys_count_separately(clock: list[float]) -> None:
    windows = FixedWindows(60)

    windows.hit("commands:acme", 1)

    assert windows.hit("commands:acme", 1)[0] is False
    assert windows.hit("commands:globex", 1)[0] is True
    assert windows.hit("events:acme", 1)[0] is True


def test_ended_windows_are_swept_once_many_keys_exist(
    clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limit, "_SWEEP_AT", 3)
    windows = FixedWindows(60)
    for key in ("a", "b", "c"):
        windows.hit(key, 10)
    clock[0] += 30
    windows.hit("d", 10)  # at the threshold, but a, b and c are still open: nothing to drop
    clock[0] += 30

    windows.hit("e", 10)

    assert set(windows._counts) == {"d", "e"}
