"""Real SFU workers (separate processes) and synthetic aiortc media for media tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from av import VideoFrame

from kindling_sdk import LocalStream, use_host_addresses

use_host_addresses(["127.0.0.1"])  # loopback only: host candidates on 127.0.0.1

WORKER_SECRET = "test-worker-secret"


class PatternTrack(VideoStreamTrack):
    """A moving test pattern of a fixed size (what a camera resolution would send)."""

    def __init__(self, width: int, height: int, fps: int = 30) -> None:
        super().__init__()
        self.width, self.height, self.fps = width, height, fps
        self.n = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.zeros((self.height, self.width, 3), np.uint8)
        x = (self.n * 4) % self.width
        img[:, x : x + 8] = 255
        img[: self.height // 4, :, 1] = 128
        self.n += 1
        frame = VideoFrame.from_ndarray(img, format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def camera(high=(640, 360), low=(320, 180), audio: bool = True) -> LocalStream:
    stream = LocalStream(audio=AudioStreamTrack() if audio else None)
    if high:
        stream.add_resolution("high", PatternTrack(*high), high[0], high[1], 30, 800)
    if low:
        stream.add_resolution("low", PatternTrack(*low), low[0], low[1], 30, 200)
    return stream


async def frames(track, count: int, timeout: float = 15.0) -> list:
    """Decode ``count`` frames from a remote track (proof that the media is real)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"only {len(got)} frames in {timeout}s")
        got.append(await asyncio.wait_for(track.recv(), remaining))
    return got


async def frames_of_size(track, width: int, count: int, timeout: float = 15.0) -> list:
    """Skip frames until ``count`` consecutive ones have this width."""
    deadline = time.monotonic() + timeout
    run: list = []
    while len(run) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {count} frames of width {width} in {timeout}s")
        f = await asyncio.wait_for(track.recv(), remaining)
        run = run + [f] if f.width == width else []
    return run


def start_worker(port: int, worker_id: str, **env_extra: str) -> subprocess.Popen:
    # Fault injection (debug-drop) is on for test workers only.
    env = dict(os.environ, KINDLING_SFU_FAULTS="1", **env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "sfu.worker", "--control", f"ws://127.0.0.1:{port}/rpc/worker",
         "--secret", WORKER_SECRET, "--media-host", "127.0.0.1", "--worker-id", worker_id],
        env=env,
    )


@pytest.fixture
async def media(kindling):
    """The kindling server plus one SFU worker process."""
    kindling.settings.worker_secret = WORKER_SECRET
    kindling.workers = [start_worker(kindling.settings.port, "w1")]
    assert await kindling.services.workers.wait_for_workers(1, 20), "worker did not register"
    yield kindling
    await stop_workers(kindling.workers)


async def stop_workers(workers: list[subprocess.Popen]) -> None:
    """SIGTERM, then wait without blocking the event loop: the in-process control
    plane must keep serving so the workers can close their RPC sockets cleanly."""
    for p in workers:
        if p.poll() is None:
            p.terminate()
    for p in workers:
        try:
            await asyncio.to_thread(p.wait, 5)
        except subprocess.TimeoutExpired:
            p.kill()
            await asyncio.to_thread(p.wait)



class ToneTrack(AudioStreamTrack):
    """A sine tone of a given amplitude (0..1): a speaker of known loudness, whose
    RFC 6464 level aiortc's sender computes from the samples."""

    def __init__(self, amplitude: float, freq: float = 440.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.freq = freq
        self._t = 0

    async def recv(self):
        frame = await super().recv()
        n = frame.samples
        t = (np.arange(n) + self._t) / frame.sample_rate
        self._t += n
        samples = (np.sin(2 * np.pi * self.freq * t) * self.amplitude * 32767).astype(np.int16)
        frame.planes[0].update(samples.tobytes())
        return frame


class PausableTrack(PatternTrack):
    """A camera that can stop sending (to test stream-interrupted / -recovered)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.running = asyncio.Event()
        self.running.set()

    async def recv(self):
        await self.running.wait()
        return await super().recv()


def rms(frames) -> float:
    data = np.concatenate([f.to_ndarray().astype(np.float64).ravel() for f in frames])
    return float(np.sqrt(np.mean(data**2)) / 32767)
