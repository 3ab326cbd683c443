"""The media half of the Python SDK: local streams to publish, remote streams to
subscribe to, and the two peer connections per client (publish: the client
offers; subscribe: the server offers once, with fixed slots that sources are
mapped onto).

Each video resolution of a local stream is its own track and SSRC (SparkRTC's
``addResolution``); the SFU forwards the resolutions a subscriber asks for.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aioice.ice
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamTrack


def use_host_addresses(addresses: list[str]) -> None:
    """Gather ICE candidates only on these local addresses (aioice skips 127.0.0.1
    by default; on one host, loopback is what client and server share)."""
    fixed = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(fixed)


@dataclass
class VideoResolution:
    resolution_id: str
    track: MediaStreamTrack
    width: int
    height: int
    frame_rate: int = 30
    bitrate: int = 0  # kbit/s, informational


@dataclass
class LocalStream:
    """A camera (``main``) or presentation (``auxiliary``) stream to publish."""

    audio: MediaStreamTrack | None = None
    resolutions: list[VideoResolution] = field(default_factory=list)
    type: str = "main"
    stream_id: str | None = None
    gates: dict = field(default_factory=dict)  # resolutionId -> LayerGate of the current publication

    def add_resolution(self, resolution_id: str, track: MediaStreamTrack, width: int, height: int,
                       frame_rate: int = 30, bitrate: int = 0) -> None:
        self.resolutions.append(VideoResolution(resolution_id, track, width, height, frame_rate, bitrate))

    def get_type(self) -> str:
        return self.type


@dataclass
class RemoteStream:
    """A stream published by another user, as announced by ``stream-added``."""

    user_id: str
    type: str
    stream_id: str
    has_audio: bool
    video: list[dict]
    user_name: str = ""
    audio_muted: bool = False
    video_muted: bool = False
    audio_track: MediaStreamTrack | None = None
    video_tracks: dict[str, MediaStreamTrack] = field(default_factory=dict)  # by resolutionId

    @classmethod
    def from_info(cls, info: dict) -> RemoteStream:
        return cls(info["userId"], info["type"], info["streamId"], bool(info["audio"]), list(info["video"]),
                   info.get("userName", ""), bool(info.get("audioMuted")), bool(info.get("videoMuted")))

    def get_type(self) -> str:
        return self.type

    def get_user_id(self) -> str:
        return self.user_id

    def get_id(self) -> str:
        return self.stream_id

    def has_video(self) -> bool:
        return bool(self.video)

    @property
    def video_track(self) -> MediaStreamTrack | None:
        return next(iter(self.video_tracks.values()), None)


class LayerGate(MediaStreamTrack):
    """A published resolution that can be paused: while nobody watches it (the
    server's ``layer-demand``) its frames are dropped before the encoder, so the
    publisher spends no CPU or bandwidth on it. The source behind it is a relay
    proxy that always holds the newest frame, so resuming sends a current frame
    rather than a backlog."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self._source = source
        self._open = asyncio.Event()
        self._open.set()

    @property
    def active(self) -> bool:
        return self._open.is_set()

    @active.setter
    def active(self, on: bool) -> None:
        if on:
            self._open.set()
        else:
            self._open.clear()

    async def recv(self):
        while True:
            frame = await self._source.recv()
            if self._open.is_set():
                return frame

    def stop(self) -> None:
        super().stop()
        self._source.stop()


def new_peer_connection() -> RTCPeerConnection:
    # One transport for all m-lines: one ICE/DTLS handshake per connection.
    return RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))


def preferred(kind: str, mime: str) -> list[Any]:
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() == mime]


async def build_publish_offer(stream: LocalStream, relay: MediaRelay,
                              video_codec: str = "vp8") -> tuple[RTCPeerConnection, dict]:
    """A publisher connection with one sendonly m-line per track, and the
    ``publish`` request that describes it. Tracks go through ``relay`` because
    aiortc stops a sender's track when its connection closes: the stream must
    survive an unpublish or a media reset and be published again."""
    pc = new_peer_connection()
    audio_mid_of = None
    if stream.audio is not None:
        t = pc.addTransceiver(relay.subscribe(stream.audio, buffered=False), direction="sendonly")
        t.setCodecPreferences(preferred("audio", "audio/opus"))
        audio_mid_of = t
    video = []
    stream.gates = {}
    for res in stream.resolutions:
        gate = LayerGate(relay.subscribe(res.track, buffered=False))
        stream.gates[res.resolution_id] = gate
        t = pc.addTransceiver(gate, direction="sendonly")
        t.setCodecPreferences(preferred("video", f"video/{video_codec}"))
        video.append((res, t))
    await pc.setLocalDescription(await pc.createOffer())
    request = {
        "type": stream.type,
        "audio": stream.audio is not None,
        "video": [
            {"resolutionId": r.resolution_id, "width": r.width, "height": r.height, "frameRate": r.frame_rate,
             "bitrate": r.bitrate, "mid": t.mid}
            for r, t in video
        ],
        "sdp": pc.localDescription.sdp,
    }
    if audio_mid_of is not None:
        request["audioMid"] = audio_mid_of.mid
    return pc, request


async def accept_subscriber_offer(pc: RTCPeerConnection, offer: str) -> str:
    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    return pc.localDescription.sdp


async def apply_answer(pc: RTCPeerConnection, sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))


def assign_tracks(pc: RTCPeerConnection | None, stream: RemoteStream, assignments: list[dict]) -> None:
    """Point a remote stream at the subscriber slots the server mapped it onto
    (``assignments``: ``[{mid, kind, resolutionId}]``)."""
    stream.audio_track = None
    stream.video_tracks = {}
    for a in assignments:
        track = track_for_mid(pc, a["mid"]) if pc is not None else None
        if track is None:
            continue
        if a["kind"] == "audio":
            stream.audio_track = track
        else:
            stream.video_tracks[a["resolutionId"]] = track


def track_for_mid(pc: RTCPeerConnection, mid: str) -> MediaStreamTrack | None:
    for t in pc.getTransceivers():
        if t.mid == mid:
            return t.receiver.track
    return None
