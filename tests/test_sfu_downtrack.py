"""sfu.downtrack.DownTrack: SSRC/PT/seq/ts rewriting, extension stripping, wrap
handling, continuity across source switches (including VP8 picture IDs), NACK
mapping and retransmission, on synthetic packets, aiortc-serialized packets and
real VP8 output of aiortc's encoder (decoded again with libvpx)."""

from __future__ import annotations

import fractions
import struct

import av
from aiortc.codecs import CODECS, get_encoder
from aiortc.codecs.vpx import VpxPayloadDescriptor, vp8_depayload
from aiortc.rtp import RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.downtrack import DownTrack
from sfu.nack_cache import PacketCache
from sfu.rtp import parse, vp8_is_keyframe, vp8_picture_id, vp8_tl0picidx
from tests.test_sfu_rtp import aiortc_packet, raw_packet

OUT_SSRC, OUT_PT = 0xCAFEBABE, 100
A, B, C = 1, 2, 3  # source ids


def pkt(
    seq: int,
    ts: int,
    payload: bytes = b"payload-bytes",
    *,
    ssrc: int = 0x1111,
    pt: int = 96,
    marker: bool = False,
    csrc: tuple[int, ...] = (),
    ext: bool = True,
    padding: int = 0,
) -> bytes:
    """A source packet with a one-byte extension block (mid + abs-send-time) unless ext=False."""
    ext_data = bytes([0x10, ord("0"), 0x32, 1, 2, 3, 0, 0]) if ext else b""
    return raw_packet(
        payload,
        pt=pt,
        seq=seq & 0xFFFF,
        ts=ts & 0xFFFFFFFF,
        ssrc=ssrc,
        marker=marker,
        csrc=csrc,
        ext_profile=0xBEDE if ext else None,
        ext_data=ext_data,
        padding=padding,
    )


def vp8(
    pid: int | None = None, *, bits: int = 15, tl0: int | None = None, start: bool = True, key: bool = False
) -> bytes:
    """A VP8 payload: descriptor (X=1 when a picture ID or TL0PICIDX is present) + a
    3-byte frame tag (+ key frame start code) + filler."""
    d0 = 0x10 if start else 0x00
    x = 0
    ids = b""
    if pid is not None:
        x |= 0x80
        ids += struct.pack("!H", 0x8000 | pid) if bits == 15 else bytes([pid & 0x7F])
    if tl0 is not None:
        x |= 0x40
        ids += bytes([tl0])
    desc = bytes([d0 | 0x80, x]) + ids if x else bytes([d0])
    tag = b"\x00\x00\x00\x9d\x01\x2a" if key else b"\x01\x00\x00"
    return desc + tag + bytes(range(20))


def new_track(video: bool = False, **kw) -> DownTrack:
    return DownTrack(OUT_SSRC, OUT_PT, 90000 if video else 48000, video, **kw)


def fields(out: bytes) -> tuple[int, int]:
    p = parse(out)
    assert p is not None
    return p[1], p[2]


def out_pid(out: bytes) -> int:
    p = parse(out)
    start = p[5]
    descriptor, _ = VpxPayloadDescriptor.parse(out[start : p[6]])
    return descriptor.picture_id


# ---------------------------------------------------------------------- basic rewrite


def test_rewrite_replaces_ids_strips_extensions_keeps_the_rest():
    data = aiortc_packet(
        b"opus-frame", pt=111, seq=500, ts=96000, ssrc=0x1234, marker=1, csrc=(7, 8), mid="0", level=(True, 9)
    )
    dt = new_track()
    dt.switch_to(A)
    out = dt.rewrite(data, A, now_ms=0.0)
    assert out[0] & 0x10 == 0  # X cleared
    ref = RtpPacket.parse(out)
    assert (ref.ssrc, ref.payload_type, ref.marker) == (OUT_SSRC, OUT_PT, 1)
    assert (ref.sequence_number, ref.timestamp) == (500, 96000)  # the first source keeps its numbering
    assert ref.csrc == [7, 8]
    assert ref.payload == b"opus-frame"
    assert len(out) == 12 + 8 + len(b"opus-frame")
    assert (dt.packets, dt.bytes, dt.last_out_seq, dt.last_out_ts) == (1, 10, 500, 96000)


