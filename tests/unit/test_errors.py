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
        asyncpg.exceptions.ProtocolViolationError("unexpected message"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    ],
    ids=["refused", "cut-off", "protocol", "shut-down"],
)
def test_driver_connection_trouble_is_unavailable(error: Exception) -> None:
    answer = as_api_error(error)

    assert (answer.status_code, answer.code) == (503, "UNAVAILABLE")
    assert answer.headers == {"Retry-After": "1"}


def _raised_while_handling(first: Exception, then: Exception) -> Exception:
    try:
        try:
            raise first
        except Exception:
            raise then  # noqa: B904 -- what the test is about: an implicitly chained failure
    except Exception as raised:
        return raised


def test_a_failure_while_cleaning_up_after_a_dropped_connection_is_unavailable() -> None:
    dropped = asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation")

    answer = as_api_error(_raised_while_handling(dropped, RuntimeError("cannot roll back")))

    assert (answer.status_code, answer.code) == (503, "UNAVAILABLE")


def test_a_failure_while_handling_a_client_error_is_still_internal() -> None:
    answer = as_api_error(_raised_while_handling(KeyError("id"), RuntimeError("bug")))

    assert (answer.status_code, answer.code) == (500, "INTERNAL_ERROR")


def test_an_unknown_error_is_internal_and_says_nothing_more() -> None:
    answer = as_api_error(RuntimeError("SELECT secret"))

    assert (answer.status_code, answer.code) == (500, "INTERNAL_ERROR")
    assert "secret" not in answer.message
    assert answer.details is None


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.DeadlockDetectedError("deadlock detected"),
        asyncpg.exceptions.SerializationError("could not serialize access due to concurrent update"),
    ],
    ids=["deadlock", "serialization"],
)
def test_a_transaction_the_server_undid_is_a_retryable_503(error: Exception) -> None:
    answer = as_api_error(error)

    assert (answer.status_code, answer.code) == (503, "UNAVAILABLE")
    assert answer.headers == {"Retry-After": "1"}
    assert "retry" in answer.message
