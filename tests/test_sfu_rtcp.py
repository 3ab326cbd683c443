"""sfu.rtcp: compound walking, NACK/PLI/FIR/REMB/SR/RR parsing and building
(byte-compared with aiortc's RTCP classes), NACKs across the 16-bit wrap, garbage
input, and RFC 3550 receive statistics on known loss/jitter patterns."""

from __future__ import annotations

import struct
import time

import pytest
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import (
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSourceInfo,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.rtcp import (
    NTP_EPOCH_OFFSET,
    RTCP_BYE,
    RTCP_PSFB,
    RTCP_RR,
    RTCP_RTPFB,
    RTCP_SDES,
    RTCP_SR,
    Fir,
    Pli,
    ReceiverReport,
    ReceiveStats,
    Remb,
    ReportBlock,
    SenderReport,
    build_fir,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sdes,
    build_sr,
    iter_packets,
    ntp_middle32,
    ntp_now,
    parse_nack,
    parse_psfb,
    parse_rr,
    parse_sr,
)

SENDER, MEDIA = 0x01020304, 0xA0B0C0D0


def aiortc_block(ssrc: int, lost: int = 3) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(
        ssrc=ssrc, fraction_lost=17, packets_lost=lost, highest_sequence=70000, jitter=42, lsr=0x12345678, dlsr=655
    )


def as_block(r: RtcpReceiverInfo) -> ReportBlock:
    return ReportBlock(r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence, r.jitter, r.lsr, r.dlsr)


def nack_bytes(lost: list[int]) -> bytes:
    return bytes(RtcpRtpfbPacket(fmt=1, ssrc=SENDER, media_ssrc=MEDIA, lost=lost))


# ---------------------------------------------------------------------- walking compound packets


def test_iter_packets_over_an_aiortc_compound():
    sr = RtcpSrPacket(
        ssrc=SENDER,
        sender_info=RtcpSenderInfo(ntp_timestamp=0x1122334455667788, rtp_timestamp=9, packet_count=10, octet_count=11),
        reports=[aiortc_block(1), aiortc_block(2, lost=-5)],
    )
    sdes = RtcpSdesPacket(chunks=[RtcpSourceInfo(ssrc=SENDER, items=[(1, b"kindling")])])
    parts = [
        bytes(sr),
        bytes(sdes),
        nack_bytes([5, 6, 30]),
        bytes(RtcpPsfbPacket(fmt=1, ssrc=SENDER, media_ssrc=MEDIA)),
        bytes(RtcpPsfbPacket(fmt=15, ssrc=SENDER, media_ssrc=0, fci=pack_remb_fci(1_500_000, [MEDIA, 7]))),
        bytes(RtcpByePacket(sources=[SENDER])),
    ]
    data = b"".join(parts)
    assert len(RtcpPacket.parse(data)) == 6
    walked = list(iter_packets(data))
    offsets = [sum(map(len, parts[:i])) for i in range(len(parts))]
    assert walked == [
        (RTCP_SR, 2, offsets[0], len(parts[0])),
        (RTCP_SDES, 1, offsets[1], len(parts[1])),
        (RTCP_RTPFB, 1, offsets[2], len(parts[2])),
        (RTCP_PSFB, 1, offsets[3], len(parts[3])),
        (RTCP_PSFB, 15, offsets[4], len(parts[4])),
        (RTCP_BYE, 1, offsets[5], len(parts[5])),
    ]
    _, _, off, n = walked[0]
    assert parse_sr(data, off, n) == SenderReport(
        SENDER, 0x1122334455667788, 9, 10, 11, [as_block(aiortc_block(1)), as_block(aiortc_block(2, lost=-5))]
    )
    assert parse_nack(data, *walked[2][2:]) == (MEDIA, [5, 6, 30])
    assert parse_psfb(data, *walked[3][2:]) == Pli(SENDER, MEDIA)
    assert parse_psfb(data, *walked[4][2:]) == Remb(SENDER, 1_500_000 >> 3 << 3, [MEDIA, 7])
    # parsers check the type they are given
    assert parse_nack(data, *walked[3][2:]) is None
    assert parse_psfb(data, *walked[2][2:]) is None
    assert parse_rr(data, *walked[0][2:]) is None


def test_iter_packets_stops_at_garbage_and_keeps_what_came_before():
    pli = build_pli(SENDER, MEDIA)
    assert [t for t, *_ in iter_packets(pli + pli)] == [RTCP_PSFB, RTCP_PSFB]
    assert [t for t, *_ in iter_packets(pli + b"\x00\x01\x02\x03" + pli)] == [RTCP_PSFB]  # version 0
    assert [t for t, *_ in iter_packets(pli + pli[:-1])] == [RTCP_PSFB]  # truncated second
    assert [t for t, *_ in iter_packets(pli + b"\x81\xce")] == [RTCP_PSFB]  # dangling bytes
    assert list(iter_packets(b"")) == []


def test_iter_packets_strips_padding():
    rr = build_rr(SENDER, [])
    padded = bytes([rr[0] | 0x20, rr[1]]) + struct.pack("!H", 2) + rr[4:] + b"\x00\x00\x00\x04"
    assert RtcpPacket.parse(padded)[0].ssrc == SENDER  # aiortc agrees it is valid
    assert list(iter_packets(padded)) == [(RTCP_RR, 0, 0, 8)]
    assert parse_rr(padded, 0, 8) == ReceiverReport(SENDER, [])
    bad = padded[:-1] + b"\x09"  # padding longer than the body
    assert list(iter_packets(bad)) == []


@settings(max_examples=1000, deadline=None, database=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        st.builds(
            lambda b0, pt, rest: bytes([b0, pt]) + rest,
            st.integers(0x80, 0xBF),
            st.integers(200, 206),
            st.binary(max_size=120),
        ),
    )
)
def test_garbage_never_raises(data):
    for packet_type, _fmt, offset, length in iter_packets(data):
        assert packet_type == data[offset + 1] and 4 <= length and offset + length <= len(data)
        for parser in (parse_nack, parse_psfb, parse_sr, parse_rr):
            parser(data, offset, length)
    for parser in (parse_nack, parse_psfb, parse_sr, parse_rr):
        parser(data, 0, len(data))
        parser(data, 3, 500)
        parser(data, -1, 8)


