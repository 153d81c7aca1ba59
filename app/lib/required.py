"""Turning "no such row" into the domain's error: a repository answers None for a row it does not
find, and the service that needs the row raises its own ``NotFound`` (or other) error."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["required"]

T = TypeVar("T")


def required(found: T | None, missing: Callable[[], Exception]) -> T:
    """``found``, unless it is None: then the error ``missing`` makes is raised."""
    if found is None:
        raise missing()
    return found
