"""Builders for trigger tests, all through the public API."""

from __future__ import annotations

import uuid
from typing import Any

from tests.support.api import Api
from tests.support.runs import GRAPH


async def published_script(api: Api, graph: dict[str, Any] | None = None) -> str:
    """A script whose version 1 (the run-test graph by default) is its active version."""
    script = await api.create_script()
    await api.create_version(script["id"], graph if graph is not None else GRAPH)
    await api.publish(script["id"], 1)
    return script["id"]


async def draft_script(api: Api) -> str:
    """A script with a version but no active (published) version."""
    script = await api.create_script()
    await api.create_version(script["id"], GRAPH)
    return script["id"]


async def event_type(api: Api, name: str | None = None) -> str:
    name = name or f"EVT_{uuid.uuid4().hex[:10].upper()}"
    response = await api.post("/event-types", json={"name": name})
    assert response.status_code == 201, response.text
    return name


async def subscribe(
    api: Api, subject: str, event_name: str, script_id: str, *, internal: bool = False
) -> dict[str, Any]:
    prefix = "/internal" if internal else ""
    response = await api.post(
        f"{prefix}/subjects/{subject}/subscriptions/triggers",
        json={"eventName": event_name, "scriptId": script_id},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def post_event(api: Api, event_name: str, subject: str, **body: Any) -> dict[str, Any]:
    response = await api.post("/events", json={"eventName": event_name, "subject": subject, **body})
    assert response.status_code == 202, response.text
    return response.json()


async def runs_of(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/runs", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]
