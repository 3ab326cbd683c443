"""sfu.rtp: header parsing, header extensions, audio level and keyframe detection on
raw bytes, checked against aiortc's own serializer/parser and packetizers, plus
truncated and random input (nothing may raise)."""

from __future__ import annotations

import fractions
import struct

import av
import pytest
from aiortc.codecs import CODECS, get_encoder
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from sfu.rtp import (
    RTP_HEADER_SIZE,
    audio_level,
    find_extension,
    h264_is_keyframe,
    header_size,
    parse,
    vp8_is_keyframe,
    vp8_picture_id,
    vp8_tl0picidx,
)

MID_ID, LEVEL_ID, ABS_SEND_TIME_ID = 1, 2, 3


def ext_map(mid: int = MID_ID, level: int = LEVEL_ID, abs_send_time: int = ABS_SEND_TIME_ID) -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    m.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=mid, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(id=level, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
                RTCRtpHeaderExtensionParameters(
                    id=abs_send_time, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    return m


def aiortc_packet(
    payload: bytes = b"\x01\x02\x03\x04",
    *,
    pt: int = 96,
    seq: int = 1234,
    ts: int = 567890,
    ssrc: int = 0x11223344,
    marker: int = 1,
    csrc: tuple[int, ...] = (),
    mid: str | None = None,
    level: tuple[bool, int] | None = None,
    abs_send_time: int | None = None,
    padding: int = 0,
    extensions: HeaderExtensionsMap | None = None,
) -> bytes:
    p = RtpPacket(payload_type=pt, marker=marker, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload)
    p.csrc = list(csrc)
    p.extensions.mid = mid
    p.extensions.audio_level = level
    p.extensions.abs_send_time = abs_send_time
    p.padding_size = padding
    return p.serialize(extensions or ext_map())


def raw_packet(
    payload: bytes,
    *,
    pt: int = 96,
    seq: int = 1,
    ts: int = 2,
    ssrc: int = 3,
    marker: bool = False,
    csrc: tuple[int, ...] = (),
    ext_profile: int | None = None,
    ext_data: bytes = b"",
    padding: int = 0,
) -> bytes:
    """A packet built by hand (for shapes aiortc cannot serialize: generic profiles, odd padding)."""
    b0 = 0x80 | len(csrc) | (0x20 if padding else 0) | (0x10 if ext_profile is not None else 0)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrc)
    if ext_profile is not None:
        assert len(ext_data) % 4 == 0
        out += struct.pack("!HH", ext_profile, len(ext_data) // 4) + ext_data
    out += payload
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


# ---------------------------------------------------------------------- parse


def test_parse_plain_packet_matches_aiortc():
    data = aiortc_packet(b"hello", pt=111, seq=65535, ts=0xFFFFFFFF, ssrc=0xDEADBEEF, marker=1)
    assert parse(data) == (111, 65535, 0xFFFFFFFF, 0xDEADBEEF, True, 12, 17)
    assert data[12:17] == b"hello"


def test_parse_with_csrcs_extensions_and_padding():
    data = aiortc_packet(
        b"payload!", csrc=(1, 2, 3), mid="0", level=(True, 30), abs_send_time=0x123456, padding=7, marker=0
    )
    ref = RtpPacket.parse(data, ext_map())
    pt, seq, ts, ssrc, marker, start, end = parse(data)
    assert (pt, seq, ts, ssrc, marker) == (ref.payload_type, ref.sequence_number, ref.timestamp, ref.ssrc, False)
    assert data[start:end] == ref.payload == b"payload!"
    assert len(data) - end == 7
    assert header_size(data) == RTP_HEADER_SIZE + 12


def test_parse_two_byte_and_generic_extension_profiles():
    two_byte = raw_packet(b"xy", ext_profile=0x1003, ext_data=bytes([1, 0, 20, 2, 0xAA, 0xBB, 0, 0]))
    assert parse(two_byte)[5:] == (12 + 4 + 8, 12 + 4 + 8 + 2)
    generic = raw_packet(b"xyz", ext_profile=0x1234, ext_data=b"abcdefgh")
    assert parse(generic)[5:] == (24, 27)
    empty_ext = raw_packet(b"", ext_profile=0xBEDE, ext_data=b"")
    assert parse(empty_ext)[5:] == (16, 16)


def test_parse_padding_only_packet():
    data = raw_packet(b"", padding=4)
    assert parse(data)[5:] == (12, 12)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",
        bytes(11),
        b"\x40" + bytes(11),  # version 1
        b"\xc0" + bytes(11),  # version 3
        b"\x82" + bytes(11) + bytes(7),  # 2 CSRCs announced, 1.75 present
        b"\x90" + bytes(11) + b"\xbe\xde",  # extension header truncated
        b"\x90" + bytes(11) + b"\xbe\xde\x00\x02" + bytes(7),  # extension data truncated
        b"\xa0" + bytes(11) + b"\x01\x00",  # padding count 0
        b"\xa0" + bytes(11) + b"\x01\x04",  # padding longer than the payload
        b"\xa0" + bytes(11),  # padding bit without any byte after the header
    ],
)
def test_parse_rejects_malformed(data):
    assert parse(data) is None


