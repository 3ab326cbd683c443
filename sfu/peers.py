"""Peer connections of a worker: a publisher's (the client offers) and a
subscriber's (the worker offers once, with a fixed set of slots).

aiortc does the ICE, DTLS and SDP work; ``sfu.hooks`` hands the packets to the
room's ``Router``. Codecs are narrowed to one per m-line and RTX is never
negotiated: retransmissions are plain RTP on the original SSRC, so the packet
cache and sequence rewriting stay simple.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription

from sfu import hooks
from sfu.downtrack import DownTrack
from sfu.forwarder import Router, Slot, Source
from sfu.rtcp import build_nack, build_pli, build_remb, build_rr, build_sr, ntp_now

log = logging.getLogger("kindling.sfu.peers")


class SdpError(ValueError):
    """The client's SDP cannot be used (answered with 90100023)."""


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def _is_rtx(codec: Any) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


@dataclass
class TrackInfo:
    """What the publisher says about one of its m-lines."""

    mid: str
    kind: str
    resolution_id: str | None = None
    width: int = 0
    height: int = 0
    bitrate: int = 0


AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
# The socket-level ingress (sfu.hooks.tap_socket); KINDLING_SFU_INGRESS=queue keeps
# aiortc's receive queue (for A/B profiling).
DIRECT_INGRESS = os.environ.get("KINDLING_SFU_INGRESS", "direct") == "direct"
# One video codec per deployment: a subscriber slot is negotiated once and can only
# carry what its m-line negotiated, so publishers and slots must agree (R-STR-09:
# H.264 for Firefox-heavy tenants, VP8 otherwise).
VIDEO_CODEC = os.environ.get("KINDLING_VIDEO_CODEC", "vp8").lower()


