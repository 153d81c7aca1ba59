"""Small helpers over what the database driver reports."""

from __future__ import annotations

__all__ = ["constraint_name"]


def constraint_name(error: BaseException) -> str | None:
    """The name of the constraint an IntegrityError violated, as asyncpg reports it."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = getattr(current, "constraint_name", None)
        if isinstance(name, str):
            return name
        current = getattr(current, "orig", None) or current.__cause__
    return None
