"""Persistence: SQLAlchemy models, the append-only audit log, state tables, the outbox."""
