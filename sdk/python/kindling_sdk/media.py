"""The media half of the Python SDK: local streams to publish, remote streams to
subscribe to, and the two peer connections per client (publish: the client
offers; subscribe: the server offers once, with fixed slots that sources are
mapped onto).

Each video resolution of a local stream is its own track and SSRC (SparkRTC's
``addResolution``); the SFU forwards the resolutions a subscriber asks for.
"""

from __future__ import annotations

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
    for res in stream.resolutions:
        t = pc.addTransceiver(relay.subscribe(res.track, buffered=False), direction="sendonly")
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


def track_for_mid(pc: RTCPeerConnection, mid: str) -> MediaStreamTrack | None:
    for t in pc.getTransceivers():
        if t.mid == mid:
            return t.receiver.track
    return None
