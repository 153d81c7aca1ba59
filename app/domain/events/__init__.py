"""The event store, the in-process hub that fans events out, and the SSE stream."""
