"""Base types for the JSON edge: camelCase structs and millisecond UTC timestamps."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable
from functools import cache, partial
from typing import Annotated, Any, ClassVar, Self

import msgspec
from litestar.openapi.spec.enums import OpenAPIFormat
from litestar.params import KwargDefinition

__all__ = [
    "CamelStruct",
    "Out",
    "TenantClaim",
    "TenantResourceOut",
    "Timestamp",
    "TimestampOrNone",
    "timestamp",
    "timestamp_or_none",
]


class CamelStruct(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Request and response bodies: snake_case in Python, camelCase on the wire."""


# The tenantId a body may carry; it must equal x-tenant-id (403 TENANT_MISMATCH otherwise).
TenantClaim = Annotated[str, msgspec.Meta(max_length=64)]

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


class Out(CamelStruct):
    """A response body built from a stored row (an ORM object, an asyncpg record, a mapping) by
    field name: ``XOut.of(row)``. Timestamp fields are formatted; ``converters`` names any other
    field that needs a conversion; keyword arguments give fields the row does not hold.

    By hand because msgspec encodes datetimes natively (microseconds, no enc_hook), and the wire
    wants exactly three fraction digits; one plan per class is computed once.
    """

    converters: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    @classmethod
    def of(cls, row: Any, /, *, prefix: str = "", **values: Any) -> Self:
        get = row.__getitem__ if hasattr(row, "keys") else partial(getattr, row)
        for name, convert in _plan(cls):
            if name not in values:
                value = get(prefix + name)
                values[name] = value if convert is None else convert(value)
        return cls(**values)


class TenantResourceOut(Out):
    """A tenant's stored resource: every such answer starts with its ``id`` and ``tenantId``."""

    id: uuid.UUID
    tenant_id: str


@cache
def _plan(cls: type[Out]) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    plan = []
    for field in msgspec.structs.fields(cls):
        convert = cls.converters.get(field.name)
        if convert is None and field.type == Timestamp:
            convert = timestamp
        elif convert is None and field.type == TimestampOrNone:
            convert = timestamp_or_none
        plan.append((field.name, convert))
    return tuple(plan)
