"""Synthetic media that costs (almost) nothing to send.

Each video layer and the audio are encoded once (PyAV: libvpx VP8, libopus) into a
short loop of packets, written to a cache directory, and replayed by
``LoopVideoTrack``/``LoopAudioTrack``. Their ``recv()`` returns ``av.Packet`` objects,
which aiortc's ``RTCRtpSender`` only re-packetizes (``_next_encoded_frame`` →
``encoder.pack``): no encoder runs during a load test.

Every frame and packet carries a 12-byte trailer, ``MAGIC`` + send time
(``time.time_ns()``, big-endian), placed where decoders ignore it and the SFU forwards
it untouched:

* VP8: appended after the last partition (libvpx stops reading when the
  macroblocks are done; decoded output is bit-identical — tested in
  tests/test_loadtest.py). It ends up in the last RTP packet of the frame (marker).
* Opus: as RFC 6716 §3.2.5 padding of a code-3 packet (code 0/1/2 packets are
  rewritten to the equivalent code-3 form); decoders must ignore padding.

A subscriber reading the trailer at arrival gets the one-way latency through the
SFU (exact on one host; across hosts only as good as their clock sync).
"""

from __future__ import annotations

import asyncio
import fractions
import hashlib
import json
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

MAGIC = b"KLT0"
TRAILER_LEN = 12
_TRAILER = struct.Struct("!4sQ")
VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
LOOP_SECONDS = 2.0
CACHE_VERSION = 1


@dataclass(frozen=True)
class Layer:
    """One video resolution (SparkRTC ``addResolution``)."""

    id: str
    width: int
    height: int
    fps: int = 30
    kbps: int = 500

    @classmethod
    def from_dict(cls, d: dict) -> Layer:
        return cls(str(d["id"]), int(d["width"]), int(d["height"]), int(d.get("fps", 30)), int(d.get("kbps", 500)))


@dataclass(frozen=True)
class AudioSpec:
    kbps: int = 32
    ptime_ms: int = 20  # 20, 40 or 60: Opus frame duration (packets per second = 1000 / ptime)


# ---------------------------------------------------------------------- trailers


def trailer(now_ns: int | None = None) -> bytes:
    return _TRAILER.pack(MAGIC, time.time_ns() if now_ns is None else now_ns)


def read_trailer(payload: bytes) -> int | None:
    """Send time (ns) from the end of a payload, or None."""
    if len(payload) < TRAILER_LEN or payload[-TRAILER_LEN:-8] != MAGIC:
        return None
    return int.from_bytes(payload[-8:], "big")


def opus_with_padding(packet: bytes, pad: bytes) -> bytes:
    """The same Opus packet as code 3 with ``pad`` as its padding (≤ 254 bytes)."""
    n = len(pad)
    if not 0 < n < 255 or not packet:
        raise ValueError("padding must be 1..254 bytes")
    toc, code = packet[0], packet[0] & 3
    if code == 0:  # one frame
        return bytes([toc | 3, 0x40 | 1, n]) + packet[1:] + pad
    if code == 1:  # two frames of equal size: CBR, M=2
        return bytes([toc | 3, 0x40 | 2, n]) + packet[1:] + pad
    if code == 2:  # two frames, first length given: VBR, M=2 (same length coding follows)
        return bytes([toc | 3, 0x80 | 0x40 | 2, n]) + packet[1:] + pad
    count = packet[1]
    if count & 0x40:
        raise ValueError("packet is padded already")
    return bytes([toc, count | 0x40, n]) + packet[2:] + pad


# ---------------------------------------------------------------------- pre-encoding


