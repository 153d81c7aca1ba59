"""Route declarations by kind of operation: each kind fixes its method, its success status and
the error answers that come with it, so a controller states only what is its own (summary,
description, path, and any error the kind does not imply)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from litestar import delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from app.lib.openapi import errors
from app.lib.rate_limit import RATE_LIMIT_OPT

__all__ = [
    "accept_route",
    "action_route",
    "create_route",
    "delete_route",
    "list_route",
    "read_route",
    "served_as",
    "update_route",
]

# Any tenant-scoped route can meet bad input (400), a missing or invalid token (401), and a
# tenant or role the caller is not granted (403).
EVERY_ROUTE = (400, 401, 403)
NOT_FOUND = 404
CONFLICT = 409
BODY_TOO_LARGE = 413
RATE_LIMITED = 429

Codes = dict[int, list[tuple[str, str]]]
P = ParamSpec("P")
R = TypeVar("R")


def _answers(
    implied: Iterable[int], also: Iterable[int], codes: Codes | None = None
) -> dict[int, ResponseSpec]:
    return errors(*sorted({*EVERY_ROUTE, *implied, *also}), codes=codes)


def create_route(
    summary: str, description: str | None = None, *, path: str = "/", also: Iterable[int] = (), **options: Any
) -> post:
    """POST that creates something: 201; its body may be too large (413) or collide with what
    exists (409)."""
    return post(
        path,
        status_code=HTTP_201_CREATED,
        summary=summary,
        description=description,
        responses=_answers((CONFLICT, BODY_TOO_LARGE), also),
        **options,
    )


def accept_route(summary: str, description: str, *, rate_limit: str, also: Iterable[int] = ()) -> post:
    """POST that takes work to be done later: 202; rate-limited per tenant in the ``rate_limit``
    bucket (429), and its body may be too large (413)."""
    return post(
        "/",
        status_code=HTTP_202_ACCEPTED,
        summary=summary,
        description=description,
        responses=_answers((BODY_TOO_LARGE, RATE_LIMITED), also),
        opt={RATE_LIMIT_OPT: rate_limit},
    )


def action_route(
    path: str,
    summary: str,
    description: str,
    *,
    also: Iterable[int] = (),
    codes: Codes | None = None,
    **options: Any,
) -> post:
    """POST that acts on something that exists: 200; it may be unknown (404) or in a state that
    forbids the action (409)."""
    return post(
        path,
        status_code=HTTP_200_OK,
        summary=summary,
        description=description,
        responses=_answers((NOT_FOUND, CONFLICT), also, codes),
        **options,
    )


def list_route(
    summary: str, description: str, *, path: str = "/", also: Iterable[int] = (), **options: Any
) -> get:
    """GET of a page of a list (``app.lib.pagination``); ``also=(404,)`` for the list of
    something named in the path."""
    return get(path, summary=summary, description=description, responses=_answers((), also), **options)


def read_route(path: str, summary: str, description: str | None = None, **options: Any) -> get:
    """GET of one thing named in the path, which may be unknown (404)."""
    return get(
        path, summary=summary, description=description, responses=_answers((NOT_FOUND,), ()), **options
    )


def update_route(
    path: str, summary: str, description: str, *, also: Iterable[int] = (), **options: Any
) -> patch:
    """PATCH of one thing named in the path: it may be unknown (404), the body too large (413)."""
    return patch(
        path,
        summary=summary,
        description=description,
        responses=_answers((NOT_FOUND, BODY_TOO_LARGE), also),
        **options,
    )


def delete_route(path: str, summary: str, description: str) -> delete:
    """DELETE of one thing named in the path: 204, or 404 when it is unknown."""
    return delete(
        path,
        status_code=HTTP_204_NO_CONTENT,
        summary=summary,
        description=description,
        responses=_answers((NOT_FOUND,), ()),
    )


def served_as(name: str, handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """``handler`` under another name, for a second route that answers alike: the API
    description names each operation after its handler function."""

    @functools.wraps(handler)
    async def served(*args: P.args, **kwargs: P.kwargs) -> R:
        return await handler(*args, **kwargs)

    served.__name__ = served.__qualname__ = name
    return served
