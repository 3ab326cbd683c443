"""Time formats of the SparkRTC APIs (rest-api.md §1.5)."""

from __future__ import annotations

from datetime import UTC, datetime

ZERO_TIME = "0001-01-01T00:00:00Z"


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str:
    """``2006-01-02T15:04:05.075Z``; Go's zero time for "not set"."""
    if value is None:
        return ZERO_TIME
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