def test_rewrite_keeps_padding():
    data = pkt(10, 20, b"abc", padding=9)
    dt = new_track()
    dt.switch_to(A)
    out = dt.rewrite(data, A, 0.0)
    ref = RtpPacket.parse(out)
    assert ref.padding_size == 9 and ref.payload == b"abc"
    assert out[-9:] == data[-9:]
    assert dt.bytes == 3  # payload octets only, as the SR counts them


def test_rewrite_without_extension_and_marker_clear():
    dt = new_track()
    dt.switch_to(A)
    out = dt.rewrite(pkt(1, 2, b"x", ext=False), A, 0.0)
    assert out == struct.pack("!BBHII", 0x80, OUT_PT, 1, 2, OUT_SSRC) + b"x"


def test_rewrite_accepts_bytearray_and_memoryview():
    outs = []
    for wrap in (bytes, bytearray, memoryview):
        dt = new_track(video=True)
        dt.switch_to(A)
        dt.rewrite(wrap(pkt(1, 0, vp8(9))), A, 0.0)
        dt.switch_to(B)
        outs.append((dt.rewrite(wrap(pkt(50, 0, vp8(70, tl0=1), csrc=(4,))), B, 5.0), dt.rewrite(wrap(pkt(51, 0)), B)))
        assert type(outs[-1][0]) is bytes
    assert outs[0] == outs[1] == outs[2]


def test_initial_numbering_can_be_fixed():
    dt = new_track(initial_seq=65535, initial_ts=0xFFFFFFFF)
    dt.switch_to(A)
    assert fields(dt.rewrite(pkt(100, 1000), A, 0.0)) == (65535, 0xFFFFFFFF)
    assert fields(dt.rewrite(pkt(101, 1960), A, 20.0)) == (0, 959)


def test_drops_until_switched_and_other_sources():
    dt = new_track()
    assert dt.rewrite(pkt(1, 1), A, 0.0) is None
    dt.switch_to(A)
    assert dt.rewrite(pkt(1, 1), B, 0.0) is None
    assert dt.rewrite(pkt(1, 1), A, 0.0) is not None
    assert dt.rewrite(pkt(2, 1), B, 0.0) is None
    assert dt.packets == 1


def test_malformed_packets_are_dropped_not_raised():
    dt = new_track(video=True)
    dt.switch_to(A)
    for bad in (b"", b"\x80" * 5, b"\x40" + bytes(20), b"\x90" + bytes(11) + b"\xbe\xde\x00\x09", b"\xa0" + bytes(11)):
        assert dt.rewrite(bad, A, 0.0) is None
    assert dt.source_id is None  # a malformed packet does not start a segment
    assert dt.rewrite(pkt(5, 5, vp8(3)), A, 0.0) is not None


def test_sequence_and_timestamp_wrap_inside_a_source():
    dt = new_track(initial_seq=65533, initial_ts=0xFFFFF000)
    dt.switch_to(A)
    outs = [fields(dt.rewrite(pkt(s, 1000 + 960 * i), A, 20.0 * i)) for i, s in enumerate(range(40000, 40006))]
    assert [s for s, _ in outs] == [65533, 65534, 65535, 0, 1, 2]
    assert [t for _, t in outs] == [(0xFFFFF000 + 960 * i) & 0xFFFFFFFF for i in range(6)]
    # and a source that wraps by itself
    dt = new_track()
    dt.switch_to(A)
    outs = [fields(dt.rewrite(pkt(s, 0xFFFFFC40 + 960 * i), A, 20.0 * i)) for i, s in enumerate((65534, 65535, 0, 1))]
    assert outs == [(65534, 0xFFFFFC40), (65535, 0), (0, 960), (1, 1920)]
    assert dt.last_out_seq == 1


def test_reordering_duplicates_and_late_retransmissions_keep_the_mapping():
    dt = new_track(initial_seq=1000)
    dt.switch_to(A)
    order = [10, 12, 11, 13, 13, 15, 14, 9]  # 9 came before the first forwarded packet
    outs = [dt.rewrite(pkt(s, s * 960), A, 0.0) for s in order]
    assert [fields(o)[0] if o else None for o in outs] == [1000, 1002, 1001, 1003, 1003, 1005, 1004, None]
    assert dt.last_out_seq == 1005
    assert dt.last_out_ts == 15 * 960


