"""Schemathesis hooks for the hostile-header pass: every generated request also carries generated
values for the headers the API reads itself (tenant, idempotency key, preconditions, correlation
ids, event cursor), mixed with valid ones so requests still reach the routes' logic.

Loaded by name through ``SCHEMATHESIS_HOOKS``; the tenant of the run comes from ``FUZZ_TENANT``.
Values are what HTTP allows in a field value (visible ASCII, space, tab, and bytes 0x80-0xFF):
other control characters are refused by the HTTP server before the app runs, with a plain-text
400 the app cannot shape (``test_hostile_input`` covers those).
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

TENANT = os.environ.get("FUZZ_TENANT", "fuzz")
READ_BY_THE_APP = (
    "x-tenant-id",
    "Idempotency-Key",
    "If-Match",
    "Correlation-Id",
    "X-Correlation-Id",
    "Last-Event-ID",
)

_field_char = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
    st.characters(min_codepoint=0x80, max_codepoint=0xFF),
    st.just("\t"),
)
# A client strips (or refuses) leading whitespace, so the value would not arrive as drawn.
_text = st.text(_field_char, max_size=300).map(lambda s: s.lstrip(" \t\x85\xa0"))
_value = st.one_of(
    _text,
    st.sampled_from(["", "*", '"abc"', 'W/"x"', "0", "-1", "null", "../../etc/passwd", "' OR 1=1 --"]),
    st.integers(min_value=1, max_value=20_000).map(lambda n: "x" * n),
)
_tenant = st.one_of(st.just(TENANT), _value)


@st.composite
def _hostile(draw: Any) -> dict[str, str]:
    headers = {"x-tenant-id": draw(_tenant)}
    for name in READ_BY_THE_APP[1:]:
        if draw(st.booleans()):
            headers[name] = draw(_value)
    return headers


def _with(case: Any, headers: dict[str, str]) -> Any:
    if case.headers is None:
        case.headers = {}
    case.headers.update(headers)
    return case


@schemathesis.hook
def flatmap_case(context: Any, case: Any) -> Any:
    return _hostile().map(lambda headers: _with(case, headers))
