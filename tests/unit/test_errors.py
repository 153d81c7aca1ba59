"""Exceptions of every origin become the error shape with the right status."""

from __future__ import annotations

import asyncpg
import pytest

from app.lib.error_handler import as_api_error


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        # a pooled connection cut off mid-statement by a restarting server
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
    ],
    ids=["refused", "cut-off"],
)
def test_driver_connection_trouble_is_unavailable(error: Exception) -> None:
    answer = as_api_error(error)

    assert (answer.status_code, answer.code) == (503, "UNAVAILABLE")
    assert answer.headers == {"Retry-After": "1"}


def test_an_unknown_error_is_internal_and_says_nothing_more() -> None:
    answer = as_api_error(RuntimeError("SELECT secret"))

    assert (answer.status_code, answer.code) == (500, "INTERNAL_ERROR")
    assert "secret" not in answer.message
    assert answer.details is None
