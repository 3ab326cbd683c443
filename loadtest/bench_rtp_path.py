"""Micro-benchmark of the per-packet primitives (sfu.rtp, sfu.downtrack,
sfu.nack_cache, sfu.rtcp): µs per operation, median of several timeit repeats.

    python -m loadtest.bench_rtp_path [--number N] [--repeat R]

The numbers are what one core spends per packet in pure Python; compare with
notes/aiortc-sfu.md §5a (aiortc ``RtpPacket.parse`` 1.5–3.3 µs, parse+rewrite+
serialize 5.5 µs, raw copy+pack_into 0.42 µs). The machine is printed first
because these figures move by 2x between a laptop and a shared VM.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import struct
import sys
import timeit
from collections.abc import Callable

from sfu.downtrack import DownTrack
from sfu.nack_cache import PacketCache
from sfu.rtcp import ReceiveStats, build_nack, iter_packets, parse_nack
from sfu.rtp import audio_level, find_extension, h264_is_keyframe, parse, vp8_is_keyframe

PAYLOAD_SIZE = 1200


def _rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, ext: bytes = b"", marker: bool = False) -> bytes:
    b0 = 0x90 if ext else 0x80
    head = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    if ext:
        head += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    return head + payload


def _packets() -> dict[str, bytes]:
    # mid (id 1, "0") + abs-send-time (id 3) as a browser/aiortc sends them, padded to 8 bytes.
    video_ext = bytes([0x10, ord("0"), 0x32, 0x12, 0x34, 0x56, 0, 0])
    # mid (id 1) + ssrc-audio-level (id 2, V=1, level 30), padded to 4 bytes.
    audio_ext = bytes([0x10, ord("0"), 0x20, 0x80 | 30])
    vp8_delta = bytes([0x90, 0x80, 0x80 | 0x12, 0x34, 0x31, 0x00, 0x00]) + bytes(PAYLOAD_SIZE - 7)
    return {
        "video": _rtp(96, 1000, 90000, 0x1234, vp8_delta, video_ext),
        "audio": _rtp(111, 1000, 48000, 0x5678, bytes(80), audio_ext),
    }


def _cpu_model() -> str:
    """CPU model name on Linux (``platform.processor()`` is often empty there)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _measure(stmt: Callable[[], object], number: int, repeat: int) -> float:
    times = timeit.repeat(stmt, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=200_000, help="calls per repeat")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    print(
        f"machine: {platform.platform()} | {platform.machine()} | {_cpu_model()} | "
        f"cpus={os.cpu_count()} | Python {sys.version.split()[0]} ({platform.python_implementation()})"
    )
    pk = _packets()
    video, audio = pk["video"], pk["audio"]
    _pt, _seq, _ts, _ssrc, _m, v_start, v_end = parse(video)  # type: ignore[misc]

    # rewrite: 4096 packets whose sequence numbers step by 16, so cycling through them wraps
    # the 16-bit space exactly and every call takes the in-order path; a new frame every 4
    # packets (like 1 Mbit/s video); a fixed wall clock (``now_ms``), or none, in which case
    # DownTrack reads time.monotonic() once per new frame.
    v_ext, v_payload = video[16:v_start], video[v_start:]
    frames = [_rtp(96, k * 16, 90000 + (k // 4) * 3000, 0x1234, v_payload, v_ext) for k in range(4096)]
    audio_frames = [_rtp(111, k * 16, k * 960, 0x5678, bytes(80), audio[16:20]) for k in range(4096)]
    dt = DownTrack(0xCAFE, 100, 90000, True)
    dt.switch_to(1)
    dt_audio = DownTrack(0xBEEF, 111, 48000, False)
    dt_audio.switch_to(2)
    it = iter(range(1 << 62))
    it_a = iter(range(1 << 62))

    def rewrite() -> object:
        return dt.rewrite(frames[next(it) & 4095], 1, 0.0)

    dt_clock = DownTrack(0xCAFE, 100, 90000, True)
    dt_clock.switch_to(1)
    it_c2 = iter(range(1 << 62))

    def rewrite_clock() -> object:
        return dt_clock.rewrite(frames[next(it_c2) & 4095], 1)

    def rewrite_audio() -> object:
        return dt_audio.rewrite(audio_frames[next(it_a) & 4095], 2, 0.0)

    def step() -> object:  # the loop overhead included above, to subtract
        return frames[next(it) & 4095]

    cache = PacketCache(512)
    for s in range(512):
        cache.put(s, video)
    it_c = iter(range(1 << 62))

    def cache_put() -> None:
        cache.put(next(it_c) & 0xFFFF, video)

    stats = ReceiveStats(0x1234, 90000)
    it_s = iter(range(1 << 62))

    def stats_add() -> object:
        n = next(it_s)
        return stats.add(n & 0xFFFF, (n // 4 * 3000) & 0xFFFFFFFF, n * 0.001)

    # NACK path: map back through source_for, fetch from the source cache, rewrite.
    source_cache = PacketCache(1 << 16)
    for k, frame in enumerate(frames):
        source_cache.put((k * 16) & 0xFFFF, frame)

    def nack_one() -> object:  # the newest packet sent (after the rewrite rows ran); includes that lookup
        out_seq = dt.last_out_seq
        found = dt.source_for(out_seq)
        return dt.rewrite_retransmit(source_cache.get(found[1]), out_seq) if found else None

    h264_fu = video[:v_start] + b"\x7c\x85" + bytes(PAYLOAD_SIZE)

    nack = build_nack(1, 2, [65530, 65531, 65535, 0, 3, 40, 41])
    nack_len = len(nack)

    def baseline_copy() -> object:
        out = bytearray(video)
        struct.pack_into("!HII", out, 2, 1, 2, 3)
        return bytes(out)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("parse (video, 2 one-byte ext)", lambda: parse(video)),
        ("find_extension (abs-send-time)", lambda: find_extension(video, 3)),
        ("audio_level", lambda: audio_level(audio, 2)),
        ("vp8_is_keyframe (delta)", lambda: vp8_is_keyframe(video, v_start, v_end)),
        ("h264_is_keyframe (FU-A start)", lambda: h264_is_keyframe(h264_fu, v_start, len(h264_fu))),
        ("DownTrack.rewrite VP8 1200 B, ext stripped, picture ID", rewrite),
        ("DownTrack.rewrite VP8 as above, no now_ms", rewrite_clock),
        ("DownTrack.rewrite audio 80 B, ext stripped", rewrite_audio),
        ("(loop overhead inside the rewrite rows)", step),
        ("baseline: bytearray copy + pack_into + bytes()", baseline_copy),
        ("PacketCache.put", cache_put),
        ("PacketCache.get (hit)", lambda: cache.get(100)),
        ("ReceiveStats.add (in order)", stats_add),
        ("NACK answer: source_for + cache.get + rewrite_retransmit", nack_one),
        ("parse_nack (7 seqs, 3 FCI)", lambda: parse_nack(nack, 0, nack_len)),
        ("iter_packets + parse_nack", lambda: [parse_nack(nack, o, n) for _t, _f, o, n in iter_packets(nack)]),
    ]
    width = max(len(name) for name, _ in cases)
    print(f"{'operation':<{width}}  µs/op (median of {args.repeat} x {args.number})")
    for name, fn in cases:
        # Warm up, and refuse to time a path that drops the packet: it would look fast.
        if fn() is None and fn in (rewrite, rewrite_clock, rewrite_audio, nack_one):
            raise SystemExit(f"{name}: packet dropped")
        print(f"{name:<{width}}  {_measure(fn, args.number, args.repeat):6.3f}")


if __name__ == "__main__":
    main()
