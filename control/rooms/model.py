"""Live room state, held in memory by the control plane (written through to
PostgreSQL by ``persistence``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

JOINER = 0
PLAYER = 2
ROLES = (JOINER, PLAYER)
SENDER_ROLES = (JOINER,)

MAX_PENDING_EVENTS = 2000


class Outbox(Protocol):
    """The signalling connection of a member, as the room logic sees it."""

    def push(self, message: str) -> None: ...

    def close(self) -> None: ...


@dataclass(eq=False, slots=True)
class Stream:
    """A published stream: a user's camera ("main") or presentation ("auxiliary")."""

    stream_id: str
    type: str
    audio: bool
    video: list[dict]  # [{resolutionId, width, height, frameRate, bitrate}]
    audio_muted: bool = False
    video_muted: bool = False
    audio_profile: dict | None = None  # {sampleRate, channelCount, bitrate} as the publisher described it

    def resolution_ids(self) -> list[str]:
        return [v["resolutionId"] for v in self.video]

    def highest(self) -> str | None:
        if not self.video:
            return None
        return max(self.video, key=lambda v: (v["width"] * v["height"], v.get("bitrate", 0)))["resolutionId"]


@dataclass(eq=False, slots=True)
class Member:
    session_id: str
    room: Room
    user_id: str
    user_name: str
    role: int
    resume_hash: str
    sig_expiry: int
    top_n: bool
    joined_at: float
    last_seen: float
    conn: Outbox | None = None
    disconnected_at: float | None = None
    sig_expired_notified: bool = False
    pending: list[str] = field(default_factory=list)
    streams: dict[str, Stream] = field(default_factory=dict)  # by type
    # (publisher user id, stream type) -> (audio, resolution ids)
    subscriptions: dict[tuple[str, str], tuple[bool, tuple[str, ...]]] = field(default_factory=dict)
    subscriber_ready: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.room.app_id, self.user_id)

    def send(self, message: str) -> None:
        """Deliver now, or keep it for a reconnection within the keepalive window."""
        if self.conn is not None:
            self.conn.push(message)
        else:
            if len(self.pending) >= MAX_PENDING_EVENTS:
                del self.pending[0]
            self.pending.append(message)


@dataclass(eq=False, slots=True)
class Room:
    uid: str
    app_id: str
    room_id: str
    owner: str
    start_time: float
    members: dict[str, Member] = field(default_factory=dict)
    worker_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.app_id, self.room_id)

    def sender_count(self) -> int:
        return sum(1 for m in self.members.values() if m.role in SENDER_ROLES)
