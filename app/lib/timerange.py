"""Time-window query parameters: ``from`` (inclusive) and ``to`` (exclusive), RFC 3339 times.

The values are parsed here rather than as ``datetime`` parameters because Litestar accepts
times without an offset (whose meaning would depend on the server's zone) and Unix numbers,
and names the Python parameter, not ``from``/``to``, in its validation errors.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from advanced_alchemy.filters import BeforeAfter, OnBeforeAfter, StatementFilter
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import QueryParameter

from app.lib.errors import ValidationFailed

__all__ = ["TimeWindow", "parse_rfc3339", "provide_time_window"]

_AWARE = Annotated[datetime.datetime, msgspec.Meta(tz=True)]
_FORMAT_HINT = "must be an RFC 3339 date-time with a UTC offset, e.g. 2026-01-01T00:00:00.000Z"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """``since <= t < until``; either side may be open (None)."""

    since: datetime.datetime | None = None
    until: datetime.datetime | None = None

    def filters(self, field_name: str) -> list[StatementFilter]:
        """The window as advanced-alchemy filters on ``field_name`` (none when it is unbounded)."""
        filters: list[StatementFilter] = []
        if self.since is not None:
            filters.append(OnBeforeAfter(field_name=field_name, on_or_before=None, on_or_after=self.since))
        if self.until is not None:
            filters.append(BeforeAfter(field_name=field_name, before=self.until, after=None))
        return filters


def parse_rfc3339(value: str, *, field: str) -> datetime.datetime:
    """An offset-carrying RFC 3339 time, in UTC; anything else is a 400 naming ``field``."""
    try:
        return msgspec.convert(value, _AWARE).astimezone(datetime.UTC)
    except (msgspec.ValidationError, OverflowError):
        raise ValidationFailed(
            f"Invalid {field}: {_FORMAT_HINT}.",
            details=[{"field": field, "message": _FORMAT_HINT, "source": "query"}],
        ) from None


def _bound(name: str, description: str) -> Any:
    """The query parameter of one side of the window: a string, parsed by ``parse_rfc3339``."""
    return Annotated[
        str | None,
        QueryParameter(name=name, format=OpenAPIFormat.DATE_TIME, max_length=64, description=description),
    ]


_Since = _bound("from", "Inclusive lower bound, RFC 3339 with a UTC offset (e.g. 2026-01-01T00:00:00.000Z).")
_Until = _bound("to", "Exclusive upper bound, RFC 3339 with a UTC offset; must not be before `from`.")


async def provide_time_window(since: _Since = None, until: _Until = None) -> TimeWindow:
    window = TimeWindow(
        since=parse_rfc3339(since, field="from") if since is not None else None,
        until=parse_rfc3339(until, field="to") if until is not None else None,
    )
    if window.since is not None and window.until is not None and window.since > window.until:
        raise ValidationFailed(
            "Invalid from: must not be after to.",
            details=[{"field": "from", "message": "must not be after to", "source": "query"}],
        )
    return window
