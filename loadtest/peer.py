"""aiortc sender/receiver subclasses used by load-test agents (and only there:
``install()`` rebinds the classes aiortc's ``RTCPeerConnection`` instantiates, for
the whole process). aiortc is pinned (pyproject.toml); the private names used
here are the ones sfu/hooks.py also relies on.

* ``LoadSender``: a keyframe request (PLI/FIR) from the SFU restarts the
  pre-encoded loop at its keyframe (aiortc only honours it when it encodes), the
  RTP packets a frame became are counted, and audio packets get an RFC 6464
  level so that server-side top-N ranking has something to rank.
* ``MeasuringReceiver``: every RTP packet of a subscriber is handed to the
  ``StreamStats`` bound to its track (``track.lt_stats``). Counting receivers
  (all but the few decoding ones) skip aiortc's depayloader, jitter buffer and
  decoder thread, and keep only what the sender side sees from a real client:
  receiver reports and NACKs. A receiver created while ``DECODE`` is true (set
  in the task of a decoding subscriber) keeps aiortc's full path, so its frames
  can be read from the track and decoded.
"""

from __future__ import annotations

import contextvars
import logging

import aiortc.rtcpeerconnection
from aiortc.rtcrtpreceiver import RTCRtpReceiver, StreamStatistics
from aiortc.rtcrtpsender import RTCRtpSender

from loadtest.media import _LoopTrack

DECODE: contextvars.ContextVar[bool] = contextvars.ContextVar("loadtest_decode", default=False)
# The simulated client whose task creates a receiver; it binds packets on slots the
# load tester did not map (e.g. top-N audio chosen by the server) to its own stats.
OWNER: contextvars.ContextVar[object | None] = contextvars.ContextVar("loadtest_owner", default=None)
RTP_HEADER = 12


class Counters:
    unbound_packets = 0  # packets on a slot not (yet) bound to a source
    decode_errors = 0
    consent_expired = 0  # ICE connections aioice closed: RFC 7675 consent checks went unanswered


def _source(sender: RTCRtpSender) -> object:
    track = sender.track
    # The SDK sends every track through a MediaRelay proxy (kindling_sdk.media).
    return getattr(track, "_source", None) or track


class LoadSender(RTCRtpSender):
    def _send_keyframe(self) -> None:
        super()._send_keyframe()
        src = _source(self)
        if isinstance(src, _LoopTrack):
            src.request_keyframe()

    async def _next_encoded_frame(self, codec):
        frame = await super()._next_encoded_frame(codec)
        if frame is not None:
            src = _source(self)
            if isinstance(src, _LoopTrack):
                c = src.counters
                c.frames += 1
                c.packets += len(frame.payloads)
                c.bytes += sum(len(p) for p in frame.payloads) + RTP_HEADER * len(frame.payloads)
                if src.kind == "audio":
                    frame.audio_level = -src.audio_level  # aiortc writes -audio_level as the level
        return frame


class MeasuringReceiver(RTCRtpReceiver):
    def __init__(self, kind, transport) -> None:
        super().__init__(kind, transport)
        self.lt_decode = DECODE.get()
        self.lt_owner = OWNER.get()

    async def receive(self, parameters) -> None:
        started = self._RTCRtpReceiver__started
        await super().receive(parameters)
        if not started and not self.lt_decode:
            self._RTCRtpReceiver__stop_decoder()  # counting only: no decoder thread

    async def _handle_rtp_packet(self, packet, arrival_time_ms: int) -> None:
        track = self._track
        stats = getattr(track, "lt_stats", None) if track is not None else None
        if stats is None and track is not None and self.lt_owner is not None:
            stats = track.lt_stats = self.lt_owner.unassigned(track.kind)
        if stats is not None:
            stats.on_packet(packet.sequence_number, packet.timestamp, packet.marker, packet.payload, RTP_HEADER)
        else:
            Counters.unbound_packets += 1
        if self.lt_decode:
            await super()._handle_rtp_packet(packet, arrival_time_ms)
            return
        if not self._enabled:
            return
        codec = self._RTCRtpReceiver__codecs.get(packet.payload_type)
        if codec is None or codec.name.lower() == "rtx":
            return
        streams = self._RTCRtpReceiver__remote_streams
        st = streams.get(packet.ssrc)
        if st is None:
            st = streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        st.add(packet)
        nack = self._RTCRtpReceiver__nack_generator
        if nack is not None and nack.add(packet):
            await self._send_rtcp_nack(packet.ssrc, sorted(nack.missing))


class _Watch(logging.Handler):
    """Counts the log lines of aiortc/aioice that mean a failure we report."""

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "failed to decode" in msg:
            Counters.decode_errors += 1
        elif "Consent to send expired" in msg:
            Counters.consent_expired += 1


def watch_logs() -> None:
    logging.getLogger("aiortc.rtcrtpreceiver").addHandler(_Watch())
    ice = logging.getLogger("aioice.ice")
    ice.addHandler(_Watch())
    ice.setLevel(logging.INFO)  # consent expiry is logged at INFO
    ice.propagate = False  # count, do not print aioice's connectivity-check chatter


def install() -> None:
    aiortc.rtcpeerconnection.RTCRtpReceiver = MeasuringReceiver
    aiortc.rtcpeerconnection.RTCRtpSender = LoadSender
    watch_logs()