def test_every_truncation_of_a_valid_packet_is_handled():
    data = aiortc_packet(b"0123456789", csrc=(9,), mid="abc", level=(False, 3), abs_send_time=5, padding=3)
    for n in range(len(data)):
        got = parse(data[:n])
        if got is not None:  # a shorter packet can still be valid (the padding count is just another byte)
            assert 0 <= got[5] <= got[6] <= n


def test_parse_accepts_bytearray_and_memoryview():
    data = aiortc_packet(b"abc", mid="1")
    assert parse(bytearray(data)) == parse(memoryview(data)) == parse(data)


# Random bytes, half of them starting like RTP (version 2) so the deeper branches get exercised.
rtp_like = st.one_of(
    st.binary(max_size=80),
    st.builds(lambda b0, rest: bytes([b0]) + rest, st.integers(0x80, 0xBF), st.binary(max_size=80)),
)


@settings(max_examples=1500, deadline=None, database=None)
@given(rtp_like)
def test_parse_never_raises_and_agrees_with_aiortc(data):
    got = parse(data)
    try:
        ref = RtpPacket.parse(data)
    except ValueError:
        ref = None
    if got is None:
        assert ref is None
    else:
        pt, seq, ts, ssrc, marker, start, end = got
        assert 0 <= start <= end <= len(data)
        if ref is not None:  # aiortc also rejects malformed extension *elements*; parse skips the block whole
            assert (pt, seq, ts, ssrc, marker) == (
                ref.payload_type,
                ref.sequence_number,
                ref.timestamp,
                ref.ssrc,
                bool(ref.marker),
            )
            assert data[start:end] == ref.payload


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.binary(max_size=40),
    st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    st.sampled_from([None, "0", "a-long-mid-value-over-16"]),
    st.one_of(st.none(), st.tuples(st.booleans(), st.integers(0, 127))),
    st.integers(0, 40),
)
def test_parse_matches_aiortc_on_serialized_packets(payload, csrc, mid, level, padding):
    data = aiortc_packet(payload, csrc=tuple(csrc), mid=mid, level=level, padding=padding)
    ref = RtpPacket.parse(data, ext_map())
    pt, seq, ts, ssrc, marker, start, end = parse(data)
    assert data[start:end] == ref.payload == payload
    assert (pt, seq, ts, ssrc) == (ref.payload_type, ref.sequence_number, ref.timestamp, ref.ssrc)
    assert len(data) - end == padding


# ---------------------------------------------------------------------- header extensions


def test_find_extension_one_byte_from_aiortc():
    data = aiortc_packet(mid="video0", level=(True, 42), abs_send_time=0xABCDEF)
    off, length = find_extension(data, MID_ID)
    assert data[off : off + length] == b"video0"
    off, length = find_extension(data, ABS_SEND_TIME_ID)
    assert (length, data[off : off + 3]) == (3, b"\xab\xcd\xef")
    assert find_extension(data, 7) is None
    assert find_extension(data, 0) is None
    assert find_extension(data, 15) is None


