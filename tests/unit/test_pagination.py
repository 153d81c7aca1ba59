"""Opaque keyset cursors."""

from __future__ import annotations

import datetime
import uuid

import pytest

from app.lib.errors import ValidationFailed
from app.lib.pagination import decode_cursor, encode_cursor


def test_cursor_round_trips_times_ids_and_numbers() -> None:
    values = (datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC), uuid.uuid4(), 42)

    assert decode_cursor(encode_cursor(values), 3) == values


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "W3sidCI6IjIwMjYtMDEtMDEifV0", "W3RydWVd"]
)
def test_malformed_cursors_are_validation_errors(cursor: str) -> None:
    with pytest.raises(ValidationFailed):
        decode_cursor(cursor, 1)
