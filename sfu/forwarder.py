"""The per-packet path of a worker: one ``Router`` per room.

Everything a forwarded packet touches is here, deliberately plain: a dict lookup
by SSRC, a ring-buffer store for NACKs, one header rewrite and one ``sendto`` per
subscriber slot. No logging, no awaits, no per-packet objects besides the output
bytes. Control traffic (keyframe requests, NACK answers, reports) arrives through
callbacks and is comparatively rare.

Terms: a *source* is one incoming track of a publisher (its audio, or one video
resolution, each its own SSRC); a *slot* is one outgoing track of a subscriber's
peer connection, fixed at negotiation time, onto which a source is mapped (so a
change of sources needs no renegotiation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sfu.downtrack import DownTrack
from sfu.nack_cache import PacketCache
from sfu.rtcp import ReceiveStats
from sfu.rtp import audio_level, h264_is_keyframe, parse, vp8_is_keyframe

KEYFRAME_REQUEST_MIN_INTERVAL_S = 0.3
NACK_WINDOW = 64


@dataclass(eq=False, slots=True)
class Source:
    id: int
    ssrc: int
    kind: str  # "audio" | "video"
    session_id: str
    stream_type: str  # "main" | "auxiliary"
    resolution_id: str | None
    codec: str  # "vp8" | "h264" | "opus" ...
    clock_rate: int
    request_keyframe_upstream: Callable[[int], None]
    request_nack_upstream: Callable[[int, list[int]], None]
    user_id: str = ""
    level_ext: int = 0  # RFC 6464 header extension id (0: none negotiated)
    bitrate: int = 0  # kbit/s announced by the publisher (video layers)
    pixels: int = 0  # width * height (video layers)
    cache: PacketCache = field(default_factory=lambda: PacketCache(512))
    stats: ReceiveStats | None = None
    slots: list[Slot] = field(default_factory=list)  # currently fed by this source
    waiting: list[Slot] = field(default_factory=list)  # switching to this source at its next keyframe
    packets: int = 0
    octets: int = 0
    max_seq: int = -1
    last_keyframe_request: float = 0.0
    last_packet_at: float = 0.0
    sr: tuple[float, int] | None = None  # (our wall time when the publisher's SR arrived, its RTP ts)
    level_sum: int = 0  # RFC 6464 levels of this tick (top-N ranking)
    level_n: int = 0
    loudness: float = 0.0

    def request_keyframe(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now - self.last_keyframe_request >= KEYFRAME_REQUEST_MIN_INTERVAL_S:
            self.last_keyframe_request = now
            self.request_keyframe_upstream(self.ssrc)


@dataclass(eq=False, slots=True)
class Slot:
    """One outgoing track of a subscriber."""

    kind: str
    mid: str
    ssrc: int
    downtrack: DownTrack | None = None
    send: Callable[[bytes], None] | None = None
    source: Source | None = None
    pending: Source | None = None
    last_sent_at: float = 0.0
    # What the subscriber asked for on this slot (the source may be a lower layer of
    # the same stream while bandwidth adaptation holds it down).
    stream_key: tuple[str, str] | None = None  # (publisher session, stream type)
    requested: str | None = None  # resolution id
    floor_pixels: int = 0
    step: int = 0  # layers below the requested one
    top_n: bool = False  # an audio slot driven by the room's top-N ranking


class Router:
    def __init__(self) -> None:
        self.by_ssrc: dict[int, Source] = {}
        self.by_id: dict[int, Source] = {}
        self._next_id = 1
        self.rank_audio = False  # set while the room has top-N listeners

    # ------------------------------------------------------------------ the per-packet path

    def on_rtp(self, data: bytes) -> None:
        if len(data) < 12:
            return
        src = self.by_ssrc.get(int.from_bytes(data[8:12], "big"))
        if src is None:
            return
        seq = (data[2] << 8) | data[3]
        src.cache.put(seq, data)
        src.packets += 1
        src.octets += len(data)
        now = time.monotonic()
        src.last_packet_at = now
        stats = src.stats
        if stats is not None:
            stats.add(seq, int.from_bytes(data[4:8], "big"), now)
        # Upstream loss: NACK a small gap at once (the publisher retransmits plain RTP).
        last = src.max_seq
        if last >= 0:
            gap = (seq - last) & 0xFFFF
            if gap == 1:
                src.max_seq = seq
            elif 1 < gap < NACK_WINDOW:
                src.max_seq = seq
                src.request_nack_upstream(src.ssrc, [(last + i) & 0xFFFF for i in range(1, gap)])
        else:
            src.max_seq = seq
        if self.rank_audio and src.level_ext:
            level = audio_level(data, src.level_ext)
            if level is not None:
                src.level_sum += level[1]
                src.level_n += 1
        if src.waiting and self._is_keyframe(src, data):
            self._complete_switches(src)
        for slot in src.slots:
            out = slot.downtrack.rewrite(data, src.id)
            if out is not None:
                slot.last_sent_at = now
                slot.send(out)

    @staticmethod
    def _is_keyframe(src: Source, data: bytes) -> bool:
        if src.kind == "audio":
            return True
        parsed = parse(data)
        if parsed is None:
            return False
        start, end = parsed[5], parsed[6]
        if src.codec == "h264":
            return h264_is_keyframe(data, start, end)
        return vp8_is_keyframe(data, start, end)

    def _complete_switches(self, src: Source) -> None:
        still: list[Slot] = []
        for slot in src.waiting:
            if slot.pending is not src:
                continue
            if slot.downtrack is None:
                still.append(slot)  # its transport is not up yet: keep waiting
                continue
            old = slot.source
            if old is not None and slot in old.slots:
                old.slots.remove(slot)
            slot.source = src
            slot.pending = None
            slot.downtrack.switch_to(src.id)
            src.slots.append(slot)
        src.waiting[:] = still

    # ------------------------------------------------------------------ sources

    def add_source(self, **kw) -> Source:
        src = Source(id=self._next_id, **kw)
        self._next_id += 1
        if src.stats is None:
            src.stats = ReceiveStats(src.ssrc, src.clock_rate)
        self.by_ssrc[src.ssrc] = src
        self.by_id[src.id] = src
        return src

    def remove_source(self, src: Source) -> None:
        self.by_ssrc.pop(src.ssrc, None)
        self.by_id.pop(src.id, None)
        for slot in list(src.slots) + list(src.waiting):
            self.detach(slot)

    # ------------------------------------------------------------------ slots

    def attach(self, slot: Slot, src: Source) -> None:
        """Map ``src`` onto ``slot``. Audio switches at once; video keeps the old
        source until a keyframe of the new one arrives (requested now), so the
        subscriber's decoder never sees a frame it cannot decode."""
        if slot.source is src and slot.pending is None:
            return
        if slot.pending is not None and slot in slot.pending.waiting:
            slot.pending.waiting.remove(slot)
        slot.pending = src
        src.waiting.append(slot)
        if src.kind == "audio":
            if slot.downtrack is not None:
                self._complete_switches(src)
        else:
            src.request_keyframe()

    def detach(self, slot: Slot) -> None:
        if slot.source is not None and slot in slot.source.slots:
            slot.source.slots.remove(slot)
        if slot.pending is not None and slot in slot.pending.waiting:
            slot.pending.waiting.remove(slot)
        slot.source = None
        slot.pending = None

    def slot_ready(self, slot: Slot) -> None:
        """The subscriber's transport connected: start what was waiting for it."""
        src = slot.pending
        if src is None:
            return
        if src.kind == "audio":
            self._complete_switches(src)
        else:
            src.last_keyframe_request = 0.0
            src.request_keyframe()

    # ------------------------------------------------------------------ feedback from subscribers

    def on_nack(self, slot: Slot, seqs: list[int]) -> None:
        dt = slot.downtrack
        send = slot.send
        if dt is None or send is None:
            return
        for seq in seqs:
            found = dt.source_for(seq)
            if found is None:
                continue
            src = self.by_id.get(found[0])
            if src is None:
                continue
            data = src.cache.get(found[1])
            if data is not None:
                out = dt.rewrite_retransmit(data, seq)
                if out is not None:
                    send(out)

    def on_keyframe_request(self, slot: Slot) -> None:
        src = slot.pending or slot.source
        if src is not None and src.kind == "video":
            src.request_keyframe()

    def retry_keyframes(self, now: float) -> None:
        """Called a few times a second: sources someone waits on get asked again."""
        for src in self.by_id.values():
            if src.waiting and src.kind == "video":
                src.request_keyframe(now)
