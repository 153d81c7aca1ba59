"""Application assembly: the app factory, database wiring, embedded PostgreSQL and lifespan."""