# ---------------------------------------------------------------------- NACK


def test_nack_matches_aiortc_without_wrap():
    lost = [100, 101, 105, 116, 117, 200, 216]
    data = build_nack(SENDER, MEDIA, lost)
    assert data == nack_bytes(lost)
    assert parse_nack(data, 0, len(data)) == (MEDIA, lost)
    assert RtcpPacket.parse(data)[0].lost == lost


def test_nack_at_the_16_bit_wrap():
    lost = [65533, 65535, 0, 1, 12, 13]
    data = build_nack(SENDER, MEDIA, lost)
    # aiortc builds the same bytes only from unwrapped numbers ...
    assert data == nack_bytes([65533, 65535, 65536, 65537, 65548, 65549])
    # ... and parses them back unwrapped (its bug); ours wraps.
    assert RtcpPacket.parse(data)[0].lost == [65533, 65535, 65536, 65537, 65548, 65549]
    assert parse_nack(data, 0, len(data)) == (MEDIA, lost)
    # A single FCI whose bitmask crosses the wrap, built by aiortc from pid 65530.
    data = nack_bytes([65530, 65531, 65536, 65546])
    assert parse_nack(data, 0, len(data)) == (MEDIA, [65530, 65531, 0, 10])


def test_build_nack_orders_wrap_aware_and_dedups():
    data = build_nack(SENDER, MEDIA, [0, 65535, 0, 65535, 3])
    assert len(data) == 16  # one FCI: pid 65535, bits for 0 and 3
    assert parse_nack(data, 0, len(data)) == (MEDIA, [65535, 0, 3])
    empty = build_nack(SENDER, MEDIA, [])
    assert parse_nack(empty, 0, len(empty)) == (MEDIA, [])


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(0, 0xFFFF), st.sets(st.integers(0, 2000), min_size=1, max_size=80))
def test_nack_round_trip_anywhere_in_the_sequence_space(base, offsets):
    lost = sorted(offsets)
    seqs = [(base + o) & 0xFFFF for o in lost]
    data = build_nack(SENDER, MEDIA, seqs)
    media, got = parse_nack(data, 0, len(data))
    assert media == MEDIA and got == seqs  # in wrap-aware order
    assert [s & 0xFFFF for s in RtcpPacket.parse(data)[0].lost] == seqs
    if base + lost[-1] <= 0xFFFF:  # aiortc's serializer cannot pack an FCI past the wrap at all
        assert data == nack_bytes([base + o for o in lost])


