"""Exceptions of every origin become the error shape with the right status."""

from __future__ import annotations

import asyncpg

from app.lib.errors import describe


def test_a_refused_driver_connection_is_unavailable() -> None:
    status, code, _message, _details, headers = describe(
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down")
    )

    assert (status, code) == (503, "UNAVAILABLE")
    assert headers == {"Retry-After": "1"}


def test_an_unknown_error_is_internal_and_says_nothing_more() -> None:
    status, code, message, details, _headers = describe(RuntimeError("SELECT secret"))

    assert (status, code) == (500, "INTERNAL_ERROR")
    assert "secret" not in message
    assert details is None
