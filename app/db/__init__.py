"""Declarative models, one module per table family. Importing this package registers them all."""

from app.db.base import Base, TenantScoped
from app.db.runs import Run, RunStep, RunVariable
from app.db.scripts import AuditEntry, Script, ScriptVersion

__all__ = ["AuditEntry", "Base", "Run", "RunStep", "RunVariable", "Script", "ScriptVersion", "TenantScoped"]
