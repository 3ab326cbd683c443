"""projects, credentials and apps

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "credentials",
        sa.Column("access_key", sa.String(64), primary_key=True),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.project_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("secret_sealed", sa.Text, nullable=False),
        sa.Column("description", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
    )
    op.create_table(
        "apps",
        sa.Column("app_id", sa.String(64), primary_key=True),
        sa.Column(
            "project_id",
            sa.String(64),
            sa.ForeignKey("projects.project_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("app_name", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_updated_at", TS, nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("domain", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("auth_enable", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("auth_expire", sa.Integer, nullable=False, server_default="300"),
        sa.Column("app_key_sealed", sa.Text, nullable=False),
        sa.Column("auth_updated_at", TS, nullable=False),
        sa.Column("record_callback_url", sa.Text, nullable=False, server_default=""),
        sa.Column("record_callback_key_sealed", sa.Text, nullable=False, server_default=""),
        sa.Column("record_callback_events", sa.JSON, nullable=True),
        sa.Column("record_callback_updated_at", TS, nullable=True),
        sa.Column("auto_record_mode", sa.String(32), nullable=False, server_default="AUTO_RECORD_OFF"),
        sa.Column("auto_record_rule_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("auto_record_updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
    )
    # App names are unique per project among apps that are not deleted.
    op.create_index(
        "uq_apps_project_name_live",
        "apps",
        ["project_id", "app_name"],
        unique=True,
        postgresql_where=sa.text("state <> 'DELETED'"),
    )


def downgrade() -> None:
    op.drop_index("uq_apps_project_name_live", table_name="apps")
    op.drop_table("apps")
    op.drop_table("credentials")
    op.drop_table("projects")