def test_find_extension_two_byte_from_aiortc():
    # A mid longer than 16 bytes forces aiortc into the two-byte form (profile 0x1000).
    data = aiortc_packet(mid="m" * 20, level=(False, 127))
    assert data[12:14] == b"\x10\x00"
    off, length = find_extension(data, MID_ID)
    assert data[off : off + length] == b"m" * 20
    assert audio_level(data, LEVEL_ID) == (False, 127)


def test_find_extension_two_byte_ids_above_14_and_appbits():
    ext = bytes([0, 0, 200, 0, 17, 3, 7, 8, 9, 0, 0, 0])  # padding, empty id 200, id 17 len 3, padding
    data = raw_packet(b"p", ext_profile=0x100F, ext_data=ext)
    assert find_extension(data, 200) == (12 + 4 + 4, 0)
    off, length = find_extension(data, 17)
    assert data[off : off + length] == b"\x07\x08\x09"
    assert find_extension(data, 18) is None
    assert find_extension(data, 256) is None


def test_find_extension_one_byte_padding_and_stop_marker():
    ext = bytes([0, 0, 0x20, 0x85, 0xF0, 0x30, 1, 2])  # padding, id 2 = 0x85, id 15 stops, id 3 hidden
    data = raw_packet(b"p", ext_profile=0xBEDE, ext_data=ext)
    assert audio_level(data, 2) == (True, 5)
    assert find_extension(data, 3) is None


def test_find_extension_malformed_and_foreign_profiles():
    truncated_element = raw_packet(b"", ext_profile=0xBEDE, ext_data=bytes([0x13, 1, 2, 0]))  # needs 4 data bytes
    assert find_extension(truncated_element, 1) is None
    generic = raw_packet(b"", ext_profile=0xABCD, ext_data=bytes([0x10, 1, 0, 0]))
    assert find_extension(generic, 1) is None
    no_x = raw_packet(b"\x10\x01\x00\x00")
    assert find_extension(no_x, 1) is None
    lying_length = raw_packet(b"", ext_profile=0xBEDE, ext_data=bytes([0x10, 1, 0, 0]))[:-1]
    assert find_extension(lying_length, 1) is None


def test_audio_level_matches_aiortc():
    for vad, level in ((False, 0), (True, 127), (True, 30), (False, 64)):
        data = aiortc_packet(bytes(40), pt=111, mid="1", level=(vad, level))
        assert audio_level(data, LEVEL_ID) == RtpPacket.parse(data, ext_map()).extensions.audio_level == (vad, level)
    assert audio_level(aiortc_packet(bytes(40), mid="1"), LEVEL_ID) is None
    assert audio_level(aiortc_packet(bytes(40)), LEVEL_ID) is None


@settings(max_examples=800, deadline=None, database=None)
@given(
    st.one_of(
        rtp_like,
        st.builds(
            lambda b0, prof, rest: bytes([b0]) + bytes(11) + prof + rest,
            st.integers(0x90, 0x9F),
            st.sampled_from([b"\xbe\xde", b"\x10\x00", b"\x10\x0f", b"\x12\x34"]),
            st.binary(max_size=60),
        ),
    ),
    st.integers(-2, 300),
)
def test_extension_helpers_never_raise(data, ext_id):
    found = find_extension(data, ext_id)
    if found is not None:
        off, length = found
        assert 0 <= off and off + length <= len(data)
    level = audio_level(data, ext_id)
    assert level is None or 0 <= level[1] <= 127


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=6),
    st.dictionaries(st.integers(1, 255), st.binary(max_size=30), max_size=6),
)
def test_find_extension_round_trips_random_element_lists(one_byte, two_byte):
    body = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v for i, v in one_byte.items())
    body += bytes(-len(body) % 4)
    data = raw_packet(b"pp", ext_profile=0xBEDE, ext_data=body)
    for i, v in one_byte.items():
        off, length = find_extension(data, i)
        assert data[off : off + length] == v
    body = b"".join(bytes([i, len(v)]) + v for i, v in two_byte.items())
    body += bytes(-len(body) % 4)
    data = raw_packet(b"pp", ext_profile=0x1000, ext_data=body)
    for i, v in two_byte.items():
        off, length = find_extension(data, i)
        assert data[off : off + length] == v


# ---------------------------------------------------------------------- codecs: real packetizer output