# ---------------------------------------------------------------------- PLI / FIR / REMB


def test_pli():
    data = build_pli(SENDER, MEDIA)
    assert data == bytes(RtcpPsfbPacket(fmt=1, ssrc=SENDER, media_ssrc=MEDIA))
    assert parse_psfb(data, 0, len(data)) == Pli(SENDER, MEDIA)


def test_fir():
    data = build_fir(SENDER, MEDIA, 257)
    ref = RtcpPacket.parse(data)[0]
    assert (ref.fmt, ref.ssrc, ref.media_ssrc, ref.fci) == (4, SENDER, 0, struct.pack("!IB3x", MEDIA, 1))
    assert parse_psfb(data, 0, len(data)) == Fir(SENDER, [(MEDIA, 1)])
    two = bytes(RtcpPsfbPacket(fmt=4, ssrc=SENDER, media_ssrc=0, fci=struct.pack("!IB3xIB3x", 5, 6, 7, 8)))
    assert parse_psfb(two, 0, len(two)) == Fir(SENDER, [(5, 6), (7, 8)])
    empty = bytes(RtcpPsfbPacket(fmt=4, ssrc=SENDER, media_ssrc=0))
    assert parse_psfb(empty, 0, len(empty)) is None


@settings(max_examples=200, deadline=None, database=None)
@given(st.integers(0, 10**12), st.lists(st.integers(0, 0xFFFFFFFF), max_size=5))
def test_remb_matches_aiortc(bitrate, ssrcs):
    data = build_remb(SENDER, bitrate, ssrcs)
    assert data == bytes(RtcpPsfbPacket(fmt=15, ssrc=SENDER, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)))
    expected = unpack_remb_fci(pack_remb_fci(bitrate, ssrcs))
    assert parse_psfb(data, 0, len(data)) == Remb(SENDER, *expected)
    assert expected[0] <= bitrate and expected[0] >= bitrate * (1 - 2**-17)


def test_psfb_other_formats_and_broken_remb():
    app = bytes(RtcpPsfbPacket(fmt=15, ssrc=SENDER, media_ssrc=0, fci=b"ABCD\x00\x00\x00\x00"))
    assert parse_psfb(app, 0, len(app)) is None
    lying = bytes(RtcpPsfbPacket(fmt=15, ssrc=SENDER, media_ssrc=0, fci=b"REMB\x03\x00\x00\x01" + bytes(4)))
    assert parse_psfb(lying, 0, len(lying)) is None  # announces 3 SSRCs, carries 1
    sli = bytes(RtcpPsfbPacket(fmt=2, ssrc=SENDER, media_ssrc=MEDIA, fci=bytes(4)))
    assert parse_psfb(sli, 0, len(sli)) is None


# ---------------------------------------------------------------------- SR / RR / SDES


def test_sr_matches_aiortc_both_ways():
    ntp = ntp_now()
    block = ReportBlock(77, 255, -8388608, 0xFFFFFFFF, 123, 0xDEADBEEF, 65536)
    data = build_sr(SENDER, ntp, 0xFFFFFFFF, 2**32 + 5, 9, [block])
    ref = RtcpSrPacket(
        ssrc=SENDER,
        sender_info=RtcpSenderInfo(ntp_timestamp=ntp, rtp_timestamp=0xFFFFFFFF, packet_count=5, octet_count=9),
        reports=[RtcpReceiverInfo(77, 255, -8388608, 0xFFFFFFFF, 123, 0xDEADBEEF, 65536)],
    )
    assert data == bytes(ref)
    assert parse_sr(data, 0, len(data)) == SenderReport(SENDER, ntp, 0xFFFFFFFF, 5, 9, [block])
    assert parse_sr(data, 0, len(data) - 4) is None  # a block cut short


