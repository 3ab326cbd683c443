"""rooms and participants (sessions)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rooms",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("owner_user_id", sa.String(64), nullable=False),
        sa.Column("start_time", TS, nullable=False),
        sa.Column("end_time", TS, nullable=True),
        sa.Column("close_reason", sa.String(32), nullable=True),
    )
    op.create_index("ix_rooms_app_room", "rooms", ["app_id", "room_id"])
    # At most one running instance of a room.
    op.create_index(
        "uq_rooms_running",
        "rooms",
        ["app_id", "room_id"],
        unique=True,
        postgresql_where=sa.text("state = 'RUNNING'"),
    )
    op.create_table(
        "participants",
        sa.Column("session_id", sa.String(32), primary_key=True),
        sa.Column("room_uid", sa.String(32), sa.ForeignKey("rooms.id", ondelete="CASCADE"), nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("room_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("user_name", sa.Text, nullable=False, server_default=""),
        sa.Column("role", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("resume_token_hash", sa.String(64), nullable=False),
        sa.Column("signature_expires_at", sa.BigInteger, nullable=False),
        sa.Column("top_n", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("joined_at", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("disconnected_at", TS, nullable=True),
        sa.Column("left_at", TS, nullable=True),
        sa.Column("leave_reason", sa.Integer, nullable=True),
    )
    op.create_index("ix_participants_room", "participants", ["room_uid"])
    op.create_index("ix_participants_user", "participants", ["app_id", "user_id"])
    op.create_index("ix_participants_resume", "participants", ["resume_token_hash"])
    op.create_index(
        "ix_participants_online", "participants", ["state"], postgresql_where=sa.text("state = 'ONLINE'")
    )


def downgrade() -> None:
    op.drop_table("participants")
    op.drop_index("uq_rooms_running", table_name="rooms")
    op.drop_index("ix_rooms_app_room", table_name="rooms")
    op.drop_table("rooms")
