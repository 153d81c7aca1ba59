"""Scripts, their immutable versions, publishing and the audit trail."""
