"""RTP header helpers on raw (already SRTP-decrypted) packet bytes.

The forwarding path never builds ``aiortc.rtp.RtpPacket`` objects: parsing one costs
1.5–3.3 µs and drops unknown header extensions (notes/aiortc-sfu.md §5a). These
functions read the few fields an SFU needs straight from ``bytes``, ``bytearray``
or ``memoryview`` and return plain ints/tuples.

Every function here is total on hostile input: truncated, oversized-length or
otherwise garbage packets give ``None``/``False``, never an exception, because a
single malformed datagram must not take down the worker's receive loop.

References: RFC 3550 §5.1 (fixed header, padding, generic header extension),
RFC 8285 (one-byte ``0xBEDE`` and two-byte ``0x100x`` extension elements),
RFC 6464 (audio level), RFC 7741 (VP8 payload descriptor), RFC 6184 (H.264).
"""

from __future__ import annotations

import struct
from typing import Final

RTP_VERSION: Final = 2
RTP_HEADER_SIZE: Final = 12
"""Fixed RTP header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC."""
CSRC_SIZE: Final = 4
EXTENSION_HEADER_SIZE: Final = 4
"""The 16-bit profile and 16-bit length (in 32-bit words) before the extension data."""
ONE_BYTE_PROFILE: Final = 0xBEDE
TWO_BYTE_PROFILE: Final = 0x1000
TWO_BYTE_PROFILE_MASK: Final = 0xFFF0
"""RFC 8285 §4.3: the low 4 bits of the two-byte profile are "appbits", not part of the id."""
MAX_ONE_BYTE_ID: Final = 14
"""Id 15 in a one-byte element means "stop parsing" (RFC 8285 §4.2); 0 is padding."""
MAX_TWO_BYTE_ID: Final = 255
SEQ_MOD: Final = 1 << 16
TS_MOD: Final = 1 << 32
SEQ_MASK: Final = 0xFFFF
TS_MASK: Final = 0xFFFFFFFF

# VP8 payload descriptor (RFC 7741 §4.2).
VP8_X: Final = 0x80
VP8_S: Final = 0x10
VP8_PID_MASK: Final = 0x07
VP8_I: Final = 0x80
VP8_L: Final = 0x40
VP8_T: Final = 0x20
VP8_K: Final = 0x10
VP8_M: Final = 0x80

# H.264 NAL unit types (RFC 6184 §5.2) that start a decodable picture for a new receiver.
H264_NAL_IDR: Final = 5
H264_NAL_SPS: Final = 7
H264_NAL_STAP_A: Final = 24
H264_NAL_FU_A: Final = 28

_SEQ_TS_SSRC = struct.Struct("!xBHII")

BytesLike = bytes | bytearray | memoryview
"""Anything the helpers accept: indexing gives ints, ``len`` works, ``struct`` can read it."""

RtpHeader = tuple[int, int, int, int, bool, int, int]
"""(payload_type, seq, timestamp, ssrc, marker, payload_start, payload_end)."""


def parse(data: BytesLike) -> RtpHeader | None:
    """Read the RTP header fields and the payload bounds, or ``None`` if ``data`` is
    not a well-formed RTP packet.

    ``payload_start`` skips the CSRC list and the whole header extension block
    (whatever its profile); ``payload_end`` excludes RTP padding when the P bit is
    set, so ``data[payload_start:payload_end]`` is exactly the codec payload.
    RTCP is not rejected here: demultiplexing RTP/RTCP (RFC 5761) is the caller's job.
    """
    n = len(data)
    if n < RTP_HEADER_SIZE:
        return None
    b0 = data[0]
    if b0 & 0xC0 != 0x80:
        return None
    pos = RTP_HEADER_SIZE + ((b0 & 0x0F) << 2)
    if b0 & 0x10:
        if n < pos + EXTENSION_HEADER_SIZE:
            return None
        pos += EXTENSION_HEADER_SIZE + (((data[pos + 2] << 8) | data[pos + 3]) << 2)
    if pos > n:
        return None
    end = n
    if b0 & 0x20:
        pad = data[n - 1]
        if pad == 0 or pad > n - pos:
            return None
        end = n - pad
    b1, seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data)
    return b1 & 0x7F, seq, ts, ssrc, b1 > 0x7F, pos, end


def header_size(data: BytesLike) -> int:
    """Length of the fixed header plus CSRCs, i.e. where the extension block (if any)
    starts; 0 if ``data`` is too short or not version 2."""
    n = len(data)
    if n < RTP_HEADER_SIZE:
        return 0
    b0 = data[0]
    if b0 & 0xC0 != 0x80:
        return 0
    size = RTP_HEADER_SIZE + ((b0 & 0x0F) << 2)
    return size if size <= n else 0


