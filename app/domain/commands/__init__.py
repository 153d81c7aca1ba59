"""Commands posted by integration clients: the outbox, its handlers and their results."""