@dataclass(eq=False)
class Publisher:
    session_id: str
    stream_type: str
    router: Router
    user_id: str = ""
    pc: RTCPeerConnection = field(default_factory=_pc)
    sources: list[Source] = field(default_factory=list)
    rtcp_ssrc: int = field(default_factory=lambda: random.randint(1, 0xFFFFFFFF))
    _tasks: set = field(default_factory=set)
    _transport_of: dict = field(default_factory=dict)
    demand: frozenset | None = None  # resolutions last announced as watched

    async def negotiate(self, offer_sdp: str, tracks: list[TrackInfo]) -> str:
        try:
            parsed = SessionDescription.parse(offer_sdp)
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except Exception as exc:  # aiortc raises many types on bad SDP
            raise SdpError(str(exc)) from None
        self.pc.on("connectionstatechange", self._on_state)
        by_mid = {t.mid: t for t in tracks}
        ssrc_of: dict[str, int] = {}
        for media in parsed.media:
            if media.kind in ("audio", "video") and media.ssrc:
                ssrc_of[media.rtp.muxId] = media.ssrc[0].ssrc
        for transceiver in self.pc.getTransceivers():
            transceiver.direction = "recvonly"
            codecs = [c for c in transceiver._codecs if not _is_rtx(c)]
            if transceiver.kind == "video":
                codecs = [c for c in codecs if c.mimeType.lower() == f"video/{VIDEO_CODEC}"]
                if not codecs:
                    raise SdpError(f"the offer has no {VIDEO_CODEC.upper()} video (this server forwards "
                                   f"{VIDEO_CODEC.upper()})")
            transceiver._codecs = codecs[:1]
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        transports: dict[int, Any] = {}
        for transceiver in self.pc.getTransceivers():
            mid = transceiver.mid
            info = by_mid.get(mid)
            ssrc = ssrc_of.get(mid)
            if info is None or ssrc is None or not transceiver._codecs:
                continue
            codec = transceiver._codecs[0]
            dtls = transceiver.receiver.transport
            transports[id(dtls)] = dtls
            level_ext = next((e.id for e in transceiver._headerExtensions if e.uri == AUDIO_LEVEL_URI), 0)
            src = self.router.add_source(
                ssrc=ssrc,
                kind=transceiver.kind,
                session_id=self.session_id,
                stream_type=self.stream_type,
                resolution_id=info.resolution_id,
                codec=codec.mimeType.split("/")[1].lower(),
                clock_rate=codec.clockRate,
                request_keyframe_upstream=lambda ssrc, d=dtls: self._send_rtcp(d, build_pli(self.rtcp_ssrc, ssrc)),
                request_nack_upstream=lambda ssrc, seqs, d=dtls: self._send_rtcp(
                    d, build_nack(self.rtcp_ssrc, ssrc, seqs)),
                user_id=self.user_id,
                level_ext=level_ext if transceiver.kind == "audio" else 0,
                bitrate=info.bitrate,
                pixels=info.width * info.height,
            )
            self.sources.append(src)
            self._transport_of[src.id] = dtls
        if not transports:
            raise SdpError("the offer has no media this stream announced")
        # Bundled clients share one transport; unbundled ones (BALANCED policy) have one
        # per m-line: every one of them is tapped.
        for dtls in transports.values():
            hooks.tap_ingress(dtls, self.router.on_rtp)

        for transceiver in self.pc.getTransceivers():
            transceiver.receiver.on_sender_report = self._on_sender_report
        self._spawn(self._report_loop())
        return self.pc.localDescription.sdp

    def _on_state(self) -> None:
        log.debug("publisher %s connection %s", self.session_id, self.pc.connectionState)
        if self.pc.connectionState == "connected" and DIRECT_INGRESS:
            for dtls in {id(d): d for d in self._transport_of.values()}.values():
                hooks.tap_socket(dtls, self.router.on_rtp)

    def _on_sender_report(self, ssrc: int, ntp: int, rtp_ts: int) -> None:
        src = self.router.by_ssrc.get(ssrc)
        if src is not None:
            src.sr = (time.time(), rtp_ts)
            if src.stats is not None:
                src.stats.on_sr(ntp)

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _send_rtcp(self, dtls: Any, data: bytes) -> None:
        self._spawn(self._send_async(dtls, data))

    @staticmethod
    async def _send_async(dtls: Any, data: bytes) -> None:
        with contextlib.suppress(ConnectionError, AttributeError):
            await dtls._send_rtp(data)

    async def _report_loop(self) -> None:
        """Receiver reports upstream (one per transport), so the publisher sees loss,
        jitter and RTT."""
        while True:
            await asyncio.sleep(0.5 + random.random())
            by_transport: dict[int, tuple[Any, list]] = {}
            for src in self.sources:
                if src.stats is not None and src.packets:
                    dtls = self._transport_of[src.id]
                    by_transport.setdefault(id(dtls), (dtls, []))[1].append(src.stats.report_block())
            for dtls, blocks in by_transport.values():
                await self._send_async(dtls, build_rr(self.rtcp_ssrc, blocks))
            # REMB: let the publisher's encoder ramp up to what it announced (browsers
            # start low and only raise their bitrate on receiver feedback).
            video = [s for s in self.sources if s.kind == "video" and s.packets]
            if video:
                bps = sum(max(s.bitrate, 300) * 1250 for s in video)  # announced kbit/s + 25 %
                dtls = self._transport_of[video[0].id]
                await self._send_async(dtls, build_remb(self.rtcp_ssrc, bps, [s.ssrc for s in video]))

    async def close(self) -> None:
        for src in self.sources:
            self.router.remove_source(src)
        for task in list(self._tasks):
            task.cancel()
        await self.pc.close()


LOSS_ALPHA = 0.5


