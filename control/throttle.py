"""Token buckets for request throttling.

REST: one bucket per (project, API category), sized by rest-api.md §1.7 (a burst of
the whole per-period allowance, refilled evenly). Signalling: one bucket per
connection (room-rules.md OQ-28). Both are plain arithmetic on a monotonic clock;
no task, no lock (the event loop is single-threaded).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    capacity: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# category -> (requests, period in seconds)
REST_LIMITS: dict[str, tuple[int, float]] = {
    "app": (60, 60.0),
    "record-rule": (60, 60.0),
    "auto-record": (60, 60.0),
    "callback": (60, 60.0),
    "mix-job": (10, 1.0),
    "individual-job": (10, 1.0),
    "room": (60, 60.0),
    "obs": (2, 1.0),
    "statistics": (30, 60.0),
}


def rest_category(path: str) -> str | None:
    """The throttle category of a REST path (None: not a throttled API)."""
    if path.startswith("/v1/"):
        return "statistics"
    if path.startswith("/v2/rtc-ops/"):
        return "obs"
    if not path.startswith("/v2/apps"):
        return None
    parts = path.split("/")
    # /v2/apps/{app_id}/<sub>/...
    sub = parts[4] if len(parts) > 4 else ""
    return {
        "rooms": "room",
        "record-rules": "record-rule",
        "auto-record-mode": "auto-record",
        "record-callback": "callback",
        "mix-stream-jobs": "mix-job",
        "individual-stream-jobs": "individual-job",
    }.get(sub, "app")


class RestThrottle:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def allow(self, project_id: str, category: str) -> bool:
        if not self.enabled:
            return True
        key = (project_id, category)
        bucket = self._buckets.get(key)
        if bucket is None:
            count, period = REST_LIMITS[category]
            bucket = self._buckets[key] = TokenBucket(rate=count / period, capacity=float(count))
        return bucket.take()
