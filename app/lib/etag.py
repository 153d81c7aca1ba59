"""Strong entity tags and the If-Match header (RFC 9110 section 13.1.1)."""

from __future__ import annotations

import hashlib
import re

from app.lib.errors import ValidationFailed

__all__ = ["ANY", "IF_MATCH_PATTERN", "make_etag", "matches", "parse_if_match"]

ANY = "*"
_STRONG = re.compile(r'^"[\x21\x23-\x7e]*"$')
# What parse_if_match accepts, for the OpenAPI document.
IF_MATCH_PATTERN = r'^[ \t]*(\*|"[\x21\x23-\x7e]*"([ \t]*,[ \t]*"[\x21\x23-\x7e]*")*)[ \t]*$'


def make_etag(*parts: object) -> str:
    """A strong ETag (quoted) derived from the values that change whenever the entity does."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=16).hexdigest()
    return f'"{digest}"'


def parse_if_match(header: str) -> list[str]:
    """``*`` or a list of strong tags; weak or malformed values are a 400."""
    value = header.strip(" \t")  # optional whitespace in HTTP is spaces and tabs only
    if value == ANY:
        return [ANY]
    tags = [t.strip(" \t") for t in value.split(",")]
    for tag in tags:
        if tag.startswith("W/"):
            raise _bad("If-Match takes strong entity tags only (no W/ prefix).")
        if not _STRONG.match(tag):
            raise _bad('If-Match must be "*" or quoted entity tags, e.g. If-Match: "3f2a…".')
    return tags


def matches(if_match: list[str], current: str) -> bool:
    return ANY in if_match or current in if_match


def _bad(message: str) -> ValidationFailed:
    return ValidationFailed(message, details=[{"field": "If-Match", "message": message, "source": "header"}])
