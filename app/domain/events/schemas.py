"""What ``GET /events/stream`` sends: the event JSON, the payloads of the events this product
writes itself, and the frames around them.

``EventOut`` and ``StreamNotice`` encode the frames' ``data``; the payload structs encode the
lifecycle events written from Python and describe those written in SQL (tests hold both to
them). The ``…Frame`` structs exist for the OpenAPI document only: an SSE frame is text, and
each struct names its fields (``id:``, ``event:``, ``data:``) with what the ``data`` JSON holds.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from app.lib.openapi_structs import json_text
from app.lib.schema import Timestamp

__all__ = [
    "LIFECYCLE_PAYLOADS",
    "CommandFailedEvent",
    "CommandFailurePayload",
    "CompletionEvent",
    "EventFrame",
    "EventOut",
    "PingFrame",
    "ResyncFrame",
    "RunFinishedEvent",
    "RunFinishedPayload",
    "RunStartedEvent",
    "RunStartedPayload",
    "ScriptArchivedEvent",
    "ScriptArchivedPayload",
    "ScriptCreatedEvent",
    "ScriptCreatedPayload",
    "ScriptPublishedEvent",
    "ScriptPublishedPayload",
    "ShutdownFrame",
    "StreamFrame",
    "StreamNotice",
    "VersionCreatedEvent",
    "VersionCreatedPayload",
]

EventId = Annotated[
    str, msgspec.Meta(pattern="^[0-9]{1,19}$", description="The event id, for Last-Event-ID.")
]


class EventOut(msgspec.Struct, rename="camel"):
    """The JSON of one stored event, as SSE ``data:`` carries it."""

    id: int
    event: str
    correlation_id: str | None
    tenant_id: str
    success: bool
    payload: Any
    occurred_at: Timestamp


class StreamNotice(msgspec.Struct):
    """Why the server sent a ``resync`` or ``shutdown`` frame."""

    reason: str


# Lifecycle payloads (camelCase on the wire; ids are UUID strings).
class _Payload(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    pass


class ScriptCreatedPayload(_Payload):
    script_id: str
    slug: str
    name: str
    actor_id: str


class ScriptArchivedPayload(_Payload):
    script_id: str
    actor_id: str


class VersionCreatedPayload(_Payload):
    script_id: str
    version_id: str
    version: int
    actor_id: str


class ScriptPublishedPayload(_Payload):
    """``rollback`` is true when an older version than the active one was published."""

    script_id: str
    version_id: str
    version: int
    rollback: bool
    actor_id: str


class RunStartedPayload(_Payload):
    run_id: str
    script_id: str
    version: int
    trigger_type: Literal["API_RUN", "SCHEDULED_TASK", "EVENT_TRIGGER", "ENDPOINT_REQUEST", "LIFECYCLE_HOOK"]


class RunFinishedPayload(_Payload):
    run_id: str
    script_id: str
    version: int
    status: Literal["SUCCEEDED", "FAILED", "CANCELLED"]


class CommandFailurePayload(_Payload):
    """A command's failure (its attempts used up) or cancellation (``error: "cancelled"``)."""

    command: str
    error: str
    attempts: int


LIFECYCLE_PAYLOADS: dict[str, type[_Payload]] = {
    "Script.Created": ScriptCreatedPayload,
    "Script.Archived": ScriptArchivedPayload,
    "Version.Created": VersionCreatedPayload,
    "Script.Published": ScriptPublishedPayload,
    "Run.Started": RunStartedPayload,
    "Run.Finished": RunFinishedPayload,
}


# The event JSON of each kind of event, for the document: EventOut with its event and payload.
class ScriptCreatedEvent(EventOut):
    event: Literal["Script.Created"]
    success: Literal[True]
    payload: ScriptCreatedPayload


class ScriptArchivedEvent(EventOut):
    event: Literal["Script.Archived"]
    success: Literal[True]
    payload: ScriptArchivedPayload


class VersionCreatedEvent(EventOut):
    event: Literal["Version.Created"]
    success: Literal[True]
    payload: VersionCreatedPayload


class ScriptPublishedEvent(EventOut):
    event: Literal["Script.Published"]
    success: Literal[True]
    payload: ScriptPublishedPayload


class RunStartedEvent(EventOut):
    event: Literal["Run.Started"]
    success: Literal[True]
    payload: RunStartedPayload


class RunFinishedEvent(EventOut):
    event: Literal["Run.Finished"]
    success: Literal[True]
    payload: RunFinishedPayload


class CompletionEvent(EventOut):
    """A command's completion: the name and payload come from its handler, e.g.
    ``Contacts.Upserted.v1`` with ``{contacts: [{role, contactId}]}``, or
    ``<Domain>.<Verb>Completed.v1`` echoing the command's payload."""

    success: Literal[True]
    payload: dict[str, Any]


class CommandFailedEvent(EventOut):
    """A command's failure or cancellation, under the name its completion would have had."""

    success: Literal[False]
    payload: CommandFailurePayload


StoredEvent = (
    ScriptCreatedEvent
    | ScriptArchivedEvent
    | VersionCreatedEvent
    | ScriptPublishedEvent
    | RunStartedEvent
    | RunFinishedEvent
    | CompletionEvent
    | CommandFailedEvent
)


class EventFrame(msgspec.Struct):
    """A stored event: replayed after the cursor, then live."""

    id: EventId
    event: str
    data: Annotated[str, json_text(StoredEvent, "The event's JSON.")]


class PingFrame(msgspec.Struct):
    """Every SSE_PING_SECONDS: the server's time (plain text, not JSON)."""

    event: Literal["ping"]
    data: Timestamp


class ResyncFrame(msgspec.Struct):
    """The cursor is older than the retained history: the replay of everything retained follows."""

    event: Literal["resync"]
    data: Annotated[str, json_text(StreamNotice, "Why, as JSON.")]


class ShutdownFrame(msgspec.Struct):
    """The server is shutting down; the stream ends after it. Reconnect with Last-Event-ID."""

    event: Literal["shutdown"]
    data: Annotated[str, json_text(StreamNotice, "Why, as JSON.")]


StreamFrame = EventFrame | PingFrame | ResyncFrame | ShutdownFrame


LIFECYCLE_EVENTS = (
    "Script.Created",
    "Script.Published",
    "Script.Archived",
    "Version.Created",
    "Run.Started",
    "Run.Finished",
)
