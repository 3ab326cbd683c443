"""Counting helpers shared by the agents and the coordinator: a mergeable
log-bucket histogram for latencies, percentiles of raw samples, and per-stream
receive statistics (loss, jitter, freezes, one-way latency from payload trailers)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from loadtest.media import read_trailer

# Histogram buckets: 1 µs .. ~1000 s in steps of 2 % (values in microseconds).
_GROWTH = 1.02
_LOG_GROWTH = math.log(_GROWTH)


def _bucket(us: float) -> int:
    return 0 if us < 1 else int(math.log(us) / _LOG_GROWTH) + 1


def _bucket_value(b: int) -> float:
    return 0.0 if b == 0 else _GROWTH ** (b - 0.5)


class Histogram:
    """Latency histogram in microseconds; relative error ≤ 1 %; merge by adding counts."""

    __slots__ = ("counts", "n", "total", "max")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def reset(self) -> None:
        self.counts = {}
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, us: float) -> None:
        b = _bucket(us)
        self.counts[b] = self.counts.get(b, 0) + 1
        self.n += 1
        self.total += us
        if us > self.max:
            self.max = us

    def merge(self, other: Histogram | dict) -> None:
        if isinstance(other, dict):
            other = Histogram.from_dict(other)
        for b, c in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + c
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)

    def percentile(self, p: float) -> float | None:
        if not self.n:
            return None
        rank = max(1, math.ceil(p / 100.0 * self.n))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return min(_bucket_value(b), self.max)
        return self.max

    def summary_ms(self) -> dict:
        """count, mean, p50/p90/p99, max in milliseconds."""
        if not self.n:
            return {"count": 0}
        return {
            "count": self.n,
            "mean": round(self.total / self.n / 1000, 3),
            "p50": round(self.percentile(50) / 1000, 3),
            "p90": round(self.percentile(90) / 1000, 3),
            "p99": round(self.percentile(99) / 1000, 3),
            "max": round(self.max / 1000, 3),
        }

    def to_dict(self) -> dict:
        return {"c": {str(k): v for k, v in self.counts.items()}, "n": self.n, "t": self.total, "m": self.max}

    @classmethod
    def from_dict(cls, d: dict) -> Histogram:
        h = cls()
        h.counts = {int(k): int(v) for k, v in d.get("c", {}).items()}
        h.n, h.total, h.max = int(d.get("n", 0)), float(d.get("t", 0.0)), float(d.get("m", 0.0))
        return h


def percentiles(values: Iterable[float], ps: tuple[float, ...] = (50, 90, 99), scale: float = 1000.0) -> dict:
    """Nearest-rank percentiles of raw samples, times ``scale`` (default: seconds in,
    milliseconds out)."""
    vals = sorted(values)
    if not vals:
        return {"count": 0}
    out: dict = {"count": len(vals), "mean": round(sum(vals) / len(vals) * scale, 2)}
    for p in ps:
        k = max(0, min(len(vals) - 1, math.ceil(p / 100 * len(vals)) - 1))
        out[f"p{int(p)}"] = round(vals[k] * scale, 2)
    out["max"] = round(vals[-1] * scale, 2)
    out["min"] = round(vals[0] * scale, 2)
    return out


class StreamStats:
    """What one subscriber received of one source (publisher, kind, layer).

    Loss: RFC 3550 A.3 (expected from the extended highest sequence number).
    Jitter: RFC 3550 A.8, reported in ms. Freezes (video): a gap between two
    completed frames (marker packets) longer than max(3 × mean frame interval,
    mean + 150 ms), as in W3C webrtc-stats ``freezeCount``.
    """

    __slots__ = (
        "subscriber", "publisher", "kind", "layer", "clock", "packets", "bytes", "base_seq", "max_seq",
        "first_wall", "last_wall", "_transit", "jitter", "frames", "_last_frame", "_mean_gap", "freezes",
        "freeze_s", "latency", "tick_latency", "decoded", "decoded_size", "bound_at", "room",
    )

    def __init__(self, subscriber: str, publisher: str, kind: str, layer: str | None, clock: int,
                 latency: Histogram, tick_latency: Histogram, room: str | None = None) -> None:
        self.room = room
        self.subscriber, self.publisher, self.kind, self.layer, self.clock = subscriber, publisher, kind, layer, clock
        self.packets = 0
        self.bytes = 0
        self.base_seq = -1
        self.max_seq = -1
        self.first_wall = 0.0
        self.last_wall = 0.0
        self._transit: float | None = None
        self.jitter = 0.0  # in RTP clock units
        self.frames = 0
        self._last_frame = 0.0
        self._mean_gap = 0.0
        self.freezes = 0
        self.freeze_s = 0.0
        self.latency = latency  # shared per kind in the agent (not per stream)
        self.tick_latency = tick_latency
        self.decoded = 0
        self.decoded_size: tuple[int, int] | None = None
        self.bound_at = time.time()

    def on_packet(self, seq: int, rtp_ts: int, marker: int, payload: bytes, header_len: int) -> None:
        now_ns = time.time_ns()
        now = now_ns / 1e9
        self.packets += 1
        self.bytes += len(payload) + header_len
        if self.base_seq < 0:
            self.base_seq = self.max_seq = seq
            self.first_wall = now
        else:
            delta = (seq - self.max_seq) & 0xFFFF
            if delta < 0x8000:
                self.max_seq += delta
        self.last_wall = now
        transit = now * self.clock - rtp_ts
        if self._transit is not None:
            d = abs(transit - self._transit)
            if d < self.clock * 10:  # ignore timestamp jumps (source switch)
                self.jitter += (d - self.jitter) / 16.0
        self._transit = transit
        if self.kind == "video":
            if not marker:
                return
            if self.frames:
                gap = now - self._last_frame
                if self.frames >= 10 and gap > max(3 * self._mean_gap, self._mean_gap + 0.150):
                    self.freezes += 1
                    self.freeze_s += gap
                self._mean_gap += (gap - self._mean_gap) / min(self.frames, 30)
            self.frames += 1
            self._last_frame = now
        sent = read_trailer(payload)
        if sent is not None:
            us = (now_ns - sent) / 1000.0
            self.latency.add(us)
            self.tick_latency.add(us)

    @property
    def expected(self) -> int:
        return 0 if self.base_seq < 0 else self.max_seq - self.base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.packets)

    def adopt(self, publisher: str, kind: str, layer: str | None) -> None:
        """Relabel stats that counted a slot before the client knew what it carries
        (packets can arrive before the subscribe call returns)."""
        self.publisher, self.kind, self.layer = publisher, kind, layer
        self.bound_at = time.time()

    def to_dict(self) -> dict:
        # rates only over at least a second of media (a stream of two packets has no meaningful fps)
        active = self.last_wall - self.first_wall if self.packets > 1 else 0.0
        if active < 1.0:
            active = 0.0
        return {
            "room": self.room,
            "subscriber": self.subscriber,
            "publisher": self.publisher,
            "kind": self.kind,
            "layer": self.layer,
            "packets": self.packets,
            "bytes": self.bytes,
            "expected": self.expected,
            "lost": self.lost,
            "loss_pct": round(100.0 * self.lost / self.expected, 3) if self.expected else 0.0,
            "kbps": round(self.bytes * 8 / active / 1000, 1) if active else 0.0,
            "jitter_ms": round(self.jitter / self.clock * 1000, 3),
            "frames": self.frames,
            "fps": round(self.frames / active, 2) if active and self.kind == "video" else None,
            "freezes": self.freezes,
            "freeze_ms": round(self.freeze_s * 1000, 1),
            "first_packet": self.first_wall or None,
            "last_packet": self.last_wall or None,
            "decoded_frames": self.decoded,
            "decoded_size": list(self.decoded_size) if self.decoded_size else None,
        }