# ---------------------------------------------------------------------- switching


def test_switch_continues_seq_and_ts_from_elapsed_time():
    dt = new_track(video=True)
    dt.switch_to(A)
    for i in range(5):
        dt.rewrite(pkt(100 + i, 9000 + 3000 * i, vp8(None)), A, now_ms=1000.0 + 33.3 * i)
    last_seq, last_ts = dt.last_out_seq, dt.last_out_ts
    dt.switch_to(B)
    assert dt.rewrite(pkt(105, 9000 + 3000 * 5, vp8(None)), A, 1166.5) is not None  # the old source still flows
    # B's keyframe arrives 50 ms after the last timestamp change of A: 4500 ticks at 90 kHz.
    out = dt.rewrite(pkt(40000, 777, vp8(None), ssrc=0x2222), B, now_ms=1166.5 + 50.0)
    assert fields(out) == (last_seq + 2, last_ts + 3000 + 4500)
    assert dt.source_id == B and dt.pending_id is None
    assert dt.rewrite(pkt(106, 9000 + 3000 * 6, vp8(None)), A, 1250.0) is None  # the old source is cut off
    assert fields(dt.rewrite(pkt(40001, 777 + 3000, vp8(None)), B, 1250.0)) == (last_seq + 3, last_ts + 7500 + 3000)
    assert dt.rewrite(pkt(39999, 777 - 3000, vp8(None)), B, 1250.0) is None  # B from before the switch point


def test_switch_minimum_timestamp_gap():
    audio = new_track()
    audio.switch_to(A)
    audio.rewrite(pkt(1, 48000), A, now_ms=0.0)
    audio.switch_to(B)
    out = audio.rewrite(pkt(5000, 5), B, now_ms=3.0)  # 3 ms later: would overlap the 20 ms frame
    assert fields(out) == (2, 48000 + 960)
    video = new_track(video=True)
    video.switch_to(A)
    video.rewrite(pkt(1, 90000), A, now_ms=0.0)
    video.switch_to(B)
    assert fields(video.rewrite(pkt(5000, 5), B, now_ms=0.0)) == (2, 90001)
    custom = new_track(min_ts_gap=3000)
    custom.switch_to(A)
    custom.rewrite(pkt(1, 0), A, now_ms=0.0)
    custom.switch_to(B)
    assert fields(custom.rewrite(pkt(9, 9), B, now_ms=1.0)) == (2, 3000)