def test_rr_matches_aiortc_both_ways_and_clamps():
    blocks = [ReportBlock(1, 25, 10, 70000, 300, 5, 6), ReportBlock(2, 0, -3, 5, 0, 0, 0)]
    data = build_rr(SENDER, blocks)
    assert data == bytes(RtcpRrPacket(ssrc=SENDER, reports=[RtcpReceiverInfo(*b) for b in blocks]))
    assert parse_rr(data, 0, len(data)) == ReceiverReport(SENDER, blocks)
    clamped = build_rr(SENDER, [ReportBlock(1, 300, 10**9, 2**40, -5, 0, 2**40)])
    (block,) = parse_rr(clamped, 0, len(clamped)).blocks
    assert (block.fraction_lost, block.packets_lost, block.jitter, block.dlsr) == (300 & 0xFF, 0x7FFFFF, 0, 2**32 - 1)


def test_rr_with_more_than_31_blocks_is_split():
    blocks = [ReportBlock(i, 0, 0, i, 0, 0, 0) for i in range(40)]
    data = build_rr(SENDER, blocks)
    walked = list(iter_packets(data))
    assert [(t, count) for t, count, _o, _n in walked] == [(RTCP_RR, 31), (RTCP_RR, 9)]
    assert [b for *_, o, n in walked for b in parse_rr(data, o, n).blocks] == blocks
    assert [len(p.reports) for p in RtcpPacket.parse(data)] == [31, 9]
    assert build_rr(SENDER, []) == bytes(RtcpRrPacket(ssrc=SENDER))


@pytest.mark.parametrize("cname", ["", "a", "ab", "abc", "kindling-worker-1"])
def test_sdes_parses_with_aiortc(cname):
    (sdes,) = RtcpPacket.parse(build_sdes(SENDER, cname))
    assert sdes.chunks[0].ssrc == SENDER
    assert sdes.chunks[0].items == ([(1, cname.encode())] if cname else [(1, b"")])


def test_ntp_now():
    before = time.time()
    ntp = ntp_now()
    after = time.time()
    seconds = (ntp >> 32) - NTP_EPOCH_OFFSET + (ntp & 0xFFFFFFFF) / 2**32
    assert before - 0.001 <= seconds <= after + 0.001
    assert ntp_middle32(0x1122334455667788) == 0x33445566


# ---------------------------------------------------------------------- receive statistics


def feed(stats: ReceiveStats, seqs: list[int], ts_step: int = 3000, period: float = 1 / 30) -> None:
    for seq in seqs:
        stats.add(seq & 0xFFFF, (seq * ts_step) & 0xFFFFFFFF, 100.0 + seq * period)


def test_fraction_and_cumulative_lost_on_a_known_pattern():
    stats = ReceiveStats(MEDIA, 90000)
    feed(stats, [s for s in range(100) if s % 10 != 5])  # 10 of 100 lost
    block = stats.report_block(now=200.0)
    assert (block.ssrc, block.fraction_lost, block.packets_lost, block.highest_seq) == (MEDIA, 25, 10, 99)
    assert (block.lsr, block.dlsr) == (0, 0)
    feed(stats, range(100, 200))  # no loss in this interval
    block = stats.report_block(now=201.0)
    assert (block.fraction_lost, block.packets_lost, block.highest_seq) == (0, 10, 199)
    feed(stats, [s for s in range(200, 300) if s % 2])  # half lost
    assert stats.report_block(now=202.0)[1:4] == (128, 60, 299)


def test_stats_across_the_wrap_with_reordering_and_duplicates():
    stats = ReceiveStats(MEDIA, 48000)
    for seq in (65530, 65531, 65533, 65532, 65534, 65535, 1, 0, 2, 2, 3):
        stats.add(seq, seq * 960, 0.0)
    assert stats.extended_max_seq == 65536 + 3
    assert stats.expected == 10
    assert stats.received == 11
    block = stats.report_block(now=1.0)
    assert (block.highest_seq, block.packets_lost, block.fraction_lost) == (65539, -1, 0)


def test_stats_resync_after_a_big_jump():
    stats = ReceiveStats(MEDIA, 90000)
    feed(stats, [100, 101, 102])
    assert stats.add(20000, 0, 1.0) is False  # suspicious: not counted yet
    assert stats.add(20001, 3000, 1.03) is True  # confirmed: the source restarted
    assert (stats.base_seq, stats.expected, stats.received) == (20001, 1, 1)
    assert stats.add(20002, 6000, 1.06)
    assert stats.report_block(now=2.0)[2:4] == (0, 20002)
    stats = ReceiveStats(MEDIA, 90000)
    feed(stats, [100, 101, 102])
    assert stats.add(20000, 0, 1.0) is False
    assert stats.add(103, 0, 1.0) is True  # the jump was a one-off
    assert stats.extended_max_seq == 103