def find_extension(data: BytesLike, ext_id: int) -> tuple[int, int] | None:
    """Locate one RFC 8285 header extension element: ``(offset, length)`` of its data
    inside ``data``, or ``None`` when absent, malformed or in a non-8285 profile.

    One-byte form (profile 0xBEDE): ids 1..14; zero bytes are padding; id 15 ends
    the list. Two-byte form (profile 0x100X): ids 1..255, zero-length elements
    allowed; zero bytes are padding. Ids are the ones negotiated with ``a=extmap``
    for this transport, so the caller passes the id, not a URI.
    """
    n = len(data)
    if n < RTP_HEADER_SIZE + EXTENSION_HEADER_SIZE:
        return None
    b0 = data[0]
    if b0 & 0xD0 != 0x90:  # version 2 and X bit
        return None
    pos = RTP_HEADER_SIZE + ((b0 & 0x0F) << 2)
    if n < pos + EXTENSION_HEADER_SIZE:
        return None
    profile = (data[pos] << 8) | data[pos + 1]
    end = pos + EXTENSION_HEADER_SIZE + (((data[pos + 2] << 8) | data[pos + 3]) << 2)
    if end > n:
        return None
    pos += EXTENSION_HEADER_SIZE
    if profile == ONE_BYTE_PROFILE:
        if not 0 < ext_id <= MAX_ONE_BYTE_ID:
            return None
        while pos < end:
            b = data[pos]
            if b == 0:
                pos += 1
                continue
            eid = b >> 4
            if eid == 15 or eid == 0:  # 15: stop; 0 with a length: invalid padding
                return None
            length = (b & 0x0F) + 1
            pos += 1
            if pos + length > end:
                return None
            if eid == ext_id:
                return pos, length
            pos += length
    elif profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE:
        if not 0 < ext_id <= MAX_TWO_BYTE_ID:
            return None
        while pos < end:
            eid = data[pos]
            if eid == 0:
                pos += 1
                continue
            if pos + 2 > end:
                return None
            length = data[pos + 1]
            pos += 2
            if pos + length > end:
                return None
            if eid == ext_id:
                return pos, length
            pos += length
    return None


def audio_level(data: BytesLike, ext_id: int) -> tuple[bool, int] | None:
    """RFC 6464 client-to-mixer audio level: ``(voice_activity, level)`` with level
    0..127 meaning -level dBov (0 = loudest, 127 = silence), or ``None`` if the packet
    carries no such element. Lets the SFU rank speakers without decoding Opus."""
    found = find_extension(data, ext_id)
    if found is None or found[1] < 1:
        return None
    b = data[found[0]]
    return b > 0x7F, b & 0x7F


def _vp8_header_pos(data: BytesLike, start: int, end: int) -> int:
    """Offset of the VP8 payload header after the RFC 7741 payload descriptor, or -1."""
    pos = start + 1
    if data[start] & VP8_X:
        if pos >= end:
            return -1
        x = data[pos]
        pos += 1
        if x & VP8_I:
            if pos >= end:
                return -1
            pos += 2 if data[pos] & VP8_M else 1
        if x & VP8_L:
            pos += 1
        if x & (VP8_T | VP8_K):
            pos += 1
    return pos if pos < end else -1


def vp8_is_keyframe(data: BytesLike, payload_start: int, payload_end: int) -> bool:
    """True if this packet starts a VP8 key frame: S=1 and partition index 0 in the
    payload descriptor, and the inverse key-frame flag P (bit 0 of the first VP8
    payload header byte) is 0 (RFC 7741 §4.3). Only such a packet is a safe point
    to switch a subscriber onto this stream."""
    end = min(payload_end, len(data))
    if payload_start < 0 or payload_start >= end:
        return False
    if data[payload_start] & (VP8_S | VP8_PID_MASK) != VP8_S:
        return False
    pos = _vp8_header_pos(data, payload_start, end)
    return pos >= 0 and not data[pos] & 0x01


def vp8_picture_id(data: BytesLike, payload_start: int, payload_end: int | None = None) -> tuple[int, int] | None:
    """Where the VP8 picture ID sits: ``(offset, bits)`` with bits 7 or 15 (for 15 bits
    the ID is the low 15 bits of the big-endian 16-bit word at ``offset``, the top bit
    being M), or ``None`` when the descriptor has no picture ID."""
    end = len(data) if payload_end is None else min(payload_end, len(data))
    if payload_start < 0 or payload_start + 2 >= end:
        return None
    if not data[payload_start] & VP8_X or not data[payload_start + 1] & VP8_I:
        return None
    pos = payload_start + 2
    if data[pos] & VP8_M:
        return (pos, 15) if pos + 1 < end else None
    return pos, 7


def vp8_tl0picidx(data: BytesLike, payload_start: int, payload_end: int | None = None) -> int | None:
    """Offset of the VP8 TL0PICIDX byte (L bit set), or ``None``."""
    end = len(data) if payload_end is None else min(payload_end, len(data))
    if payload_start < 0 or payload_start + 2 >= end:
        return None
    if not data[payload_start] & VP8_X:
        return None
    x = data[payload_start + 1]
    if not x & VP8_L:
        return None
    pos = payload_start + 2
    if x & VP8_I:
        pos += 2 if data[pos] & VP8_M else 1
    return pos if pos < end else None


def h264_is_keyframe(data: BytesLike, payload_start: int, payload_end: int) -> bool:
    """True if the packet carries the start of an IDR picture or an SPS (RFC 6184):
    a single NAL unit of type 5/7, a STAP-A (24) aggregating one, or the first
    fragment (S bit) of an FU-A (28) of one. An SPS counts because encoders send
    SPS+PPS+IDR together and the SPS comes first."""
    end = min(payload_end, len(data))
    if payload_start < 0 or payload_start >= end:
        return False
    nal = data[payload_start] & 0x1F
    if nal == H264_NAL_IDR or nal == H264_NAL_SPS:
        return True
    if nal == H264_NAL_STAP_A:
        pos = payload_start + 1
        while pos + 2 < end:
            size = (data[pos] << 8) | data[pos + 1]
            pos += 2
            if size == 0 or pos + size > end:
                return False
            t = data[pos] & 0x1F
            if t == H264_NAL_IDR or t == H264_NAL_SPS:
                return True
            pos += size
        return False
    if nal == H264_NAL_FU_A:
        if payload_start + 1 >= end:
            return False
        fu = data[payload_start + 1]
        t = fu & 0x1F
        return bool(fu & 0x80) and (t == H264_NAL_IDR or t == H264_NAL_SPS)
    return False