def test_switch_uses_monotonic_clock_without_now(monkeypatch):
    clock = iter([10.0, 10.02, 10.5])  # read at: the first packet, the new timestamp, the switch
    monkeypatch.setattr("sfu.downtrack._monotonic", lambda: next(clock))
    dt = new_track()
    dt.switch_to(A)
    dt.rewrite(pkt(1, 0), A)
    dt.rewrite(pkt(2, 960), A)  # new timestamp at 10.02 s
    dt.switch_to(B)
    assert fields(dt.rewrite(pkt(70, 123456), B)) == (3, 960 + 48000 * 48 // 100)  # 480 ms later


def test_switch_across_the_sequence_wrap():
    dt = new_track(initial_seq=65534)
    dt.switch_to(A)
    dt.rewrite(pkt(10, 0), A, 0.0)
    dt.rewrite(pkt(11, 960), A, 20.0)
    dt.switch_to(B)
    assert fields(dt.rewrite(pkt(300, 0), B, 40.0))[0] == 0
    assert fields(dt.rewrite(pkt(301, 960), B, 60.0))[0] == 1


def test_switch_to_current_cancels_pending_and_switch_back_rebases():
    dt = new_track()
    dt.switch_to(A)
    dt.rewrite(pkt(10, 0), A, 0.0)
    dt.switch_to(B)
    dt.switch_to(A)
    assert dt.pending_id is None
    assert dt.rewrite(pkt(500, 0), B, 20.0) is None
    dt.switch_to(B)
    dt.rewrite(pkt(500, 0), B, 20.0)
    dt.switch_to(A)  # back to A: A is a new segment again, continuous with B
    assert fields(dt.rewrite(pkt(11, 960), A, 40.0)) == (12, 960 + 960)


def test_switch_without_any_packet_of_the_old_source():
    dt = new_track()
    dt.switch_to(A)
    dt.switch_to(B)  # changed its mind before A sent anything
    assert dt.rewrite(pkt(1, 1), A, 0.0) is None
    assert fields(dt.rewrite(pkt(7, 70), B, 0.0)) == (7, 70)


# ---------------------------------------------------------------------- VP8 picture ID / TL0PICIDX


def test_vp8_picture_id_continuity_15_bit_with_wrap():
    dt = new_track(video=True)
    dt.switch_to(A)
    seq = 0
    for i, pid in enumerate((32766, 32767, 0)):  # A wraps by itself
        for part in range(2):
            out = dt.rewrite(pkt(seq, 3000 * i, vp8(pid, start=part == 0)), A, 33.0 * i)
            seq += 1
            assert out_pid(out) == pid
    dt.switch_to(B)
    got = []
    for i, pid in enumerate((1234, 1235, 1236)):
        out = dt.rewrite(pkt(900 + i, 3000 * i, vp8(pid, key=i == 0)), B, 100.0 + 33.0 * i)
        got.append(out_pid(out))
    assert got == [1, 2, 3]
    assert dt.last_out_picture_id == 3
    # a reordered B packet of the first frame keeps its frame's ID
    assert out_pid(dt.rewrite(pkt(901, 3000, vp8(1235, start=False)), B, 200.0)) == 2
    dt.switch_to(A)
    assert out_pid(dt.rewrite(pkt(seq, 9000, vp8(5, key=True)), A, 250.0)) == 4


def test_vp8_picture_id_7_bit_rewritten_in_place_mod_128():
    dt = new_track(video=True)
    dt.switch_to(A)
    dt.rewrite(pkt(1, 0, vp8(500)), A, 0.0)  # 15-bit ID 500
    dt.switch_to(B)
    outs = [dt.rewrite(pkt(70 + i, 3000 * i, vp8(pid, bits=7)), B, 40.0 + i) for i, pid in enumerate((126, 127, 0))]
    assert [len(o) for o in outs] == [12 + len(vp8(1, bits=7))] * 3  # same size: rewritten in place
    assert [out_pid(o) for o in outs] == [501 % 128, 502 % 128, 503 % 128]
    dt.switch_to(A)
    assert dt.last_out_picture_id == 503  # counted on through the 7-bit source's wrap
    assert out_pid(dt.rewrite(pkt(2, 3000, vp8(501)), A, 100.0)) == 504


def test_vp8_tl0picidx_continuity():
    dt = new_track(video=True)
    dt.switch_to(A)
    dt.rewrite(pkt(1, 0, vp8(10, tl0=254)), A, 0.0)
    dt.rewrite(pkt(2, 3000, vp8(11, tl0=255)), A, 33.0)
    dt.switch_to(B)
    out = dt.rewrite(pkt(50, 0, vp8(700, tl0=17, key=True)), B, 66.0)
    descriptor, _ = VpxPayloadDescriptor.parse(out[12:])
    assert (descriptor.picture_id, descriptor.tl0picidx) == (12, 0)
    out = dt.rewrite(pkt(51, 3000, vp8(701, tl0=18)), B, 99.0)
    descriptor, _ = VpxPayloadDescriptor.parse(out[12:])
    assert (descriptor.picture_id, descriptor.tl0picidx) == (13, 1)
    # TL0PICIDX without a picture ID (general path)
    dt.switch_to(C)
    out = dt.rewrite(pkt(9, 0, vp8(None, tl0=99)), C, 130.0)
    descriptor, _ = VpxPayloadDescriptor.parse(out[12:])
    assert (descriptor.picture_id, descriptor.tl0picidx) == (None, 2)
    assert dt.last_out_picture_id == 13


def test_vp8_with_csrcs_and_padding_takes_the_general_path_consistently():
    dt = new_track(video=True)
    dt.switch_to(A)
    dt.rewrite(pkt(1, 0, vp8(100)), A, 0.0)
    dt.switch_to(B)
    out = dt.rewrite(pkt(7, 0, vp8(9000, tl0=3), csrc=(5,), padding=5), B, 40.0)
    ref = RtpPacket.parse(out)
    assert ref.csrc == [5] and ref.padding_size == 5
    descriptor, rest = VpxPayloadDescriptor.parse(ref.payload)
    assert (descriptor.picture_id, descriptor.tl0picidx) == (101, 3)
    assert rest == vp8(9000, tl0=3)[5:]


def test_non_vp8_track_leaves_payload_alone():
    dt = DownTrack(OUT_SSRC, OUT_PT, 90000, False)
    dt.switch_to(A)
    payload = vp8(1234)
    dt.rewrite(pkt(1, 0, vp8(5)), A, 0.0)
    dt.switch_to(B)
    assert RtpPacket.parse(dt.rewrite(pkt(9, 0, payload), B, 10.0)).payload == payload


def _encode(
    count: int, keyframes: tuple[int, ...], size: tuple[int, int] = (160, 120)
) -> list[tuple[int, list[bytes]]]:
    codec = next(c for c in CODECS["video"] if c.mimeType == "video/VP8")
    encoder = get_encoder(codec)
    out = []
    for i in range(count):
        frame = av.VideoFrame(width=size[0], height=size[1])
        for p, plane in enumerate(frame.planes):
            plane.update(bytes(((i * 5 + j * (p + 1)) * 13 + j // 11) & 0xFF for j in range(plane.buffer_size)))
        frame.pts = i * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        payloads, ts = encoder.encode(frame, force_keyframe=i in keyframes)
        out.append((ts, payloads))
    return out


def test_real_vp8_stream_switch_decodes_and_ids_are_continuous():
    """Two aiortc VP8 encoders (random picture IDs, random seq/ts) as two sources; the
    subscriber gets A's first frames, then B from its keyframe on, and libvpx decodes
    every frame of the rewritten stream."""
    a = _encode(3, keyframes=(0,))
    b = _encode(5, keyframes=(0, 3))
    dt = new_track(video=True)
    dt.switch_to(A)
    sent: list[bytes] = []
    seq_a, seq_b = 30000, 65500
    now = 0.0
    for ts, payloads in a:
        for i, payload in enumerate(payloads):
            sent.append(
                dt.rewrite(
                    aiortc_packet(payload, seq=seq_a, ts=ts + 12345, mid="0", marker=i == len(payloads) - 1), A, now
                )
            )
            seq_a += 1
        now += 33.0
    for n, (ts, payloads) in enumerate(b):
        for i, payload in enumerate(payloads):
            data = aiortc_packet(payload, seq=seq_b & 0xFFFF, ts=ts + 99, mid="0", marker=i == len(payloads) - 1)
            seq_b += 1
            p = parse(data)
            if dt.pending_id is None and dt.source_id == A and n == 3 and vp8_is_keyframe(data, p[5], p[6]):
                dt.switch_to(B)
            out = dt.rewrite(data, B, now)
            if n >= 3:
                assert out is not None
                sent.append(out)
            else:
                assert out is None
        now += 33.0
    parsed = [RtpPacket.parse(o) for o in sent]
    seqs = [p.sequence_number for p in parsed]
    assert all((s2 - s1) & 0xFFFF == 1 for s1, s2 in zip(seqs, seqs[1:], strict=False))
    assert all(p.ssrc == OUT_SSRC and p.payload_type == OUT_PT for p in parsed)
    # group into frames by timestamp, depayload and decode
    frames: list[tuple[int, int, bytes]] = []
    for p in parsed:
        descriptor, _ = VpxPayloadDescriptor.parse(p.payload)
        if frames and frames[-1][0] == p.timestamp:
            frames[-1] = (p.timestamp, frames[-1][1], frames[-1][2] + vp8_depayload(p.payload))
        else:
            frames.append((p.timestamp, descriptor.picture_id, vp8_depayload(p.payload)))
    assert len(frames) == 3 + 2
    tss = [f[0] for f in frames]
    assert all(0 < (t2 - t1) & 0xFFFFFFFF < 0x80000000 for t1, t2 in zip(tss, tss[1:], strict=False))
    pids = [f[1] for f in frames]
    assert [(p - pids[0]) & 0x7FFF for p in pids] == [0, 1, 2, 3, 4]
    decoder = av.CodecContext.create("libvpx", "r")
    decoded = [frame for _ts, _pid, data in frames for frame in decoder.decode(av.Packet(data))]
    assert len(decoded) == 5 and all(f.width == 160 for f in decoded)


# ---------------------------------------------------------------------- NACK mapping and retransmission


def test_source_for_and_retransmit_across_switches():
    cache_a, cache_b = PacketCache(), PacketCache()
    dt = new_track(video=True, initial_seq=65530)
    dt.switch_to(A)
    sent: dict[int, bytes] = {}
    for i in range(5):
        data = pkt(200 + i, 3000 * i, vp8(10 + i))
        cache_a.put(200 + i, data)
        out = dt.rewrite(data, A, 33.0 * i)
        sent[fields(out)[0]] = out
    dt.switch_to(B)
    for i in range(5):
        data = pkt(9000 + i, 500 + 3000 * i, vp8(77 + i, tl0=4), csrc=(1,) if i == 2 else ())
        cache_b.put(9000 + i, data)
        out = dt.rewrite(data, B, 200.0 + 33.0 * i)
        sent[fields(out)[0]] = out
    assert sorted(sent) == [0, 1, 2, 3, 65530, 65531, 65532, 65533, 65534, 65535]
    caches = {A: cache_a, B: cache_b}
    for out_seq, original in sent.items():
        source, seq = dt.source_for(out_seq)
        again = dt.rewrite_retransmit(caches[source].get(seq), out_seq)
        assert again == original, out_seq
    assert dt.source_for(65530) == (A, 200)
    assert dt.source_for(65535) == (B, 9000)
    assert dt.source_for(3) == (B, 9004)
    assert dt.source_for(4) is None  # not sent yet
    assert dt.source_for(30000) is None
    assert dt.retransmits == len(sent)
    assert dt.packets == 2 * len(sent)
    # a cache slot holding another packet must never go out under this number
    assert dt.rewrite_retransmit(pkt(201, 0, vp8(1)), 65530) is None
    assert dt.rewrite_retransmit(b"\x80garbage", 65530) is None


def test_source_for_forgets_old_segments():
    dt = new_track(max_segments=3)
    for source in range(1, 6):
        dt.switch_to(source)
        dt.rewrite(pkt(100 * source, 0), source, 20.0 * source)
    assert [dt.source_for(s) for s in range(dt.last_out_seq - 4, dt.last_out_seq + 1)] == [
        None,
        None,
        (3, 300),
        (4, 400),
        (5, 500),
    ]


def test_nothing_sent_nothing_mapped():
    dt = new_track()
    assert dt.source_for(0) is None
    assert dt.rewrite_retransmit(pkt(0, 0), 0) is None


# ---------------------------------------------------------------------- properties

vp8_descriptors = st.one_of(
    st.binary(max_size=8),
    st.builds(
        lambda pid, bits, tl0, start, key: vp8(pid, bits=bits, tl0=tl0, start=start, key=key),
        st.one_of(st.none(), st.integers(0, 0x7FFF)),
        st.sampled_from([7, 15]),
        st.one_of(st.none(), st.integers(0, 255)),
        st.booleans(),
        st.booleans(),
    ),
)


@st.composite
def source_packets(draw) -> bytes:
    payload = draw(vp8_descriptors)
    csrc = tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=3)))
    profile = draw(st.sampled_from([None, 0xBEDE, 0x1000, 0x1234]))
    ext = draw(st.binary(max_size=12)) if profile is not None else b""
    ext += bytes(-len(ext) % 4)
    return raw_packet(
        payload,
        pt=draw(st.integers(0, 127)),
        seq=draw(st.integers(0, 0xFFFF)),
        ts=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=draw(st.integers(0, 0xFFFFFFFF)),
        marker=draw(st.booleans()),
        csrc=csrc,
        ext_profile=profile,
        ext_data=ext,
        padding=draw(st.integers(0, 12)),
    )


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(source_packets(), min_size=1, max_size=6), st.booleans())
def test_rewrite_output_parses_with_aiortc(packets, is_vp8):
    dt = DownTrack(OUT_SSRC, OUT_PT, 90000, is_vp8)
    prev = 0
    for i, data in enumerate(packets):
        dt.switch_to(i)  # every packet from a new source: exercises the rebase path too
        out = dt.rewrite(data, i, 10.0 * i)
        assert out is not None
        _pt, _seq, _ts, _ssrc, marker, start, end = parse(data)  # aiortc may reject the random extensions
        ref = RtpPacket.parse(out)
        assert (ref.ssrc, ref.payload_type, ref.marker) == (OUT_SSRC, OUT_PT, marker)
        cc = data[0] & 0x0F
        assert ref.csrc == list(struct.unpack(f"!{cc}I", data[12 : 12 + 4 * cc]))
        assert ref.padding_size == len(data) - end
        assert out[0] & 0x10 == 0 and out[0] & 0x2F == data[0] & 0x2F
        assert len(ref.payload) == end - start
        if not is_vp8:
            assert ref.payload == data[start:end]
        else:  # only the picture ID and TL0PICIDX bytes may change, and the M bit stays
            allowed = set()
            found = vp8_picture_id(data, start, end)
            if found is not None:
                allowed.add(found[0] - start)
                if found[1] == 15:
                    allowed.add(found[0] - start + 1)
                    assert ref.payload[found[0] - start] & 0x80
            tl0 = vp8_tl0picidx(data, start, end)
            if tl0 is not None:
                allowed.add(tl0 - start)
            assert {k for k in range(end - start) if ref.payload[k] != data[start + k]} <= allowed
        if i:
            assert (ref.sequence_number - prev) & 0xFFFF == 1  # continuous across every switch
        prev = ref.sequence_number