@dataclass(eq=False)
class Subscriber:
    session_id: str
    router: Router
    user_id: str = ""
    top_n: bool = False
    pc: RTCPeerConnection = field(default_factory=_pc)
    slots: list[Slot] = field(default_factory=list)
    negotiated: bool = False
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    # Downlink adaptation: loss reported by the subscriber (EWMA of RR fraction lost on
    # video slots), an optional cap (setNetworkBandwidth, kbit/s), when we last moved.
    loss: float = 0.0
    cap_kbps: int | None = None
    last_adapt: float = 0.0
    nacked: int = 0
    _sent_mark: int = 0
    faults: bool = False  # KINDLING_SFU_FAULTS=1: egress goes through a packet dropper
    drop_ratio: float = 0.0
    _drop_acc: float = 0.0

    async def offer(self, video_slots: int, audio_slots: int) -> str:
        video_caps = [c for c in RTCRtpSender.getCapabilities("video").codecs
                      if c.mimeType.lower() == f"video/{VIDEO_CODEC}"]
        audio_caps = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == "audio/opus"]
        for kind, count, caps in (("video", video_slots, video_caps), ("audio", audio_slots, audio_caps)):
            for _ in range(count):
                t = self.pc.addTransceiver(kind, direction="sendonly")
                t.setCodecPreferences(caps)
        self.pc.on("connectionstatechange", self._on_state)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        for t in self.pc.getTransceivers():
            sender = t.sender
            slot = Slot(kind=t.kind, mid=t.mid, ssrc=sender._ssrc)
            sender.on_nack = lambda seqs, slot=slot: self._on_nack(slot, seqs)
            sender.on_keyframe_request = lambda slot=slot: self.router.on_keyframe_request(slot)
            sender.sender_report = lambda slot=slot: self._sender_report(slot)
            if t.kind == "video":
                sender.on_report = self._on_report
            self.slots.append(slot)
        self._senders = {t.mid: t.sender for t in self.pc.getTransceivers()}
        return self.pc.localDescription.sdp

    async def answer(self, sdp: str) -> None:
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except Exception as exc:
            raise SdpError(str(exc)) from None
        self.negotiated = True

    def _on_state(self) -> None:
        log.debug("subscriber %s connection %s", self.session_id, self.pc.connectionState)
        if self.pc.connectionState == "connected":
            for t in self.pc.getTransceivers():
                slot = next(s for s in self.slots if s.mid == t.mid)
                sender = t.sender
                send = hooks.egress(sender.transport)
                codecs = [c for c in t._codecs if not _is_rtx(c)]
                if send is None or not codecs:
                    log.debug("slot %s not ready: egress=%s codecs=%s", slot.mid, send, codecs)
                    continue
                # The negotiated codec is known from the answer; the sender's own RTP task
                # may start only later, after this state change.
                sender.payload_type, sender.clock_rate = codecs[0].payloadType, codecs[0].clockRate
                slot.downtrack = DownTrack(slot.ssrc, codecs[0].payloadType, codecs[0].clockRate,
                                           codecs[0].mimeType.lower() == "video/vp8")
                slot.send = self._faulty(send) if self.faults else send
                self.router.slot_ready(slot)
            self.connected.set()

    def _on_nack(self, slot: Slot, seqs: list[int]) -> None:
        if slot.kind == "video":
            self.nacked += len(seqs)
        self.router.on_nack(slot, seqs)

    def sample_loss(self) -> float:
        """Downlink loss since the last call, from NACKs (which see every loss, while
        receiver reports only count what retransmissions did not repair) and RRs."""
        sent = sum(s.downtrack.packets for s in self.slots if s.kind == "video" and s.downtrack is not None)
        delta, self._sent_mark = sent - self._sent_mark, sent
        nacked, self.nacked = self.nacked, 0
        if delta > 0:
            self.loss = LOSS_ALPHA * min(1.0, nacked / delta) + (1 - LOSS_ALPHA) * self.loss
        return self.loss

    def _on_report(self, report: Any) -> None:
        self.loss = max(self.loss, LOSS_ALPHA * (report.fraction_lost / 256) + (1 - LOSS_ALPHA) * self.loss)

    def _faulty(self, send):
        """Egress that drops ``drop_ratio`` of the packets, evenly spread: a lossy
        downlink for tests (worker ``debug-drop``). Only installed when the worker
        runs with KINDLING_SFU_FAULTS=1, so the normal path has no extra call."""

        def maybe_send(data: bytes) -> None:
            self._drop_acc += self.drop_ratio
            if self._drop_acc >= 1.0:
                self._drop_acc -= 1.0
                return
            send(data)

        return maybe_send

    def _sender_report(self, slot: Slot) -> bytes | None:
        dt = slot.downtrack
        if dt is None or not dt.packets:
            return None
        src = slot.source
        if src is not None and src.sr is not None and dt.source_id == src.id:
            # The publisher's own RTP/NTP mapping, moved to our clock at the SR's arrival
            # (as mediasoup does): every slot fed by one publisher shares that mapping,
            # so the subscriber can lip-sync its audio and video.
            arrived, source_ts = src.sr
            now = time.time()
            rtp_ts = dt.out_timestamp(source_ts + int((now - arrived) * dt.clock_rate))
        else:
            # No SR from the publisher yet: extrapolate from the last forwarded packet.
            elapsed = max(0.0, time.monotonic() - slot.last_sent_at)
            rtp_ts = (dt.last_out_ts + int(elapsed * dt.clock_rate)) & 0xFFFFFFFF
        return build_sr(slot.ssrc, ntp_now(), rtp_ts, dt.packets, dt.bytes)

    def free_slot(self, kind: str) -> Slot | None:
        for slot in self.slots:
            if slot.kind == kind and slot.source is None and slot.pending is None:
                return slot
        return None

    async def close(self) -> None:
        for slot in self.slots:
            self.router.detach(slot)
        await self.pc.close()