def reference_jitter(arrivals: list[float], timestamps: list[int], clock_rate: int) -> float:
    """RFC 3550 A.8, written out literally with exact arithmetic."""
    jitter = 0.0
    for i in range(1, len(arrivals)):
        d = (arrivals[i] - arrivals[i - 1]) * clock_rate - (timestamps[i] - timestamps[i - 1])
        jitter += (abs(d) - jitter) / 16
    return jitter


def test_jitter_on_a_known_pattern():
    clock = 90000
    timestamps = [1000 + 3000 * i for i in range(200)]
    arrivals = [5.0 + i / 30 + (0.010 if i % 2 else 0.0) for i in range(200)]  # every other packet 10 ms late
    stats = ReceiveStats(MEDIA, clock)
    for i, (ts, arrival) in enumerate(zip(timestamps, arrivals, strict=True)):
        stats.add(i, ts, arrival)
    expected = reference_jitter(arrivals, timestamps, clock)
    assert expected == pytest.approx(900, rel=0.01)  # converges to |D| = 10 ms = 900 ticks
    assert stats.jitter == pytest.approx(expected)
    assert stats.report_block(now=20.0).jitter == int(expected)
    # constant transit time: no jitter at all, even across the 32-bit timestamp wrap
    stats = ReceiveStats(MEDIA, clock)
    for i in range(100):
        stats.add(i, (0xFFFF0000 + 3000 * i) & 0xFFFFFFFF, 1.0 + i / 30)
    assert stats.jitter == pytest.approx(0, abs=1e-6)


def test_jitter_ignores_packets_of_the_same_frame_and_late_ones():
    stats = ReceiveStats(MEDIA, 90000)
    stats.add(0, 0, 0.0)
    stats.add(1, 0, 0.005)  # same frame, sent in a burst: not jitter
    stats.add(2, 3000, 1 / 30)
    stats.add(4, 9000, 0.1)
    stats.add(3, 6000, 0.5)  # reordered: does not feed the estimate
    assert stats.jitter == pytest.approx(0, abs=1e-6)


def test_lsr_and_dlsr():
    stats = ReceiveStats(MEDIA, 90000)
    feed(stats, range(10))
    ntp = 0xE1234567_89ABCDEF
    stats.on_sr(ntp, arrival=300.0)
    block = stats.report_block(now=300.25)
    assert (block.lsr, block.dlsr) == (0x456789AB, 16384)
    stats.on_sr(ntp)  # defaults to time.monotonic()
    assert stats.report_block().dlsr < 65536


@settings(max_examples=150, deadline=None, database=None)
@given(
    st.integers(0, 0xFFFF),
    st.lists(st.tuples(st.booleans(), st.integers(-20, 20)), min_size=2, max_size=150),
)
def test_stats_agree_with_aiortc(base, pattern):
    """Same packets into aiortc's StreamStatistics (time.time patched to our arrival
    times): identical fraction lost, extended highest seq and cumulative loss, and
    jitter within aiortc's integer rounding."""
    ours = ReceiveStats(MEDIA, 90000)
    theirs = StreamStatistics(90000)
    now = [0.0]
    import aiortc.rtcrtpreceiver as receiver_module

    original = receiver_module.time.time
    receiver_module.time.time = lambda: now[0]
    try:
        seq, t = base, 1000.0
        for i, (lost, wobble_ms) in enumerate(pattern):
            seq = (seq + 1) & 0xFFFF
            t += 1 / 30 + wobble_ms / 1000.0 if i else 0
            if lost and i:
                continue
            now[0] = t
            ts = 3000 * i + 7
            ours.add(seq, ts, t)
            theirs.add(RtpPacket(sequence_number=seq, timestamp=ts))
    finally:
        receiver_module.time.time = original
    block = ours.report_block(now=0.0)
    assert block.fraction_lost == theirs.fraction_lost
    assert block.highest_seq == theirs.cycles + theirs.max_seq
    assert block.packets_lost == theirs.packets_lost
    assert abs(block.jitter - theirs.jitter) <= 2 + block.jitter // 50