@settings(max_examples=600, deadline=None, database=None)
@given(st.binary(max_size=64), st.integers(0, 0xFFFF))
def test_rewrite_never_raises_on_garbage(data, out_seq):
    dt = new_track(video=True)
    dt.switch_to(A)
    dt.rewrite(pkt(1, 1, vp8(1)), A, 0.0)
    dt.rewrite(data, A, 1.0)
    dt.switch_to(B)
    dt.rewrite(data, B, 2.0)
    dt.rewrite_retransmit(data, out_seq)
    dt.rewrite_retransmit(data, 1)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # source
            st.integers(-3, 4),  # seq step relative to that source's newest packet (reorder, dup, loss)
            st.booleans(),  # switch to this source before the packet
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(0, 0xFFFF),
)
def test_every_sent_packet_maps_back_and_retransmits_identically(events, base):
    dt = new_track(video=True, max_segments=64)
    caches = [PacketCache(64) for _ in range(3)]
    newest = [(base + 1000 * k) & 0xFFFF for k in range(3)]
    sent: dict[int, tuple[int, int, bytes]] = {}
    for n, (source, step, switch) in enumerate(events):
        if switch:
            dt.switch_to(source)
        seq = (newest[source] + step) & 0xFFFF
        if step > 0:
            newest[source] = seq
        data = pkt(seq, seq * 3000, vp8(seq & 0x7FFF, tl0=seq & 0xFF, start=n % 2 == 0))
        if caches[source].get(seq) is None:
            caches[source].put(seq, data)
        data = caches[source].get(seq)
        out = dt.rewrite(data, source, float(n))
        if out is None:
            continue
        out_seq = fields(out)[0]
        if out_seq in sent:
            assert sent[out_seq] == (source, seq, out)  # only a duplicate may reuse a number
        sent[out_seq] = (source, seq, out)
    for out_seq, (source, seq, out) in sent.items():
        assert dt.source_for(out_seq) == (source, seq)
        cached = caches[source].get(seq)
        if cached is not None:  # else evicted from the 64-packet ring: nothing to resend
            assert dt.rewrite_retransmit(cached, out_seq) == out
