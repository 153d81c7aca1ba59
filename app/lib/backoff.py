"""The two waits of the house, each written once.

- ``retry_delay``: when a failed piece of work (a command's handler, a schedule's fire) is tried
  again: exponential in its attempts, capped, with jitter so that many failures do not retry in
  step.
- ``Backoff``: how long a loop waits after it lost the database, before trying again.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "retry_delay"]


def retry_delay(attempts: int, base_seconds: float, max_seconds: float) -> float:
    """Seconds before attempt ``attempts + 1``: ``base · 2^(attempts - 1)``, at most ``max``, ±25 %."""
    return min(base_seconds * 2 ** (attempts - 1), max_seconds) * random.uniform(0.75, 1.25)


class Backoff:
    """Waits after consecutive failures: 0.1 s, doubling up to 5 s; a success starts over."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def next(self) -> float:
        wait = self._next
        self._next = min(self._next * 2, self.cap)
        return wait
