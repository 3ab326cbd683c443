"""Micro-benchmark of the worker's per-packet path (``sfu.forwarder.Router.on_rtp``)
on synthetic packets, no network: what one forwarded packet costs, and what layer
selection (a pending keyframe-gated switch) and top-N audio ranking add to it.

    python -m loadtest.bench_forwarder

Prints µs per ingress packet (median of 5 runs) with the machine noted.
"""

from __future__ import annotations

import os
import platform
import statistics
import struct
import time

from sfu.downtrack import DownTrack
from sfu.forwarder import Router, Slot

N = 50_000


def rtp(seq: int, ts: int, ssrc: int, pt: int, payload: bytes, ext: bytes = b"") -> bytes:
    first = 0x90 if ext else 0x80
    return struct.pack("!BBHII", first, pt, seq & 0xFFFF, ts, ssrc) + ext + payload


def vp8_payload(size: int, keyframe: bool) -> bytes:
    # descriptor: X=1, S=1, PID=0; I=1 with a 15-bit picture ID; then the VP8 header byte
    desc = bytes([0x90, 0x80, 0x80, 0x01])
    first = 0x00 if keyframe else 0x01  # P bit 0 = keyframe
    return desc + bytes([first]) + bytes(size - len(desc) - 1)


def audio_ext(ext_id: int, level: int) -> bytes:
    # one-byte header extension block with the RFC 6464 element, padded to 4 bytes
    return struct.pack("!HH", 0xBEDE, 1) + bytes([(ext_id << 4) | 0, 0x80 | level, 0, 0])


def make_router(kind: str, fanout: int, *, rank: bool = False, pending: bool = False):
    router = Router()
    router.rank_audio = rank
    noop = lambda data: None  # noqa: E731 - a sink that costs nothing

    src = router.add_source(
        ssrc=1111, kind=kind, session_id="s", stream_type="main", resolution_id="hi",
        codec="vp8" if kind == "video" else "opus", clock_rate=90000 if kind == "video" else 48000,
        request_keyframe_upstream=lambda ssrc: None, request_nack_upstream=lambda ssrc, seqs: None,
        level_ext=1 if kind == "audio" else 0,
    )
    for i in range(fanout):
        slot = Slot(kind=kind, mid=str(i), ssrc=5000 + i)
        slot.downtrack = DownTrack(slot.ssrc, 96, src.clock_rate, kind == "video")
        slot.send = noop
        slot.pending = src
        src.waiting.append(slot)
        router._complete_switches(src)
    if pending:
        other = router.add_source(
            ssrc=2222, kind=kind, session_id="s", stream_type="main", resolution_id="lo", codec="vp8",
            clock_rate=90000, request_keyframe_upstream=lambda ssrc: None,
            request_nack_upstream=lambda ssrc, seqs: None,
        )
        # a slot waiting to switch to `src`: every packet of src is checked for a keyframe
        slot = Slot(kind=kind, mid="p", ssrc=9999)
        slot.downtrack = DownTrack(slot.ssrc, 96, 90000, True)
        slot.send = noop
        router.attach(slot, other)
        router._complete_switches(other)
        slot.pending = src
        src.waiting.append(slot)
    return router


def run(kind: str, fanout: int, **kw) -> float:
    router = make_router(kind, fanout, **kw)
    if kind == "video":
        payload = vp8_payload(1200, keyframe=False)
        packets = [rtp(i, i // 3 * 3000, 1111, 96, payload) for i in range(N)]
    else:
        packets = [rtp(i, i * 960, 1111, 111, bytes(80), audio_ext(1, 30 + i % 20)) for i in range(N)]
    on_rtp = router.on_rtp
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for p in packets:
            on_rtp(p)
        times.append((time.perf_counter() - start) / N * 1e6)
        router = make_router(kind, fanout, **kw)
        on_rtp = router.on_rtp
    return statistics.median(times)


def main() -> None:
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {platform.platform()}")
    rows = [
        ("video 1200 B, fan-out 1", run("video", 1)),
        ("video 1200 B, fan-out 2", run("video", 2)),
        ("video 1200 B, fan-out 2, a layer switch pending", run("video", 2, pending=True)),
        ("video 1200 B, fan-out 20", run("video", 20)),
        ("audio 100 B, fan-out 2", run("audio", 2)),
        ("audio 100 B, fan-out 2, top-N ranking on", run("audio", 2, rank=True)),
    ]
    print("| case | µs per ingress packet |")
    print("|---|---|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")


if __name__ == "__main__":
    main()