def _video_image(layer: Layer, i: int, rng: np.random.Generator) -> np.ndarray:
    """A moving bar and a noisy block, so libvpx actually spends the target bitrate."""
    h, w = layer.height, layer.width
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    img[: h // 4, :, 1] = 128
    x = (i * max(2, w // 60)) % w
    img[:, x : x + max(4, w // 40)] = 255
    bh, bw = max(8, h // 3), max(8, w // 3)
    y0, x0 = h // 3, w // 3
    img[y0 : y0 + bh, x0 : x0 + bw] = rng.integers(0, 256, (bh, bw, 3), dtype=np.uint8)
    return img


def encode_video(layer: Layer, seconds: float = LOOP_SECONDS) -> list[bytes]:
    """A loop of VP8 frames, keyframe first and only: replaying restarts at a keyframe."""
    n = max(2, int(round(seconds * layer.fps)))
    cc = av.CodecContext.create("libvpx", "w")
    cc.width, cc.height = layer.width, layer.height
    cc.pix_fmt = "yuv420p"
    cc.framerate = fractions.Fraction(layer.fps, 1)
    cc.time_base = fractions.Fraction(1, layer.fps)
    cc.bit_rate = layer.kbps * 1000
    cc.gop_size = n + 1
    cc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1",
                  "auto-alt-ref": "0"}
    rng = np.random.default_rng(len(layer.id) * 7919 + layer.width)
    out: list[bytes] = []
    for i in range(n):
        frame = av.VideoFrame.from_ndarray(_video_image(layer, i, rng), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out.extend(bytes(p) for p in cc.encode(frame))
    out.extend(bytes(p) for p in cc.encode(None))
    if len(out) != n or not _vp8_keyframe(out[0]) or any(_vp8_keyframe(f) for f in out[1:]):
        raise RuntimeError(f"unexpected VP8 encoder output for {layer}: {len(out)} frames")
    return out


def _vp8_keyframe(frame: bytes) -> bool:
    return bool(frame) and not (frame[0] & 0x01)


def encode_audio(spec: AudioSpec, seconds: float = LOOP_SECONDS) -> list[bytes]:
    """A loop of Opus packets (a tone with some noise), ``ptime_ms`` each."""
    cc = av.CodecContext.create("libopus", "w")
    cc.sample_rate = AUDIO_CLOCK
    cc.layout = "stereo"
    cc.format = "s16"
    cc.bit_rate = spec.kbps * 1000
    cc.time_base = fractions.Fraction(1, AUDIO_CLOCK)
    cc.options = {"frame_duration": str(spec.ptime_ms), "application": "voip"}
    rng = np.random.default_rng(48000)
    step = 960
    total = int(seconds * AUDIO_CLOCK)
    out: list[bytes] = []
    for n in range(0, total + step * 4, step):
        t = np.arange(n, n + step) / AUDIO_CLOCK
        mono = (np.sin(2 * np.pi * 440 * t) * 6000 + rng.normal(0, 300, step)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono[:, None], 2, axis=1).reshape(1, -1).copy(),
                                           format="s16", layout="stereo")
        frame.sample_rate = AUDIO_CLOCK
        frame.pts = n
        out.extend(bytes(p) for p in cc.encode(frame))
    per_packet = spec.ptime_ms * AUDIO_CLOCK // 1000
    keep = max(1, total // per_packet)
    if len(out) < keep:
        raise RuntimeError(f"Opus encoder gave {len(out)} packets, wanted {keep}")
    return out[:keep]


def _key(obj: object) -> str:
    return hashlib.sha256(json.dumps([CACHE_VERSION, obj, av.__version__], sort_keys=True).encode()).hexdigest()[:16]


def _store(path: Path, frames: list[bytes]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for fr in frames:
            f.write(struct.pack("!I", len(fr)))
            f.write(fr)
    tmp.replace(path)


def _load(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("!I", data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


def video_loop(layer: Layer, cache_dir: Path | None) -> list[bytes]:
    if cache_dir is None:
        return encode_video(layer)
    path = Path(cache_dir) / f"vp8-{layer.width}x{layer.height}-{layer.fps}-{layer.kbps}-{_key(asdict(layer))}.bin"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _store(path, encode_video(layer))
    return _load(path)


def audio_loop(spec: AudioSpec, cache_dir: Path | None) -> list[bytes]:
    if cache_dir is None:
        return encode_audio(spec)
    path = Path(cache_dir) / f"opus-{spec.kbps}-{spec.ptime_ms}-{_key(asdict(spec))}.bin"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _store(path, encode_audio(spec))
    return _load(path)


# ---------------------------------------------------------------------- tracks


class SendCounters:
    """Per source track: frames generated, and what aiortc's sender actually
    packetized (frames, RTP packets, bytes incl. a 12-byte header each; counted by
    loadtest.peer.LoadSender). Generated but not sent = frames the sender path
    dropped because it fell behind or stopped (MediaRelay keeps only the newest)."""

    __slots__ = ("generated", "frames", "packets", "bytes", "keyframe_requests")

    def __init__(self) -> None:
        self.generated = 0
        self.frames = 0
        self.packets = 0
        self.bytes = 0
        self.keyframe_requests = 0


class _LoopTrack(MediaStreamTrack):
    """Replays pre-encoded packets in real time. Pacing is absolute (start + n ×
    period), so a late wake-up is caught up rather than drifting."""

    def __init__(self, frames: list[bytes], period_s: float, clock: int, ticks_per_frame: int,
                 counters: SendCounters) -> None:
        super().__init__()
        if not frames:
            raise ValueError("no frames to loop")
        self._frames = frames
        self._period = period_s
        self._clock = clock
        self._ticks = ticks_per_frame
        self._time_base = fractions.Fraction(1, clock)
        self._n = 0  # frames sent
        self._i = 0  # position in the loop
        self._start: float | None = None
        self.counters = counters
        self.audio_level = 127  # -dBov for the RFC 6464 extension (audio only)

    def request_keyframe(self) -> None:
        """PLI/FIR from the SFU: restart the loop at its keyframe."""
        self.counters.keyframe_requests += 1
        self._i = 0

    def _payload(self, frame: bytes, stamp: bytes) -> bytes:
        raise NotImplementedError

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._n * self._period
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self.readyState != "live":
            raise MediaStreamError
        data = self._payload(self._frames[self._i], trailer())
        packet = av.Packet(data)
        packet.pts = self._n * self._ticks
        packet.time_base = self._time_base
        self._n += 1
        self._i = (self._i + 1) % len(self._frames)
        self.counters.generated += 1
        return packet


class LoopVideoTrack(_LoopTrack):
    kind = "video"

    def __init__(self, frames: list[bytes], fps: int) -> None:
        super().__init__(frames, 1.0 / fps, VIDEO_CLOCK, VIDEO_CLOCK // fps, SendCounters())

    def _payload(self, frame: bytes, stamp: bytes) -> bytes:
        return frame + stamp


class LoopAudioTrack(_LoopTrack):
    kind = "audio"

    def __init__(self, packets: list[bytes], ptime_ms: int) -> None:
        super().__init__(packets, ptime_ms / 1000.0, AUDIO_CLOCK, AUDIO_CLOCK * ptime_ms // 1000, SendCounters())

    def _payload(self, frame: bytes, stamp: bytes) -> bytes:
        return opus_with_padding(frame, stamp)
