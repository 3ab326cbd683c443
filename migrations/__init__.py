"""Alembic migrations: the one owner of Kindling's schema."""
