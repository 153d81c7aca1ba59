"""Declarative models, one module per table family. Importing this package registers them all."""

from app.db.base import Base, TenantScoped
from app.db.commands import Command
from app.db.events import Event
from app.db.idempotency import IdempotencyKey
from app.db.operations import ServerSecret, WorkerHeartbeat
from app.db.runs import Run, RunStep, RunVariable
from app.db.scripts import AuditEntry, Script, ScriptVersion
from app.db.triggers import Endpoint, EventType, IncomingEvent, Schedule, TriggerSubscription, WorkerCursor

__all__ = [
    "AuditEntry",
    "Base",
    "Command",
    "Endpoint",
    "Event",
    "EventType",
    "IdempotencyKey",
    "IncomingEvent",
    "Run",
    "RunStep",
    "RunVariable",
    "Schedule",
    "Script",
    "ScriptVersion",
    "ServerSecret",
    "TenantScoped",
    "TriggerSubscription",
    "WorkerCursor",
    "WorkerHeartbeat",
]
