"""Time windows: RFC 3339 bounds with an offset, from inclusive, to exclusive."""

from __future__ import annotations

import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.dialects import postgresql

from app.db.scripts import AuditEntry
from app.lib.errors import ValidationFailed
from app.lib.timerange import TimeWindow, parse_rfc3339, provide_time_window

UTC = datetime.UTC


def test_times_are_read_in_utc_whatever_their_offset() -> None:
    parsed = parse_rfc3339("2026-01-01T12:30:00.250+02:00", field="from")

    assert parsed == datetime.datetime(2026, 1, 1, 10, 30, 0, 250_000, tzinfo=UTC)
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", ["2026-01-01T12:00:00", "2026-01-01", "noon", "1767261600", ""])
def test_times_without_offset_or_not_rfc3339_are_rejected_naming_the_field(value: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        parse_rfc3339(value, field="to")

    assert raised.value.details[0]["field"] == "to"


def test_time_that_leaves_the_calendar_in_utc_is_rejected() -> None:
    with pytest.raises(ValidationFailed):
        parse_rfc3339("0001-01-01T00:00:00+01:00", field="from")


async def test_window_from_equal_to_is_empty_but_valid_and_from_after_to_is_rejected() -> None:
    same = await provide_time_window("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
    assert same.since == same.until

    with pytest.raises(ValidationFailed) as raised:
        await provide_time_window("2026-01-01T00:00:00.001Z", "2026-01-01T00:00:00Z")
    assert raised.value.details == [{"field": "from", "message": "must not be after to", "source": "query"}]


def test_window_filters_are_inclusive_below_and_exclusive_above() -> None:
    since = datetime.datetime(2026, 1, 1, tzinfo=UTC)
    until = datetime.datetime(2026, 2, 1, tzinfo=UTC)
    statement = select(AuditEntry.id)
    for window_filter in TimeWindow(since, until).filters("created_at"):
        statement = window_filter.append_to_statement(statement, AuditEntry)

    sql = str(statement.compile(dialect=postgresql.dialect()))

    assert "audit_log.created_at >= %(created_at_1)s" in sql
    assert "audit_log.created_at < %(created_at_2)s" in sql


def test_open_window_adds_no_filter() -> None:
    assert TimeWindow().filters("created_at") == []
