"""RTCP on raw (already SRTCP-decrypted) bytes: walk compound packets, parse the
feedback an SFU acts on, build the packets it sends, and keep RFC 3550 receive
statistics for the receiver reports it owes each publisher.

Why not aiortc's classes: ``RtcpPacket.parse`` raises on the first malformed
sub-packet (losing the rest of a compound), builds a dataclass per sub-packet,
and ``RtcpRtpfbPacket.parse`` computes NACKed sequence numbers as ``pid + d + 1``
without wrapping, yielding numbers >= 65536 for NACKs that straddle the 16-bit
wrap (notes/aiortc-sfu.md §2). Here everything is total on garbage (``None`` or an
early stop, never an exception) and wrap-correct.

References: RFC 3550 §6.4 (SR/RR), appendix A.1/A.3/A.8 (sequence tracking, loss,
jitter); RFC 4585 §6.2.1 (generic NACK), §6.3.1 (PLI); RFC 5104 §4.3.1 (FIR);
draft-alvestrand-rmcat-remb-03 (REMB).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator
from typing import Final, NamedTuple

from sfu.rtp import SEQ_MASK, SEQ_MOD, TS_MASK, BytesLike

# Packet types (RFC 3550, RFC 4585).
RTCP_SR: Final = 200
RTCP_RR: Final = 201
RTCP_SDES: Final = 202
RTCP_BYE: Final = 203
RTCP_APP: Final = 204
RTCP_RTPFB: Final = 205
RTCP_PSFB: Final = 206

RTPFB_NACK: Final = 1
PSFB_PLI: Final = 1
PSFB_FIR: Final = 4
PSFB_AFB: Final = 15  # application layer feedback; REMB is the only one used in WebRTC

RTCP_HEADER_SIZE: Final = 4
REPORT_BLOCK_SIZE: Final = 24
MAX_REPORT_BLOCKS: Final = 31  # 5-bit count field
NTP_EPOCH_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

_U32 = struct.Struct("!I")
_HEADER = struct.Struct("!BBH")
_PID_BLP = struct.Struct("!HH")
_REPORT_BLOCK = struct.Struct("!IIIIII")  # ssrc, fraction|lost, highest, jitter, lsr, dlsr
_SENDER_INFO = struct.Struct("!IQIII")  # ssrc, ntp, rtp ts, packets, octets
_FEEDBACK = struct.Struct("!BBHII")  # header + sender ssrc + media ssrc


class ReportBlock(NamedTuple):
    """One reception report block (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int  # 0..255, fixed point /256, since the previous report
    packets_lost: int  # cumulative, signed 24-bit
    highest_seq: int  # extended highest sequence number received
    jitter: int  # interarrival jitter in RTP timestamp units
    lsr: int  # middle 32 bits of the NTP time of the last SR received, 0 if none
    dlsr: int  # delay since that SR, 1/65536 s


class SenderReport(NamedTuple):
    ssrc: int
    ntp_time: int  # 64-bit NTP timestamp
    rtp_timestamp: int
    packets: int
    octets: int
    blocks: list[ReportBlock]


class ReceiverReport(NamedTuple):
    ssrc: int
    blocks: list[ReportBlock]


class Pli(NamedTuple):
    """Picture Loss Indication: the subscriber needs a keyframe."""

    sender_ssrc: int
    media_ssrc: int


class Fir(NamedTuple):
    """Full Intra Request: ``entries`` are (media SSRC, command sequence number); a
    repeated sequence number is the same request again and must not trigger twice."""

    sender_ssrc: int
    entries: list[tuple[int, int]]


class Remb(NamedTuple):
    """Receiver Estimated Maximum Bitrate for the listed media SSRCs."""

    sender_ssrc: int
    bitrate: int
    ssrcs: list[int]


# ---------------------------------------------------------------------- parsing


def iter_packets(data: BytesLike) -> Iterator[tuple[int, int, int, int]]:
    """Walk a compound RTCP packet, yielding ``(packet_type, fmt_or_count, offset,
    length)`` per sub-packet; ``length`` includes the 4-byte header and excludes RTCP
    padding. Stops silently at the first malformed sub-packet (wrong version, length
    beyond the datagram, bad padding) and keeps what came before it."""
    n = len(data)
    pos = 0
    while pos + RTCP_HEADER_SIZE <= n:
        b0 = data[pos]
        if b0 & 0xC0 != 0x80:
            return
        length = (((data[pos + 2] << 8) | data[pos + 3]) + 1) << 2
        end = pos + length
        if end > n:
            return
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > length - RTCP_HEADER_SIZE:
                return
            length -= pad
        yield data[pos + 1], b0 & 0x1F, pos, length
        pos = end


def _bounds(data: BytesLike, offset: int, length: int, packet_type: int, minimum: int) -> int:
    """End of the sub-packet if it is of ``packet_type`` and at least ``minimum`` bytes, else -1."""
    end = offset + length
    if offset < 0 or length < minimum or end > len(data) or data[offset + 1] != packet_type:
        return -1
    return end


def parse_nack(data: BytesLike, offset: int, length: int) -> tuple[int, list[int]] | None:
    """Generic NACK (RTPFB fmt 1): ``(media_ssrc, lost_seqs)``, the PID of each FCI
    followed by every bit set in its BLP, all mod 2^16. ``None`` if the sub-packet is
    not a well-formed generic NACK."""
    end = _bounds(data, offset, length, RTCP_RTPFB, 12)
    if end < 0 or data[offset] & 0x1F != RTPFB_NACK:
        return None
    media_ssrc = _U32.unpack_from(data, offset + 8)[0]
    seqs: list[int] = []
    append = seqs.append
    pos = offset + 12
    while pos + 4 <= end:
        pid, blp = _PID_BLP.unpack_from(data, pos)
        append(pid)
        d = 1
        while blp:
            if blp & 1:
                append((pid + d) & SEQ_MASK)
            blp >>= 1
            d += 1
        pos += 4
    return media_ssrc, seqs


def parse_psfb(data: BytesLike, offset: int, length: int) -> Pli | Fir | Remb | None:
    """Payload-specific feedback the SFU acts on: PLI (fmt 1), FIR (fmt 4) or REMB
    (fmt 15 with the "REMB" identifier). ``None`` for anything else or garbage."""
    end = _bounds(data, offset, length, RTCP_PSFB, 12)
    if end < 0:
        return None
    fmt = data[offset] & 0x1F
    _, _, _, sender_ssrc, media_ssrc = _FEEDBACK.unpack_from(data, offset)
    if fmt == PSFB_PLI:
        return Pli(sender_ssrc, media_ssrc)
    if fmt == PSFB_FIR:
        entries = []
        for pos in range(offset + 12, end - 7, 8):
            entries.append((_U32.unpack_from(data, pos)[0], data[pos + 4]))
        return Fir(sender_ssrc, entries) if entries else None
    if fmt == PSFB_AFB:
        pos = offset + 12
        if end - pos < 8 or bytes(data[pos : pos + 4]) != b"REMB":
            return None
        count = data[pos + 4]
        if pos + 8 + 4 * count > end:
            return None
        b5 = data[pos + 5]
        bitrate = (((b5 & 0x03) << 16) | (data[pos + 6] << 8) | data[pos + 7]) << (b5 >> 2)
        ssrcs = [_U32.unpack_from(data, pos + 8 + 4 * i)[0] for i in range(count)]
        return Remb(sender_ssrc, bitrate, ssrcs)
    return None


def _parse_blocks(data: BytesLike, pos: int, end: int, count: int) -> list[ReportBlock] | None:
    if pos + count * REPORT_BLOCK_SIZE > end:
        return None
    blocks = []
    for _ in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr))
        pos += REPORT_BLOCK_SIZE
    return blocks


