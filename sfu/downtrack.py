"""Per-subscriber rewrite state of one outgoing RTP stream (one subscriber slot).

A slot is negotiated once with a fixed SSRC and payload type; over its lifetime it
carries packets from different *sources* (publishers, simulcast resolutions, the
current top-N speakers). The subscriber must see one continuous stream: its jitter
buffer and decoder key on SSRC, sequence numbers (loss detection, NACK), RTP
timestamps (playout), and for VP8 on picture IDs / TL0PICIDX (browsers use them to
detect missing frames). ``DownTrack`` maps every source packet into that numbering
with a handful of integer offsets, re-based whenever the source changes.

Design points:

* The caller decides *when* to switch (on a keyframe of the new source; see
  ``sfu.forwarder``); ``switch_to`` only arms the switch, which happens at the next
  packet of that source. Until then the old source keeps flowing, so the subscriber
  never stalls waiting for a keyframe.
* Inside one source, out seq = source seq + offset (mod 2^16) for every packet, so
  reordered packets, duplicates and upstream retransmissions land on the number the
  subscriber expects. Packets older than the first forwarded packet of the current
  source are dropped: their numbers belong to the previous source's range.
* The header extension block is stripped: extension ids are negotiated per
  transport, so the publisher's ids mean nothing to the subscriber (CSRCs and RTP
  padding are kept).
* NACKs from the subscriber are resolved through ``source_for`` to a packet in the
  *source's* cache (one cache per source, not per subscriber: memory divided by the
  fan-out, notes/aiortc-sfu.md §5d) and resent with ``rewrite_retransmit``.

No allocation per packet apart from the output packet itself; no logging, no asyncio.
"""

from __future__ import annotations

import struct
import time
from typing import Final

from sfu.rtp import SEQ_MASK, SEQ_MOD, TS_MASK, BytesLike, parse, vp8_picture_id, vp8_tl0picidx

MAX_SEGMENTS: Final = 8
"""Source segments remembered for NACK mapping. A NACK older than 8 switches back is
useless anyway: the subscriber's NACK window is ~1 s and a switch needs a keyframe."""

_FIXED = struct.Struct("!BBHI")  # V/P/X/CC, M/PT, seq, ts
_HEADER = struct.Struct("!BBHII")
# Output header plus the rewritten start of a VP8 payload descriptor (X=1, I=1 with a
# 15-bit picture ID, optionally L=1): the common WebRTC shape gets one pack and one slice.
_HEADER_VP8 = struct.Struct("!BBHIIBBH")
_HEADER_VP8_TL0 = struct.Struct("!BBHIIBBHB")
_VP8_DESC = struct.Struct("!BBH")
_monotonic = time.monotonic
# Bound methods as globals: one lookup less per call on the per-packet path.
_unpack_fixed = _FIXED.unpack_from
_unpack_vp8_desc = _VP8_DESC.unpack_from
_pack_header = _HEADER.pack
_pack_header_vp8 = _HEADER_VP8.pack
_pack_header_vp8_tl0 = _HEADER_VP8_TL0.pack

# Indexes into a segment record [ext_out_start, source_id, seq_off, ts_off, pid_off, tl0_off].
_START, _SOURCE, _SEQ_OFF, _TS_OFF, _PID_OFF, _TL0_OFF = range(6)


