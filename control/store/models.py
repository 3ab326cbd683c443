"""SQLAlchemy models: the durable shape of Kindling's state.

Alembic owns the schema (``migrations/``); these classes mirror it for queries.
Secrets (SKs, app keys, callback keys) are stored sealed by ``control.auth.secrets``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Project(Base):
    """A tenant. Owns AK/SK pairs and apps; every REST call acts inside one."""

    __tablename__ = "projects"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Credential(Base):
    __tablename__ = "credentials"

    access_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.project_id", ondelete="CASCADE"), index=True)
    secret_sealed: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(256), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class App(Base):
    __tablename__ = "apps"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.project_id", ondelete="CASCADE"), index=True)
    app_name: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    state_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    scope: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    auth_enable: Mapped[bool] = mapped_column(Boolean, default=True)
    auth_expire: Mapped[int] = mapped_column(Integer, default=300)
    app_key_sealed: Mapped[str] = mapped_column(Text)
    auth_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    record_callback_url: Mapped[str] = mapped_column(Text, default="")
    record_callback_key_sealed: Mapped[str] = mapped_column(Text, default="")
    record_callback_events: Mapped[list | None] = mapped_column(JSON, nullable=True)
    record_callback_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    auto_record_mode: Mapped[str] = mapped_column(String(32), default="AUTO_RECORD_OFF")
    auto_record_rule_id: Mapped[str] = mapped_column(String(64), default="")
    auto_record_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Room(Base):
    """One instance of a room: created by its first join, CLOSED when the last user
    leaves or it is dismissed. A later join of the same room_id makes a new row."""

    __tablename__ = "rooms"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    app_id: Mapped[str] = mapped_column(String(64))
    room_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    owner_user_id: Mapped[str] = mapped_column(String(64))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    close_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Participant(Base):
    """One session of one user in one room instance (a join, until it ends)."""

    __tablename__ = "participants"

    session_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    room_uid: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    app_id: Mapped[str] = mapped_column(String(64))
    room_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    user_name: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    connected: Mapped[bool] = mapped_column(Boolean, default=True)
    resume_token_hash: Mapped[str] = mapped_column(String(64))
    signature_expires_at: Mapped[int] = mapped_column(BigInteger)
    top_n: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    disconnected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    left_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    leave_reason: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Worker(Base):
    """An SFU worker process that registered with the control plane."""

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    media_host: Mapped[str] = mapped_column(String(256))
    capacity: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    load: Mapped[dict | None] = mapped_column(JSON, nullable=True)
