"""Durable state: SQLAlchemy models, the engine, migrations and repositories."""
