"""Runtime settings: command-line flags over environment variables over defaults.

One dataclass so that the server, the CLI subcommands and the tests read the same
names; the README's configuration table documents each field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


@dataclass(slots=True)
class ApiToken:
    token: str
    project_id: str | None  # None: an admin token that names its project with X-Project-Id


def parse_api_tokens(raw: str | None) -> list[ApiToken]:
    """``KINDLING_API_TOKENS="tok1:projectid,tok2"``: comma-separated tokens, each
    optionally bound to one project."""
    tokens: list[ApiToken] = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        token, _, project = item.partition(":")
        tokens.append(ApiToken(token=token.strip(), project_id=project.strip() or None))
    return tokens


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_host: str | None = None
    data_dir: Path = Path(".kindling")
    database_url: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    master_key: str | None = None
    api_tokens: list[ApiToken] = field(default_factory=list)
    seed_access_key: str | None = None
    seed_secret_key: str | None = None
    seed_project_id: str | None = None
    # Media plane
    workers: int = 0
    worker_secret: str | None = None
    media_host: str = "127.0.0.1"
    video_slots: int = 4
    audio_slots: int = 4
    # REST
    rest_throttle: bool = True
    max_apps_per_project: int = 20
    auth_clock_skew_s: int = 15 * 60
    max_body_bytes: int = 12 * 1024 * 1024
    # Signalling and rooms (room-rules.md OQ-01, OQ-28)
    heartbeat_interval_s: float = 5.0
    disconnect_after_s: float = 15.0
    keepalive_s: float = 60.0
    max_senders_per_room: int = 500
    max_rooms_per_user: int = 4
    ws_max_message_bytes: int = 64 * 1024
    ws_rate_per_s: float = 10.0
    ws_burst: int = 20
    signature_clock_skew_s: int = 300
    signature_max_validity_s: int = 43200

    def public_domain(self) -> str:
        """The host name apps are reported under (``App.domain`` = ``<app_id>.<this>``)."""
        if self.public_host:
            return self.public_host
        if self.host in ("0.0.0.0", "::", ""):
            import socket

            return socket.getfqdn()
        return f"rtc.{self.host}"

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        s = cls(
            host=os.environ.get("KINDLING_HOST", "127.0.0.1"),
            port=_env_int("KINDLING_PORT", 8080),
            public_host=os.environ.get("KINDLING_PUBLIC_HOST") or None,
            data_dir=Path(os.environ.get("KINDLING_DATA_DIR", ".kindling")),
            database_url=os.environ.get("KINDLING_DATABASE_URL") or None,
            tls_cert=os.environ.get("KINDLING_TLS_CERT") or None,
            tls_key=os.environ.get("KINDLING_TLS_KEY") or None,
            master_key=os.environ.get("KINDLING_MASTER_KEY") or None,
            api_tokens=parse_api_tokens(os.environ.get("KINDLING_API_TOKENS")),
            seed_access_key=os.environ.get("KINDLING_ACCESS_KEY") or None,
            seed_secret_key=os.environ.get("KINDLING_SECRET_KEY") or None,
            seed_project_id=os.environ.get("KINDLING_PROJECT_ID") or None,
            workers=_env_int("KINDLING_WORKERS", os.cpu_count() or 1),
            worker_secret=os.environ.get("KINDLING_WORKER_SECRET") or None,
            media_host=os.environ.get("KINDLING_MEDIA_HOST", "127.0.0.1"),
            video_slots=_env_int("KINDLING_VIDEO_SLOTS", 4),
            audio_slots=_env_int("KINDLING_AUDIO_SLOTS", 4),
            rest_throttle=_env_bool("KINDLING_REST_THROTTLE", True),
            max_apps_per_project=_env_int("KINDLING_MAX_APPS_PER_PROJECT", 20),
            heartbeat_interval_s=_env_float("KINDLING_HEARTBEAT_INTERVAL", 5.0),
            disconnect_after_s=_env_float("KINDLING_DISCONNECT_AFTER", 15.0),
            keepalive_s=_env_float("KINDLING_KEEPALIVE", 60.0),
            max_senders_per_room=_env_int("KINDLING_MAX_SENDERS_PER_ROOM", 500),
            ws_rate_per_s=_env_float("KINDLING_WS_RATE", 10.0),
            ws_burst=_env_int("KINDLING_WS_BURST", 20),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(s, key, value)
        if isinstance(s.data_dir, str):
            s.data_dir = Path(s.data_dir)
        return s