def parse_sr(data: BytesLike, offset: int, length: int) -> SenderReport | None:
    """Sender report (PT 200) with its report blocks; ``None`` if malformed."""
    end = _bounds(data, offset, length, RTCP_SR, 28)
    if end < 0:
        return None
    ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(data, offset + 4)
    blocks = _parse_blocks(data, offset + 28, end, data[offset] & 0x1F)
    if blocks is None:
        return None
    return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks)


def parse_rr(data: BytesLike, offset: int, length: int) -> ReceiverReport | None:
    """Receiver report (PT 201) with its report blocks; ``None`` if malformed."""
    end = _bounds(data, offset, length, RTCP_RR, 8)
    if end < 0:
        return None
    blocks = _parse_blocks(data, offset + 8, end, data[offset] & 0x1F)
    if blocks is None:
        return None
    return ReceiverReport(_U32.unpack_from(data, offset + 4)[0], blocks)


# ---------------------------------------------------------------------- building


def _header(packet_type: int, count: int, body_len: int) -> bytes:
    return _HEADER.pack(0x80 | count, packet_type, body_len >> 2)


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """PLI (RFC 4585 §6.3.1): ask the publisher of ``media_ssrc`` for a keyframe."""
    return _FEEDBACK.pack(0x80 | PSFB_PLI, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def build_fir(sender_ssrc: int, media_ssrc: int, seq_nr: int) -> bytes:
    """FIR (RFC 5104 §4.3.1). The common header's media SSRC is 0 by the RFC; the
    target goes into the FCI. Increment ``seq_nr`` (mod 256) per new request."""
    return _FEEDBACK.pack(0x80 | PSFB_FIR, RTCP_PSFB, 4, sender_ssrc, 0) + struct.pack(
        "!IB3x", media_ssrc, seq_nr & 0xFF
    )


def build_nack(sender_ssrc: int, media_ssrc: int, seqs: Iterable[int]) -> bytes:
    """Generic NACK (RFC 4585 §6.2.1) for the given lost sequence numbers, packed into
    as few PID+BLP pairs as possible. Ordering is wrap-aware (65535 comes before 0):
    numbers are sorted relative to the first one, assuming they span < 2^15."""
    unique = {s & SEQ_MASK for s in seqs}
    body = bytearray(_U32.pack(sender_ssrc) + _U32.pack(media_ssrc))
    if unique:
        ref = next(iter(unique))
        ordered = sorted(unique, key=lambda s: (s - ref + 0x8000) & SEQ_MASK)
        pid = ordered[0]
        blp = 0
        for s in ordered[1:]:
            d = (s - pid) & SEQ_MASK
            if d <= 16:
                blp |= 1 << (d - 1)
            else:
                body += _PID_BLP.pack(pid, blp)
                pid, blp = s, 0
        body += _PID_BLP.pack(pid, blp)
    return _header(RTCP_RTPFB, RTPFB_NACK, len(body)) + body


def build_remb(sender_ssrc: int, bitrate_bps: int, ssrcs: Iterable[int]) -> bytes:
    """REMB (PSFB fmt 15): the bandwidth the SFU can receive for ``ssrcs``; browsers'
    encoders ramp up only with such feedback when transport-cc is not negotiated.
    The bitrate is rounded down to an 18-bit mantissa and 6-bit exponent."""
    ssrc_list = list(ssrcs)[:255]
    mantissa = max(0, int(bitrate_bps))
    exponent = 0
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exponent += 1
    if exponent > 63:
        exponent, mantissa = 63, 0x3FFFF
    body = _U32.pack(sender_ssrc) + _U32.pack(0) + b"REMB"
    body += bytes((len(ssrc_list), (exponent << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF))
    body += b"".join(_U32.pack(s) for s in ssrc_list)
    return _header(RTCP_PSFB, PSFB_AFB, len(body)) + body


def _pack_block(block: Iterable[int]) -> bytes:
    ssrc, fraction, lost, highest, jitter, lsr, dlsr = block
    lost = max(-0x800000, min(lost, 0x7FFFFF)) & 0xFFFFFF
    return _REPORT_BLOCK.pack(
        ssrc & TS_MASK,
        ((fraction & 0xFF) << 24) | lost,
        highest & TS_MASK,
        min(max(jitter, 0), TS_MASK),
        lsr & TS_MASK,
        min(max(dlsr, 0), TS_MASK),
    )


def build_sr(
    ssrc: int,
    ntp_time_64: int,
    rtp_ts: int,
    packets: int,
    octets: int,
    blocks: Iterable[ReportBlock] = (),
) -> bytes:
    """Sender report for an outgoing stream. ``ntp_time_64`` and ``rtp_ts`` must be the
    same instant (extrapolate the last sent timestamp to now) so the subscriber can
    compute RTT from its RR and lip-sync audio and video. Counters wrap at 2^32.
    At most 31 report blocks fit; extra blocks are dropped (send an RR for them)."""
    packed = [_pack_block(b) for b in blocks][:MAX_REPORT_BLOCKS]
    body = _SENDER_INFO.pack(
        ssrc & TS_MASK, ntp_time_64 & 0xFFFFFFFFFFFFFFFF, rtp_ts & TS_MASK, packets & TS_MASK, octets & TS_MASK
    ) + b"".join(packed)
    return _header(RTCP_SR, len(packed), len(body)) + body


def build_rr(ssrc: int, blocks: Iterable[ReportBlock]) -> bytes:
    """Receiver report(s) for the streams the SFU receives, as one compound packet:
    more than 31 blocks are split over several RR sub-packets."""
    packed = [_pack_block(b) for b in blocks]
    out = bytearray()
    sender = _U32.pack(ssrc & TS_MASK)
    for i in range(0, max(len(packed), 1), MAX_REPORT_BLOCKS):
        chunk = packed[i : i + MAX_REPORT_BLOCKS]
        body = sender + b"".join(chunk)
        out += _header(RTCP_RR, len(chunk), len(body)) + body
    return bytes(out)


def build_sdes(ssrc: int, cname: str) -> bytes:
    """SDES with one CNAME chunk: RFC 3550 compound packets (SR/RR + SDES) for peers
    that insist on them."""
    text = cname.encode()[:255]
    chunk = _U32.pack(ssrc & TS_MASK) + bytes((1, len(text))) + text
    chunk += b"\x00" * (4 - len(chunk) % 4)  # end-of-list item + padding to 32 bits
    return _header(RTCP_SDES, 1, len(chunk)) + chunk


# ---------------------------------------------------------------------- clocks


def ntp_now() -> int:
    """Wall clock as a 64-bit NTP timestamp (seconds since 1900 << 32 | fraction).
    Integer arithmetic on ``time.time_ns``: no float rounding, no ``datetime`` (aiortc's
    ``current_ntp_time`` costs ~1 µs, notes/aiortc-sfu.md §5a)."""
    ns = time.time_ns()
    seconds, rest = divmod(ns, 1_000_000_000)
    return ((seconds + NTP_EPOCH_OFFSET) << 32) | ((rest << 32) // 1_000_000_000)


def ntp_middle32(ntp_time_64: int) -> int:
    """The compact NTP form used in LSR (RFC 3550 §6.4.1)."""
    return (ntp_time_64 >> 16) & TS_MASK


# ---------------------------------------------------------------------- receive statistics

MAX_DROPOUT: Final = 3000
MAX_MISORDER: Final = 100


class ReceiveStats:
    """RFC 3550 reception statistics of one incoming SSRC, for the RR the SFU sends
    to its publisher (without it the publisher's congestion control and RTT stats see
    nothing).

    ``add(seq, rtp_ts, arrival)`` per packet, with ``arrival`` in seconds on a
    monotonic clock (the same clock for ``on_sr`` and ``report_block``). Sequence
    tracking follows appendix A.1 (cycles, resync after two consecutive packets
    jump > 3000 ahead) minus the probation period. Jitter (A.8) is updated from
    in-order packets whose timestamp differs from the previous in-order one, as
    libwebrtc does: packets of one video frame share a timestamp but are sent in a
    burst, and counting them would report packetization as jitter.
    """

    __slots__ = (
        "ssrc",
        "clock_rate",
        "base_seq",
        "max_seq",
        "cycles",
        "bad_seq",
        "received",
        "expected_prior",
        "received_prior",
        "jitter",
        "_last_ts",
        "_last_arrival",
        "_lsr",
        "_sr_arrival",
        "_started",
    )

    def __init__(self, ssrc: int, clock_rate: int) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.base_seq = 0
        self.max_seq = 0
        self.cycles = 0  # count of wraps, times 2^16 (RFC 3550 A.1)
        self.bad_seq = SEQ_MOD + 1
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.jitter = 0.0  # RTP timestamp units
        self._last_ts = -1
        self._last_arrival = 0.0
        self._lsr = 0
        self._sr_arrival = 0.0
        self._started = False

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.received_prior = 0
        self.expected_prior = 0
        self._last_ts = -1

    def add(self, seq: int, rtp_ts: int, arrival: float) -> bool:
        """Account one received packet; ``False`` if it was not counted (first packet
        of a suspected sequence-number jump)."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self.received = 1
            self._last_ts = rtp_ts
            self._last_arrival = arrival
            return True
        udelta = (seq - self.max_seq) & SEQ_MASK
        if udelta < MAX_DROPOUT:
            if udelta == 0:
                self.received += 1  # duplicate
                return True
            if seq < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = seq
            # In order: interarrival jitter (A.8), with the timestamp delta taken mod 2^32.
            last_ts = self._last_ts
            if rtp_ts != last_ts:
                if last_ts >= 0:
                    dts = (rtp_ts - last_ts) & TS_MASK
                    if dts >= 0x80000000:
                        dts -= 1 << 32
                    d = (arrival - self._last_arrival) * self.clock_rate - dts
                    if d < 0:
                        d = -d
                    self.jitter += (d - self.jitter) / 16.0
                self._last_ts = rtp_ts
                self._last_arrival = arrival
        elif udelta <= SEQ_MOD - MAX_MISORDER:
            if seq != self.bad_seq:
                self.bad_seq = (seq + 1) & SEQ_MASK
                return False
            # Two sequential packets after a big jump: the source restarted; resync.
            self._init_seq(seq)
        # else: reordered or duplicate within MAX_MISORDER, counted as received
        self.received += 1
        return True

    def on_sr(self, ntp_time_64: int, arrival: float | None = None) -> None:
        """Remember the publisher's last SR (for LSR/DLSR, which give it the RTT)."""
        self._lsr = ntp_middle32(ntp_time_64)
        self._sr_arrival = time.monotonic() if arrival is None else arrival

    @property
    def extended_max_seq(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.cycles + self.max_seq - self.base_seq + 1 if self._started else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost (negative with duplicates), as in the RR."""
        return self.expected - self.received

    def report_block(self, now: float | None = None) -> ReportBlock:
        """The report block for the next RR. Fraction lost covers the interval since
        the previous call, so call it exactly once per RR sent."""
        expected = self.expected
        expected_interval = expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = (lost_interval << 8) // expected_interval if expected_interval > 0 and lost_interval > 0 else 0
        dlsr = 0
        if self._lsr:
            now = time.monotonic() if now is None else now
            dlsr = max(0, int((now - self._sr_arrival) * 65536))
        return ReportBlock(
            self.ssrc,
            min(fraction, 255),
            max(-0x800000, min(expected - self.received, 0x7FFFFF)),
            self.extended_max_seq & TS_MASK,
            int(self.jitter),
            self._lsr,
            dlsr,
        )