def _frames(count: int, width: int = 320, height: int = 240) -> list[av.VideoFrame]:
    frames = []
    for i in range(count):
        frame = av.VideoFrame(width=width, height=height)
        for p, plane in enumerate(frame.planes):
            plane.update(bytes(((i * 7 + j * (p + 3)) * 31 + j // 7) & 0xFF for j in range(plane.buffer_size)))
        frame.pts = i * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        frames.append(frame)
    return frames


def _encoded(mime: str, count: int = 3, keyframe_at: tuple[int, ...] = ()) -> list[list[bytes]]:
    codec = next(c for c in CODECS["video"] if c.mimeType == mime)
    encoder = get_encoder(codec)
    out = []
    for i, frame in enumerate(_frames(count)):
        payloads, _ts = encoder.encode(frame, force_keyframe=i in keyframe_at)
        out.append(payloads)
    return out


@pytest.fixture(scope="module")
def vp8_frames() -> list[list[bytes]]:
    return _encoded("video/VP8", 4, keyframe_at=(2,))


@pytest.fixture(scope="module")
def h264_frames() -> list[list[bytes]]:
    return _encoded("video/H264", 4, keyframe_at=(2,))


def _wrap(payload: bytes, seq: int = 1) -> tuple[bytes, int, int]:
    data = aiortc_packet(payload, seq=seq, mid="0", abs_send_time=1)
    _pt, _seq, _ts, _ssrc, _m, start, end = parse(data)
    return data, start, end


def test_vp8_keyframes_from_aiortc_encoder(vp8_frames):
    flags = [[vp8_is_keyframe(*_wrap(p)) for p in frame] for frame in vp8_frames]
    assert len(vp8_frames[0]) > 1  # a multi-packet keyframe: only its first packet counts
    assert flags[0] == [True] + [False] * (len(vp8_frames[0]) - 1)
    assert not any(flags[1])
    assert flags[2][0] and not any(flags[2][1:])  # forced keyframe (what a PLI causes)
    assert not any(flags[3])


def test_vp8_picture_id_from_aiortc_encoder(vp8_frames):
    ids = []
    for frame in vp8_frames:
        for payload in frame:
            data, start, end = _wrap(payload)
            off, bits = vp8_picture_id(data, start, end)
            assert (off, bits) == (start + 2, 15)  # aiortc 1.16 always sends 15-bit IDs
            ids.append(((data[off] & 0x7F) << 8) | data[off + 1])
            assert vp8_tl0picidx(data, start, end) is None
    per_frame = [ids[sum(map(len, vp8_frames[:i]))] for i in range(len(vp8_frames))]
    assert [(b - per_frame[0]) % 32768 for b in per_frame] == [0, 1, 2, 3]


def _vp8(descriptor: bytes, first_byte: int = 0x00) -> tuple[bytes, int, int]:
    return _wrap(descriptor + bytes([first_byte, 0x01, 0x02, 0x9D, 0x01, 0x2A]))


@pytest.mark.parametrize(
    "descriptor, first, keyframe",
    [
        (b"\x10", 0x00, True),  # no X, S=1, PID=0, P=0
        (b"\x10", 0x01, False),  # P=1: interframe
        (b"\x00", 0x00, False),  # S=0: continuation
        (b"\x11", 0x00, False),  # partition 1
        (b"\x90\x80\x05", 0x00, True),  # 7-bit picture ID
        (b"\x90\x80\x85\x05", 0x00, True),  # 15-bit picture ID
        (b"\x90\xf0\x85\x05\x11\x22", 0x00, True),  # I, L, T, K
        (b"\x90\x60\x11\x22", 0x00, True),  # L and T without I
        (b"\x90\x40\x11", 0x01, False),
    ],
)
def test_vp8_keyframe_descriptor_variants(descriptor, first, keyframe):
    assert vp8_is_keyframe(*_vp8(descriptor, first)) is keyframe


def test_vp8_picture_id_and_tl0_offsets():
    data, start, end = _vp8(b"\x90\xc0\x05\x77")  # 7-bit ID 5, TL0PICIDX 0x77
    assert vp8_picture_id(data, start, end) == (start + 2, 7)
    assert vp8_tl0picidx(data, start, end) == start + 3
    data, start, end = _vp8(b"\x90\xc0\x85\x05\x77")
    assert vp8_picture_id(data, start, end) == (start + 2, 15)
    assert vp8_tl0picidx(data, start, end) == start + 4
    data, start, end = _vp8(b"\x90\x40\x77")
    assert vp8_picture_id(data, start, end) is None
    assert vp8_tl0picidx(data, start, end) == start + 2
    data, start, end = _vp8(b"\x10")
    assert vp8_picture_id(data, start, end) is None and vp8_tl0picidx(data, start, end) is None


def test_vp8_truncated_descriptors_are_not_keyframes():
    for descriptor in (b"\x90", b"\x90\x80", b"\x90\x80\x85", b"\x90\x80\x85\x05", b"\x90\xf0\x85\x05\x11"):
        data, start, _end = _wrap(descriptor)
        assert vp8_is_keyframe(data, start, start + len(descriptor)) is False
    data, start, _end = _wrap(b"\x90\x80\x85")
    assert vp8_picture_id(data, start, start + 3) is None
    assert vp8_is_keyframe(b"", 0, 0) is False
    assert vp8_is_keyframe(b"\x10\x00", 0, 99) is True  # end clamped to the buffer
    assert vp8_is_keyframe(b"\x10\x00", 5, 1) is False


def test_h264_keyframes_from_aiortc_encoder(h264_frames):
    first = h264_frames[0]
    assert first[0][0] & 0x1F == 24  # STAP-A with SPS/PPS
    assert h264_is_keyframe(*_wrap(first[0]))
    fu_starts = [p for p in first if p[0] & 0x1F == 28 and p[1] & 0x80]
    assert fu_starts and all(h264_is_keyframe(*_wrap(p)) for p in fu_starts)  # FU-A start of the IDR
    assert not any(h264_is_keyframe(*_wrap(p)) for p in first if p[0] & 0x1F == 28 and not p[1] & 0x80)
    assert not any(h264_is_keyframe(*_wrap(p)) for p in h264_frames[1])
    assert h264_is_keyframe(*_wrap(h264_frames[2][0]))
    assert not any(h264_is_keyframe(*_wrap(p)) for p in h264_frames[3])


@pytest.mark.parametrize(
    "payload, keyframe",
    [
        (b"\x65\x88\x84", True),  # single NAL, IDR
        (b"\x67\x42\x00", True),  # single NAL, SPS
        (b"\x68\xce", False),  # PPS alone
        (b"\x41\x9a", False),  # non-IDR slice
        (b"\x78\x00\x02\x06\x05\x00\x03\x65\x88\x84", True),  # STAP-A: SEI, IDR
        (b"\x78\x00\x02\x06\x05\x00\x02\x41\x9a", False),  # STAP-A: SEI, non-IDR
        (b"\x78\x00\x09\x65", False),  # STAP-A with a NAL size past the end
        (b"\x78\x00\x00\x65", False),  # STAP-A with a zero size
        (b"\x78\x00", False),
        (b"\x7c\x85\x00", True),  # FU-A start, IDR
        (b"\x7c\x87\x00", True),  # FU-A start, SPS
        (b"\x7c\x05\x00", False),  # FU-A middle
        (b"\x7c\x81\x00", False),  # FU-A start, non-IDR
        (b"\x7c", False),  # FU-A without its header
        (b"", False),
    ],
)
def test_h264_keyframe_variants(payload, keyframe):
    data, start, end = _wrap(payload)
    assert h264_is_keyframe(data, start, end) is keyframe


@settings(max_examples=800, deadline=None, database=None)
@given(st.binary(max_size=40), st.integers(-3, 45), st.integers(-3, 45))
def test_codec_helpers_never_raise(data, start, end):
    assert vp8_is_keyframe(data, start, end) in (True, False)
    assert h264_is_keyframe(data, start, end) in (True, False)
    found = vp8_picture_id(data, start, end)
    if found is not None:
        assert 0 <= found[0] < len(data) and found[1] in (7, 15)
        if found[1] == 15:
            assert found[0] + 1 < len(data)
    pos = vp8_tl0picidx(data, start, end)
    assert pos is None or 0 <= pos < len(data)
