"""What starts runs besides a person: event types, trigger subscriptions, incoming events,
schedules and custom endpoints (lifecycle hooks and the scheduler run in ``app.worker``)."""
