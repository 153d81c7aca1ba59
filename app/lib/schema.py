"""Base types for the JSON edge: camelCase structs and millisecond UTC timestamps."""

from __future__ import annotations

import datetime
from typing import Annotated

import msgspec
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import KwargDefinition

__all__ = ["CamelStruct", "Timestamp", "TimestampOrNone", "timestamp", "timestamp_or_none"]


class CamelStruct(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Request and response bodies: snake_case in Python, camelCase on the wire."""


# Times go out as RFC 3339 UTC with exactly three fraction digits, e.g. 2026-01-01T12:00:00.000Z.
Timestamp = Annotated[
    str,
    KwargDefinition(format=OpenAPIFormat.DATE_TIME),
]

# ``Timestamp | None`` cannot be written: a union of Annotated types hashes their metadata.
TimestampOrNone = Annotated[
    str | None,
    KwargDefinition(format=OpenAPIFormat.DATE_TIME, examples=[]),
]


def timestamp(value: datetime.datetime) -> str:
    """RFC 3339 in UTC to the millisecond: ``2026-03-01T10:00:00.120Z``."""
    # isoformat is several times faster than strftime; in UTC it always ends in "+00:00".
    return value.astimezone(datetime.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def timestamp_or_none(value: datetime.datetime | None) -> str | None:
    return None if value is None else timestamp(value)