class DownTrack:
    """Rewrite state of one outgoing stream.

    Construct with the slot's own ``ssrc`` and negotiated ``payload_type``, the codec
    ``clock_rate`` (to turn wall time into RTP ticks when switching sources) and
    ``is_vp8`` (enables picture ID / TL0PICIDX rewriting).

    ``min_ts_gap`` is the smallest timestamp step inserted at a source switch. The
    default is one tick for 90 kHz video (any increase is a valid new frame) and
    20 ms for audio clock rates: an audio packet stamped inside the previous packet's
    20 ms frame would overlap it and the receiver would discard it as late.
    ``initial_seq``/``initial_ts`` fix the numbering of the first packet; by default
    the first source's own numbers are kept (they are random per RFC 3550 already).

    Counters for the sender report: ``packets``, ``bytes`` (payload octets, as the SR
    wants), ``last_out_seq``/``last_out_ts`` (newest packet sent, retransmissions
    excluded); also ``retransmits``, ``last_out_picture_id``, ``last_out_tl0picidx``.
    """

    __slots__ = (
        "ssrc",
        "payload_type",
        "clock_rate",
        "is_vp8",
        "min_ts_gap",
        "packets",
        "bytes",
        "retransmits",
        "last_out_picture_id",
        "last_out_tl0picidx",
        "source_id",
        "pending_id",
        "_initial_seq",
        "_initial_ts",
        "_seq_off",
        "_ts_off",
        "_pid_off",
        "_tl0_off",
        "_src_max",
        "_src_ts",
        "_span",
        "_seg_start",
        "_ts_at_ms",
        "_segments",
        "_max_segments",
    )

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        clock_rate: int,
        is_vp8: bool,
        *,
        min_ts_gap: int | None = None,
        initial_seq: int | None = None,
        initial_ts: int | None = None,
        max_segments: int = MAX_SEGMENTS,
    ) -> None:
        self.ssrc = ssrc & TS_MASK
        self.payload_type = payload_type & 0x7F
        self.clock_rate = clock_rate
        self.is_vp8 = is_vp8
        if min_ts_gap is None:
            min_ts_gap = 1 if clock_rate >= 90000 else max(1, clock_rate // 50)
        self.min_ts_gap = min_ts_gap
        self.packets = 0
        self.bytes = 0
        self.retransmits = 0
        self.last_out_picture_id = -1  # 15-bit space; -1 until a picture ID was sent
        self.last_out_tl0picidx = -1
        #: Source currently forwarded, and the one armed by ``switch_to``.
        self.source_id: int | None = None
        self.pending_id: int | None = None
        self._initial_seq = initial_seq
        self._initial_ts = initial_ts
        # Current segment: out = (source value + offset) mod 2^n.
        self._seq_off = 0
        self._ts_off = 0
        self._pid_off = -1  # -1: not known yet (set at the segment's first picture ID)
        self._tl0_off = -1
        self._src_max = 0  # newest source seq forwarded in this segment
        self._src_ts = 0  # its timestamp
        self._span = -1  # extended seq distance from the segment's first packet to _src_max
        self._seg_start = 0  # extended out seq of the segment's first packet
        self._ts_at_ms = 0.0  # wall time (ms) at which the newest timestamp was first sent
        self._segments: list[list[int]] = []
        self._max_segments = max(1, max_segments)

    @property
    def last_out_seq(self) -> int:
        """Highest sequence number sent (retransmissions do not move it)."""
        return (self._src_max + self._seq_off) & SEQ_MASK

    @property
    def last_out_ts(self) -> int:
        """Timestamp of the newest packet sent: with the time it was sent, the base for
        extrapolating the SR's RTP timestamp."""
        return (self._src_ts + self._ts_off) & TS_MASK

    def out_timestamp(self, source_ts: int) -> int:
        """A source RTP timestamp in this track's numbering (current segment): lets a
        sender report carry the publisher's own RTP/NTP mapping, so a subscriber can
        line up the audio and video of one publisher."""
        return (source_ts + self._ts_off) & TS_MASK

    # ------------------------------------------------------------------ switching

    def switch_to(self, source_id: int) -> None:
        """Arm a switch: the next packet of ``source_id`` becomes the first of a new
        segment (seq/ts/picture ID continue from the last packet sent). Call it when
        that packet is a keyframe. Switching to the current source cancels a pending
        switch."""
        self.pending_id = None if source_id == self.source_id else source_id

    def _rebase(self, source_id: int, seq: int, ts: int, now_ms: float | None) -> None:
        now = _monotonic() * 1000.0 if now_ms is None else now_ms
        if self._segments:
            out_seq = (self.last_out_seq + 1) & SEQ_MASK
            first = self._seg_start + self._span + 1
            gap = int((now - self._ts_at_ms) * self.clock_rate / 1000.0)
            if gap < self.min_ts_gap:
                gap = self.min_ts_gap
            out_ts = (self.last_out_ts + gap) & TS_MASK
        else:
            out_seq = seq if self._initial_seq is None else self._initial_seq & SEQ_MASK
            out_ts = ts if self._initial_ts is None else self._initial_ts & TS_MASK
            first = SEQ_MOD + out_seq  # extended numbering starts at 2^16: never negative
        self._seq_off = (out_seq - seq) & SEQ_MASK
        self._ts_off = (out_ts - ts) & TS_MASK
        self._pid_off = -1
        self._tl0_off = -1
        # The previous source seq is taken to be seq-1, so this packet takes the in-order path.
        self._src_max = (seq - 1) & SEQ_MASK
        self._src_ts = ts
        self._span = -1
        self._seg_start = first
        self._ts_at_ms = now
        self.source_id = source_id
        self.pending_id = None
        segments = self._segments
        segments.append([first, source_id, self._seq_off, self._ts_off, -1, -1])
        if len(segments) > self._max_segments:
            del segments[0]

    def _init_pid_off(self, pid: int) -> int:
        last = self.last_out_picture_id
        off = (last + 1 - pid) & 0x7FFF if last >= 0 else 0
        self._pid_off = off
        self._segments[-1][_PID_OFF] = off
        return off

    def _init_tl0_off(self, tl0: int) -> int:
        last = self.last_out_tl0picidx
        off = (last + 1 - tl0) & 0xFF if last >= 0 else 0
        self._tl0_off = off
        self._segments[-1][_TL0_OFF] = off
        return off

    # ------------------------------------------------------------------ the per-packet path

    def rewrite(self, data: BytesLike, source_id: int, now_ms: float | None = None) -> bytes | None:
        """Return ``data`` rewritten for this subscriber, or ``None`` to drop it.

        Dropped: packets of any source other than the current one (unless it is the
        armed ``switch_to`` target, which then becomes current), packets older than
        the current source's first forwarded packet, and malformed packets.
        ``now_ms`` (monotonic milliseconds) is only read when a new frame starts or a
        switch happens; ``time.monotonic`` is used when it is not given.
        """
        if source_id != self.source_id:
            if source_id != self.pending_id:
                return None
            return self._switch_and_rewrite(data, source_id, now_ms)
        n = len(data)
        if n < 12:
            return None
        b0, b1, seq, ts = _unpack_fixed(data)
        if b0 & 0xC0 != 0x80:
            return None
        start = 12 + ((b0 & 0x0F) << 2)
        if b0 & 0x10:
            if n < start + 4:
                return None
            start += 4 + (((data[start + 2] << 8) | data[start + 3]) << 2)
        if start > n:
            return None
        end = n
        if b0 & 0x20:
            pad = data[n - 1]
            if pad == 0 or pad > n - start:
                return None
            end = n - pad

        src_max = self._src_max
        d = (seq - src_max) & 0xFFFF
        if 0 < d < 0x8000:
            newer = True
            self._src_max = seq
            self._span += d
            if ts != self._src_ts:
                self._src_ts = ts
                self._ts_at_ms = _monotonic() * 1000.0 if now_ms is None else now_ms
        elif (src_max - seq) & 0xFFFF > self._span:
            return None  # from before this source's first packet: that range belongs to the previous source
        else:
            newer = False  # reordered, duplicate or retransmitted upstream: same mapping
        out_seq = (seq + self._seq_off) & 0xFFFF
        out_ts = (ts + self._ts_off) & 0xFFFFFFFF
        b1 = (b1 & 0x80) | self.payload_type
        self.packets += 1
        self.bytes += end - start

        if not b0 & 0x0F:  # no CSRCs: one pack for the header, one slice for the payload
            if not self.is_vp8:
                return _pack_header(b0 & 0xEF, b1, out_seq, out_ts, self.ssrc) + data[start:]
            if start + 4 <= end:
                d0, x, word = _unpack_vp8_desc(data, start)
                if d0 & 0x80 and x & 0x80 and word & 0x8000:  # X, I, 15-bit picture ID
                    off = self._pid_off
                    if off < 0:
                        off = self._init_pid_off(word & 0x7FFF)
                    pid = (word + off) & 0x7FFF
                    if newer:
                        self.last_out_picture_id = pid
                    if not x & 0x40:
                        return (
                            _pack_header_vp8(b0 & 0xEF, b1, out_seq, out_ts, self.ssrc, d0, x, 0x8000 | pid)
                            + data[start + 4 :]
                        )
                    if start + 5 <= end:
                        tl0 = data[start + 4]
                        off = self._tl0_off
                        if off < 0:
                            off = self._init_tl0_off(tl0)
                        tl0 = (tl0 + off) & 0xFF
                        if newer:
                            self.last_out_tl0picidx = tl0
                        return (
                            _pack_header_vp8_tl0(b0 & 0xEF, b1, out_seq, out_ts, self.ssrc, d0, x, 0x8000 | pid, tl0)
                            + data[start + 5 :]
                        )
        return self._rewrite_general(data, b0, b1, start, end, out_seq, out_ts, newer, None)

    def _switch_and_rewrite(self, data: BytesLike, source_id: int, now_ms: float | None) -> bytes | None:
        parsed = parse(data)
        if parsed is None:
            return None  # a malformed packet must not start a segment
        self._rebase(source_id, parsed[1], parsed[2], now_ms)
        return self.rewrite(data, source_id, now_ms)

    def _rewrite_general(
        self,
        data: BytesLike,
        b0: int,
        b1: int,
        start: int,
        end: int,
        out_seq: int,
        out_ts: int,
        newer: bool,
        segment: list[int] | None,
    ) -> bytes:
        """Any shape of packet: CSRCs, 7-bit picture IDs, descriptors without picture
        ID, truncated descriptors. ``segment`` is given for retransmissions (offsets of
        the segment the packet was first sent in, and no state changes)."""
        hdr = 12 + ((b0 & 0x0F) << 2)
        out = bytearray(data)
        if start != hdr:
            del out[hdr:start]
        _HEADER.pack_into(out, 0, b0 & 0xEF, b1, out_seq, out_ts, self.ssrc)
        if not self.is_vp8:
            return bytes(out)
        shift = start - hdr
        found = vp8_picture_id(data, start, end)
        if found is not None:
            pos, bits = found
            src_pid = (((data[pos] & 0x7F) << 8) | data[pos + 1]) if bits == 15 else data[pos]
            off = self._pid_off if segment is None else segment[_PID_OFF]
            if off < 0 and segment is None:
                off = self._init_pid_off(src_pid)
            if off >= 0:
                pid = (src_pid + off) & 0x7FFF
                if bits == 15:
                    out[pos - shift] = 0x80 | (pid >> 8)
                    out[pos + 1 - shift] = pid & 0xFF
                    if newer:
                        self.last_out_picture_id = pid
                else:
                    out[pos - shift] = pid & 0x7F
                    if newer:
                        # Unwrap the 7-bit value against the last ID, so a later 15-bit source
                        # continues from a monotonic count rather than from this source's wraps.
                        last = self.last_out_picture_id
                        self.last_out_picture_id = (last + ((pid - last) & 0x7F)) & 0x7FFF if last >= 0 else pid
        pos = vp8_tl0picidx(data, start, end)
        if pos is not None:
            off = self._tl0_off if segment is None else segment[_TL0_OFF]
            if off < 0 and segment is None:
                off = self._init_tl0_off(data[pos])
            if off >= 0:
                tl0 = (data[pos] + off) & 0xFF
                out[pos - shift] = tl0
                if newer:
                    self.last_out_tl0picidx = tl0
        return bytes(out)

    # ------------------------------------------------------------------ retransmissions

    def _segment_for(self, out_seq: int) -> list[int] | None:
        segments = self._segments
        if not segments:
            return None
        back = (self.last_out_seq - out_seq) & SEQ_MASK
        if back >= 0x8000:
            return None  # "in the future": never sent
        ext = self._seg_start + self._span - back
        for seg in reversed(segments):
            if ext >= seg[_START]:
                return seg
        return None  # older than the oldest remembered segment

    def source_for(self, out_seq: int) -> tuple[int, int] | None:
        """Map a sequence number NACKed by the subscriber to ``(source_id, source_seq)``,
        i.e. where to look in the source's ``PacketCache``; ``None`` if it was never
        sent or belongs to a segment no longer remembered (``max_segments``)."""
        seg = self._segment_for(out_seq & SEQ_MASK)
        if seg is None:
            return None
        return seg[_SOURCE], (out_seq - seg[_SEQ_OFF]) & SEQ_MASK

    def rewrite_retransmit(self, data: BytesLike, out_seq: int) -> bytes | None:
        """Rewrite a cached source packet for resending as ``out_seq`` (found through
        ``source_for``), with the offsets of the segment it was first sent in. Returns
        ``None`` if the packet is malformed or is not the packet ``out_seq`` maps to
        (a stale cache entry must never go out under a wrong number). Counts in
        ``packets``/``bytes`` (the SR counts every packet sent) and ``retransmits``."""
        out_seq &= SEQ_MASK
        seg = self._segment_for(out_seq)
        if seg is None:
            return None
        parsed = parse(data)
        if parsed is None:
            return None
        _pt, seq, ts, _ssrc, marker, start, end = parsed
        if (seq + seg[_SEQ_OFF]) & SEQ_MASK != out_seq:
            return None
        self.packets += 1
        self.retransmits += 1
        self.bytes += end - start
        b1 = (0x80 if marker else 0) | self.payload_type
        return self._rewrite_general(data, data[0], b1, start, end, out_seq, (ts + seg[_TS_OFF]) & TS_MASK, False, seg)
