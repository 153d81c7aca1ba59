"""``Scriptworks-Signature``: how a custom endpoint with a signing secret knows who sent a request.

The scheme webhook senders already know from Stripe: the header is
``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`` (several ``v1`` values are
allowed, for a sender rotating its secret). A request is accepted when one ``v1`` matches
(compared in constant time) and ``t`` is within ``TOLERANCE_SECONDS`` of the server's clock, so a
captured request cannot be replayed later. The standard library's ``hmac`` does the cryptography;
no webhook library covers this exact header, so the parsing is here.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from app.lib.errors import Unauthorized

__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECONDS", "sign", "verify"]

SIGNATURE_HEADER = "Scriptworks-Signature"
TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value a sender computes (also what the docs' example and the tests use)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str | None, body: bytes, *, now: float | None = None) -> None:
    """Raise 401 unless ``header`` signs ``body`` with ``secret`` at a time close to now."""
    if not header:
        raise _refused(f"This endpoint requires a {SIGNATURE_HEADER} header.")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise _refused(f"{SIGNATURE_HEADER} must look like t=<unix seconds>,v1=<hex HMAC-SHA256>.")
    current = time.time() if now is None else now
    if abs(current - timestamp) > TOLERANCE_SECONDS:
        raise _refused(
            f"The {SIGNATURE_HEADER} timestamp is more than {TOLERANCE_SECONDS} s from the server's clock."
        )
    expected = sign(secret, body, timestamp).partition(",v1=")[2]
    if not any(hmac.compare_digest(expected.encode(), c.encode("latin-1", "replace")) for c in candidates):
        raise _refused(f"The {SIGNATURE_HEADER} does not match the body and this endpoint's secret.")


def _refused(message: str) -> Unauthorized:
    return Unauthorized(message, headers={"WWW-Authenticate": "Scriptworks-Signature"})
