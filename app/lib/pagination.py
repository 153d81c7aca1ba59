"""Keyset pagination: ``limit`` + opaque ``cursor`` in, ``{items, nextCursor}`` out.

advanced-alchemy ships offset pagination only (``LimitOffset``) and Litestar's cursor paginator
has a different response shape, so the keyset part is written here, as an advanced-alchemy
``StatementFilter`` so repositories apply it like any other filter. Rows are ordered newest first
with the id as tie-break; the cursor is the sort key of the last row of the page, so page 10,000
costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from advanced_alchemy.filters import StatementFilter
from litestar.params import QueryParameter
from sqlalchemy import Select, tuple_

from app.lib.errors import ValidationFailed

__all__ = ["Keyset", "Page", "PageParams", "build_page", "provide_page_params"]

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(msgspec.Struct, Generic[T]):
    items: list[T]
    nextCursor: str | None


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None


async def provide_page_params(
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_LIMIT, description="Page size (1-200).")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        QueryParameter(description="Opaque cursor from the previous page's nextCursor.", max_length=512),
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {"t": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((kind, raw),) = value.items()
        if kind == "t" and isinstance(raw, str):
            parsed = datetime.datetime.fromisoformat(raw)
            if parsed.tzinfo is None:
                raise ValueError("naive time")
            return parsed
        if kind == "u" and isinstance(raw, str):
            return uuid.UUID(raw)
        raise ValueError("unknown cursor value")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("unsupported cursor value")
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    raw = msgspec.json.encode([_encode_value(v) for v in values])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, arity: int) -> tuple[Any, ...]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii"))
        values = msgspec.json.decode(raw)
        if not isinstance(values, list) or len(values) != arity:
            raise ValueError("wrong arity")
        return tuple(_decode_value(v) for v in values)
    except (ValueError, TypeError, binascii.Error, msgspec.DecodeError, UnicodeError):
        raise ValidationFailed(
            "The cursor is not valid; pass nextCursor from a previous page unchanged.",
            details=[{"field": "cursor", "message": "malformed cursor", "source": "query"}],
        ) from None


@dataclass
class Keyset(StatementFilter):
    """Newest-first keyset page over ``columns`` (all descending, the last one unique)."""

    columns: tuple[Any, ...]
    params: PageParams

    def append_to_statement(self, statement: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(statement, Select):
            return statement
        cols = [self._get_instrumented_attr(model, c) for c in self.columns]
        if self.params.cursor is not None:
            after = decode_cursor(self.params.cursor, len(cols))
            if not all(_fits(col, value) for col, value in zip(cols, after, strict=True)):
                raise ValidationFailed(
                    "The cursor does not belong to this list.",
                    details=[{"field": "cursor", "message": "malformed cursor", "source": "query"}],
                )
            statement = statement.where(tuple_(*cols) < tuple_(*after))
        return statement.order_by(*(c.desc() for c in cols)).limit(self.params.limit + 1)


def _fits(column: Any, value: Any) -> bool:
    try:
        expected = column.type.python_type
    except NotImplementedError:
        return True
    return isinstance(value, expected) and not (expected is int and isinstance(value, bool))


def build_page(
    rows: Sequence[Any],
    params: PageParams,
    key: Callable[[Any], Sequence[Any]],
    convert: Callable[[Any], T],
) -> Page[T]:
    """Turn ``limit + 1`` fetched rows into a page and the cursor of the next one."""
    has_more = len(rows) > params.limit
    shown = rows[: params.limit]
    next_cursor = encode_cursor(key(shown[-1])) if has_more and shown else None
    return Page(items=[convert(r) for r in shown], nextCursor=next_cursor)
