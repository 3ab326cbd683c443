"""workers and room placement

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("media_host", sa.String(256), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("registered_at", TS, nullable=False),
        sa.Column("last_heartbeat", TS, nullable=False),
        sa.Column("load", sa.JSON, nullable=True),
    )
    op.add_column("rooms", sa.Column("worker_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("rooms", "worker_id")
    op.drop_table("workers")
