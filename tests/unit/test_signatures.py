"""``Scriptworks-Signature``: ``sign`` and ``verify`` (format, secret, body, clock tolerance)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from app.domain.endpoints.signatures import SIGNATURE_HEADER, TOLERANCE_SECONDS, sign, verify
from app.lib.errors import Unauthorized

SECRET = "s" * 32
BODY = b'{"lead": {"id": 7}}'
T = 1_700_000_000


def digest(secret: str, body: bytes, timestamp: int) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def refused(header: str | None, body: bytes = BODY, *, now: float = T, secret: str = SECRET) -> Unauthorized:
    with pytest.raises(Unauthorized) as caught:
        verify(secret, header, body, now=now)
    return caught.value


def test_sign_is_t_and_v1_hex_hmac_sha256_of_timestamp_dot_body() -> None:
    assert sign(SECRET, BODY, T) == f"t={T},v1={digest(SECRET, BODY, T)}"


def test_the_header_name_and_tolerance_are_the_documented_ones() -> None:
    assert (SIGNATURE_HEADER, TOLERANCE_SECONDS) == ("Scriptworks-Signature", 300)


def test_a_fresh_signature_is_accepted() -> None:
    verify(SECRET, sign(SECRET, BODY, T), BODY, now=T)


def test_an_empty_body_can_be_signed() -> None:
    verify(SECRET, sign(SECRET, b"", T), b"", now=T)


def test_a_timestamp_exactly_300_s_old_is_accepted() -> None:
    verify(SECRET, sign(SECRET, BODY, T), BODY, now=T + 300)


def test_a_timestamp_exactly_300_s_ahead_is_accepted() -> None:
    verify(SECRET, sign(SECRET, BODY, T), BODY, now=T - 300)


def test_a_timestamp_301_s_old_is_refused() -> None:
    error = refused(sign(SECRET, BODY, T), now=T + 301)

    assert "300" in error.message


def test_a_timestamp_301_s_ahead_is_refused() -> None:
    refused(sign(SECRET, BODY, T), now=T - 301)


def test_a_fraction_of_a_second_past_the_tolerance_is_refused() -> None:
    refused(sign(SECRET, BODY, T), now=T + 300.001)


def test_a_refusal_is_401_unauthorized_with_a_www_authenticate_challenge() -> None:
    error = refused(None)

    assert (error.status_code, error.code) == (401, "UNAUTHORIZED")
    assert error.headers == {"WWW-Authenticate": "Scriptworks-Signature"}


def test_another_secret_is_refused() -> None:
    refused(sign("o" * 32, BODY, T))


def test_another_body_is_refused() -> None:
    refused(sign(SECRET, BODY, T), b'{"lead": {"id": 8}}')


def test_a_signature_moved_to_another_timestamp_is_refused() -> None:
    refused(f"t={T + 1},v1={digest(SECRET, BODY, T)}")


@pytest.mark.parametrize("header", [None, ""], ids=["none", "empty"])
def test_a_missing_header_is_refused(header: str | None) -> None:
    refused(header)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        f"v1={digest(SECRET, BODY, T)}",
        f"t={T}",
        f"t={T},v1=",
        f"t=soon,v1={digest(SECRET, BODY, T)}",
        f"t=-{T},v1={digest(SECRET, BODY, T)}",
        f"t={T}.0,v1={digest(SECRET, BODY, T)}",
        f"t=1{'0' * 12},v1={digest(SECRET, BODY, T)}",
        f"t={T};v1={digest(SECRET, BODY, T)}",
        f"v0={digest(SECRET, BODY, T)},t={T}",
        f"t={T},v1={digest(SECRET, BODY, T)[:-1]}",
    ],
    ids=[
        "garbage",
        "no-t",
        "no-v1",
        "empty-v1",
        "t-not-a-number",
        "t-negative",
        "t-fraction",
        "t-too-long",
        "semicolon",
        "v0-only",
        "truncated-v1",
    ],
)
def test_a_malformed_header_is_refused(header: str) -> None:
    refused(header)


@pytest.mark.parametrize(
    "digit", ["\u00b2", "\u00b9", "\u0663"], ids=["superscript-2", "superscript-1", "arabic-3"]
)
def test_a_non_ascii_digit_timestamp_is_refused_not_a_crash(digit: str) -> None:
    refused(f"t={digit},v1={digest(SECRET, BODY, T)}")


def test_a_non_latin1_v1_is_refused_not_a_crash() -> None:
    refused(f"t={T},v1=\u20ac{digest(SECRET, BODY, T)}")


def test_several_v1_values_are_accepted_when_one_matches() -> None:
    good = digest(SECRET, BODY, T)
    old = digest("o" * 32, BODY, T)

    verify(SECRET, f"t={T},v1={old},v1={good}", BODY, now=T)
    verify(SECRET, f"t={T}, v1={good}, v1={old}", BODY, now=T)
    verify(SECRET, f"v1={good},t={T}", BODY, now=T)


def test_several_v1_values_none_matching_are_refused() -> None:
    refused(f"t={T},v1={digest('o' * 32, BODY, T)},v1={'0' * 64}")


def test_a_v1_for_another_scheme_is_ignored_next_to_a_matching_one() -> None:
    verify(SECRET, f"t={T},v0=abc,v1={digest(SECRET, BODY, T)}", BODY, now=T)
