"""How a /hooks request is read: which paths are routes, which headers are secrets, bodies."""

from __future__ import annotations

import pytest

from app.domain.endpoints.services import is_secret_header, request_body_value, resolve_route
from app.lib.errors import ValidationFailed


@pytest.mark.parametrize(
    ("route", "raw_path", "expected"),
    [
        ("/crm/lead", "/hooks/t1/crm/lead", "crm/lead"),
        ("/crm/lead-2_x", "/hooks/t1/crm/lead-2_x", "crm/lead-2_x"),
        ("/crm/lead", "/hooks/t1/crm//lead", None),  # the router collapsed '//'
        ("/crm/lead", "/hooks/t1/x/../crm/lead", None),  # ... and resolved '..'
        ("/x/../lead", "/hooks/t1/x/%2e%2e/lead", None),
        ("/crm/lead", "/hooks/t1/crm%2Flead", None),
        ("/crm/lead", "/hooks/t1/crm/lead/", None),
        ("/Crm", "/hooks/t1/Crm", None),
        ("/.hidden", "/hooks/t1/.hidden", None),
    ],
)
def test_only_plain_registered_route_forms_resolve(route: str, raw_path: str, expected: str | None) -> None:
    assert resolve_route("t1", route, raw_path) == expected


def test_a_bad_tenant_resolves_nothing() -> None:
    assert resolve_route("bad tenant", "/crm", "/hooks/bad%20tenant/crm") is None


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "proxy-authorization",
        "Cookie",
        "set-cookie",
        "X-Api-Key",
        "x-auth-token",
        "X-Hub-Signature-256",
        "X-Client-Secret",
        "x-db-password",
        "X-Session-Id",
        "Idempotency-Key",
        "X-Amz-Security-Token",
        "X-Credentials",
    ],
)
def test_secret_headers(name: str) -> None:
    assert is_secret_header(name)


@pytest.mark.parametrize("name", ["Content-Type", "User-Agent", "X-Request-Id", "Accept", "X-Forwarded-For"])
def test_ordinary_headers(name: str) -> None:
    assert not is_secret_header(name)


def test_bodies() -> None:
    assert request_body_value(b"", "application/json") is None
    assert request_body_value(b'{"a": [1]}', "application/json; charset=utf-8") == {"a": [1]}
    assert request_body_value(b'{"a": 1}', "application/vnd.api+json") == {"a": 1}
    assert request_body_value(b"a=1&a=2&b=", "application/x-www-form-urlencoded") == {
        "a": ["1", "2"],
        "b": "",
    }
    assert request_body_value(b"plain \xff", "text/plain") == "plain \ufffd"
    with pytest.raises(ValidationFailed):
        request_body_value(b"{", "application/json")
