"""A load-test agent process: runs its share of the simulated clients (real
WebRTC peers through kindling_sdk, or through the naive relay's client) on one
event loop, and reports to the coordinator over stdout, one JSON object a line:

* ``{"type": "ready"}`` once the pre-encoded media is loaded; the coordinator then
  writes ``{"t0": WALL_TIME}`` on stdin, the common start of the schedule;
* ``{"type": "tick", ...}`` every second: cumulative counters, this second's
  one-way latency histograms, the agent's own CPU and memory;
* ``{"type": "final", ...}`` at the end: per-client timings, per-stream receive
  statistics, errors by code.

Started by the coordinator as ``python -m loadtest.agent`` (configuration as one
JSON line on stdin). Every wait is bounded: clients leave at the end of the run and
the process exits by ``deadline`` whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from loadtest import peer
from loadtest.media import AudioSpec, Layer, LoopAudioTrack, LoopVideoTrack, _LoopTrack, audio_loop, video_loop
from loadtest.scenario import ClientSpec, Target
from loadtest.stats import Histogram, StreamStats

log = logging.getLogger("loadtest.agent")

LEAVE_TIMEOUT_S = 5.0
TICK_S = 1.0


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return str(code) if code is not None else type(exc).__name__


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class SimClient:
    """One simulated participant: join, publish and/or subscribe, stay, leave."""

    def __init__(self, agent: Agent, spec: ClientSpec) -> None:
        self.agent = agent
        self.spec = spec
        self.client: Any = None
        self.joined = False
        self.left = False
        self.timings: dict[str, Any] = {"user": spec.user, "room": spec.room, "publish": spec.publish,
                                        "subscribe": spec.subscribe, "decode": spec.decode}
        self.subscriptions: list[dict] = []
        self.streams: list[StreamStats] = []
        self.tracks: list[_LoopTrack] = []
        self._queue: asyncio.Queue = asyncio.Queue()
        self._subscribed: dict[str, dict] = {}  # publisher -> {"audio": bool, "video": bool}
        self._failed: set[str] = set()  # stream ids a subscription to failed: not retried
        self._decoders: list[asyncio.Task] = []

    # -- bookkeeping

    def error(self, op: str, exc: BaseException) -> None:
        key = f"{op}:{_error_code(exc)}"
        self.agent.errors[key] += 1
        details = self.agent.error_details.setdefault(key, [])
        if len(details) < 5:
            details.append(f"{self.spec.user}@{self.spec.room}: {str(exc)[:200]}")
        self.timings.setdefault("errors", []).append(f"{op}:{_error_code(exc)}")

    def unassigned(self, kind: str) -> StreamStats:
        """Stats for packets on a slot this client has not mapped (yet): top-N audio,
        or media that beat the subscribe response (adopted by ``_bind``)."""
        top_n = kind == "audio" and self.agent.top_n
        return self._new_stats("(top-n)" if top_n else "(unmapped)", kind, None)

    def _new_stats(self, publisher: str, kind: str, layer: str | None) -> StreamStats:
        a = self.agent
        st = StreamStats(self.spec.user, publisher, kind, layer, 48000 if kind == "audio" else 90000,
                         a.latency[kind], a.tick_latency[kind], self.spec.room)
        self.streams.append(st)
        return st

    # -- life cycle

    async def run(self, t0: float, stop: asyncio.Event) -> None:
        spec = self.spec
        peer.DECODE.set(spec.decode)
        peer.OWNER.set(self)
        await _sleep_until(t0 + spec.start_s, stop)
        if stop.is_set():
            return
        try:
            await self._join()
            if spec.publish and self.joined:
                await self._publish()
            if self.joined:
                end = t0 + spec.leave_s if spec.leave_s is not None else None
                await _sleep_until(end, stop)
        finally:
            await self._leave()

    async def _join(self) -> None:
        spec, a = self.spec, self.agent
        self.client = a.make_client()
        if spec.subscribe:
            self.client.on("stream-added", lambda d: self._queue.put_nowait(("added", d["stream"])))
            self.client.on("stream-removed", lambda d: self._queue.put_nowait(("removed", d["stream"])))
            self.client.on("media-reset", lambda d: self._queue.put_nowait(("reset", None)))
            a.spawn(self._subscriber_loop())
        self.client.on("Error", lambda d: a.errors.update([f"event:{d.get('errorCode')}"]))
        ctime, signature = a.sign(spec.room, spec.user)
        self.timings["join_start"] = time.time()
        try:
            await self.client.join(spec.room, user_id=spec.user, signature=signature, ctime=ctime, role=spec.role,
                                   top_n=a.top_n, auto_subscribe_audio=True)
        except Exception as exc:
            self.timings["join_failed"] = time.time()
            self.error("join", exc)
            a.joins_failed += 1
            return
        self.timings["join_ok"] = time.time()
        self.timings["join_request_s"] = getattr(self.client, "rtt", {}).get("join")
        self.joined = True
        a.joins_ok += 1

    async def _publish(self) -> None:
        a = self.agent
        from kindling_sdk import LocalStream

        stream = LocalStream()
        if a.audio_packets is not None:
            track = LoopAudioTrack(a.audio_packets, a.audio_spec.ptime_ms)
            track.audio_level = a.speaker_level(self.spec.index, time.time())
            stream.audio = track
            self.tracks.append(track)
        for layer, frames in a.video_frames:
            vt = LoopVideoTrack(frames, layer.fps)
            stream.add_resolution(layer.id, vt, layer.width, layer.height, layer.fps, layer.kbps)
            self.tracks.append(vt)
        a.sources.extend(self.tracks)
        self.timings["publish_start"] = time.time()
        try:
            await self.client.publish(stream)
        except Exception as exc:
            self.error("publish", exc)
            for t in self.tracks:
                t.stop()
            return
        self.timings["publish_ok"] = time.time()
        self.timings["publish_request_s"] = getattr(self.client, "rtt", {}).get("publish")

    # -- subscribing

    async def _subscriber_loop(self) -> None:
        """Handles stream events one at a time (the SDK's subscribe is not meant to
        run concurrently on one client)."""
        while not self.left:
            kind, stream = await self._queue.get()
            if self.left:
                return
            if kind == "reset":
                self._subscribed.clear()
                continue
            if kind == "removed":
                self._subscribed.pop(stream.user_id, None)
                if not self.spec.targets:
                    await self._fill()  # churn: take the next stream not yet watched
                continue
            await self._consider(stream)

    async def _consider(self, stream) -> None:
        live = getattr(self.client, "remote_streams", {}).get((stream.user_id, stream.type))
        if live is not stream:
            return  # removed (or replaced) while this event waited in the queue
        if stream.type != "main" or stream.user_id in self._subscribed or stream.stream_id in self._failed:
            return
        want = self._want(stream)
        if want is not None:
            await self._subscribe(stream, *want)

    async def _fill(self) -> None:
        for other in list(getattr(self.client, "remote_streams", {}).values()):
            if self.left:
                return
            await self._consider(other)

    def _want(self, stream) -> tuple[bool, str | None] | None:
        spec = self.spec
        layers = [v["resolutionId"] for v in sorted(stream.video, key=lambda v: v["width"] * v["height"])]
        if spec.targets:
            target: Target | None = next((t for t in spec.targets if t.user == stream.user_id), None)
            if target is None:
                return None
            audio = target.audio and stream.has_audio
            layer = _pick(layers, target.layer)
        else:
            n_audio = sum(1 for s in self._subscribed.values() if s["audio"])
            n_video = sum(1 for s in self._subscribed.values() if s["video"])
            audio = stream.has_audio and n_audio < spec.any_audio
            layer = _pick(layers, spec.any_layer) if n_video < spec.any_video else None
        if not audio and layer is None:
            return None
        return audio, layer

    async def _subscribe(self, stream, audio: bool, layer: str | None) -> None:
        rec: dict[str, Any] = {"publisher": stream.user_id, "audio": audio, "layer": layer, "start": time.time()}
        self.subscriptions.append(rec)
        try:
            await self.client.subscribe(stream, audio=audio, video=layer is not None,
                                        resolution_ids=[layer] if layer is not None else None)
        except Exception as exc:
            rec["error"] = _error_code(exc)
            rec["detail"] = str(getattr(exc, "detail", None) or exc)[:200]
            self._failed.add(stream.stream_id)
            self.error("subscribe", exc)
            return
        rec["ok"] = time.time()
        self._subscribed[stream.user_id] = {"audio": audio, "video": layer is not None}
        self.agent.subscribes_ok += 1
        if audio and stream.audio_track is not None:
            self._bind(stream.audio_track, stream.user_id, "audio", None)
        if layer is not None and layer in stream.video_tracks:
            self._bind(stream.video_tracks[layer], stream.user_id, "video", layer)

    def _bind(self, track, publisher: str, kind: str, layer: str | None) -> None:
        old = getattr(track, "lt_stats", None)
        if old is not None and old.publisher == publisher and old.layer == layer:
            return
        if old is not None and old.publisher == "(unmapped)" and old.kind == kind:
            # media arrived before subscribe() returned: those packets are this source's
            old.adopt(publisher, kind, layer)
            if self.spec.decode:
                self._decoders.append(asyncio.ensure_future(_decode(track, old)))
            return
        st = self._new_stats(publisher, kind, layer)
        track.lt_stats = st
        if self.spec.decode:
            self._decoders.append(asyncio.ensure_future(_decode(track, st)))

    async def _leave(self) -> None:
        self.left = True
        self._queue.put_nowait(("stop", None))
        for task in self._decoders:
            task.cancel()
        client = self.client
        if client is not None:
            if self.joined:
                self.timings["leave_start"] = time.time()
                try:
                    await asyncio.wait_for(client.leave(), LEAVE_TIMEOUT_S)
                    self.timings["leave_ok"] = time.time()
                except Exception as exc:
                    self.error("leave", exc)
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.close(), LEAVE_TIMEOUT_S)
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), LEAVE_TIMEOUT_S)
        for t in self.tracks:
            t.stop()
        if self.joined:
            self.agent.left += 1

    def final(self) -> dict:
        out = dict(self.timings)
        out["subscriptions"] = self.subscriptions
        return out


def _pick(layers: list[str], wanted: str | None) -> str | None:
    """``wanted`` if the stream has it, else its nearest: the smallest for a
    low-layer request, the largest otherwise."""
    if wanted is None or not layers:
        return None
    if wanted in layers:
        return wanted
    return layers[0] if wanted in ("low", "small", "tiny") else layers[-1]


async def _decode(track, st: StreamStats) -> None:
    """Read decoded frames from a remote track (the receiver decodes: see peer.DECODE)."""
    from aiortc.mediastreams import MediaStreamError

    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while getattr(track, "lt_stats", None) is st:
            frame = await track.recv()
            st.decoded += 1
            if st.kind == "video":
                st.decoded_size = (frame.width, frame.height)


async def _sleep_until(when: float | None, stop: asyncio.Event) -> None:
    delay = None if when is None else when - time.time()
    if delay is not None and delay <= 0:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)


class TimedClient:
    """Mix-in that records each signalling request's round trip (``rtt[type]``)."""

    rtt: dict

    async def request(self, rtype: str, data: dict | None = None) -> dict:
        start = time.monotonic()
        result = await super().request(rtype, data)  # type: ignore[misc]
        if not hasattr(self, "rtt"):
            self.rtt = {}
        self.rtt[rtype] = time.monotonic() - start
        return result


class Agent:
    def __init__(self, cfg: dict) -> None:
        self.cfg = cfg
        self.index = int(cfg.get("agent", 0))
        self.specs = [ClientSpec.from_dict(s) for s in cfg["clients"]]
        sc = cfg["scenario"]
        self.top_n = bool(sc.get("top_n"))
        self.audio_spec = AudioSpec(int(sc["audio_kbps"]), int(sc["audio_ptime_ms"]))
        self.layers = [Layer.from_dict(v) for v in sc["video"]]
        self.audio_packets: list[bytes] | None = None
        self.video_frames: list[tuple[Layer, list[bytes]]] = []
        self.errors: Counter = Counter()
        self.error_details: dict[str, list[str]] = {}  # a few examples per operation:code
        self.latency = {"audio": Histogram(), "video": Histogram()}
        self.tick_latency = {"audio": Histogram(), "video": Histogram()}
        self.sources: list[_LoopTrack] = []
        self.clients: list[SimClient] = []
        self.joins_ok = self.joins_failed = self.subscribes_ok = self.left = 0
        self._tasks: set[asyncio.Task] = set()
        self._out = sys.stdout
        self._cpu0 = time.process_time()

    # -- services for clients

    def spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def make_client(self):
        cfg = self.cfg
        timeout = float(cfg["scenario"].get("request_timeout_s", 15.0))
        if cfg["target"] == "naive":
            from loadtest.naive_relay import NaiveClient

            return NaiveClient(cfg["server"], request_timeout=timeout)
        from kindling_sdk import Client

        cls = type("LoadClient", (TimedClient, Client), {})
        return cls(cfg["server"], cfg["app_id"], request_timeout=timeout, reconnect=True)

    def sign(self, room: str, user: str) -> tuple[str, str]:
        from kindling_sdk import signed

        if self.cfg["target"] == "naive":
            return "0", "naive"
        return signed(self.cfg["app_key"], self.cfg["app_id"], room, user, 7200)

    @staticmethod
    def speaker_level(index: int, now: float) -> int:
        """RFC 6464 level (0 loudest .. 127 silence): one client in ten speaks (level
        10) for five seconds at a time, the others murmur at 40..69."""
        return 10 if (int(now / 5) + index) % 10 == 0 else 40 + index % 30

    # -- output

    def emit(self, obj: dict) -> None:
        self._out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._out.flush()

    def counters(self) -> dict:
        streams = [s for c in self.clients for s in c.streams]
        return {
            "clients": sum(1 for c in self.clients if c.joined and not c.left),
            "joins_ok": self.joins_ok,
            "joins_failed": self.joins_failed,
            "subscribes_ok": self.subscribes_ok,
            "left": self.left,
            "publishing": sum(1 for c in self.clients if c.timings.get("publish_ok") and not c.left),
            "sent_packets": sum(t.counters.packets for t in self.sources),
            "sent_bytes": sum(t.counters.bytes for t in self.sources),
            "keyframe_requests": sum(t.counters.keyframe_requests for t in self.sources),
            "frames_generated": sum(t.counters.generated for t in self.sources),
            "frames_sent": sum(t.counters.frames for t in self.sources),
            "recv_packets": sum(s.packets for s in streams),
            "recv_bytes": sum(s.bytes for s in streams),
            "expected": sum(s.expected for s in streams),
            "lost": sum(s.lost for s in streams),
            "freezes": sum(s.freezes for s in streams),
            "decoded": sum(s.decoded for s in streams),
            "decode_errors": peer.Counters.decode_errors,
            "ice_consent_expired": peer.Counters.consent_expired,
            "unbound_packets": peer.Counters.unbound_packets,
            "errors": sum(self.errors.values()),
            "cpu_s": time.process_time() - self._cpu0,
            "rss": _rss_bytes(),
        }

    async def ticker(self, t0: float, stop: asyncio.Event) -> None:
        """A tick at t0 + k + 0.5 s: half a second before the coordinator samples."""
        k = 0
        while not stop.is_set():
            k = max(k + 1, int(time.time() - t0 + 0.5))
            await _sleep_until(t0 + k * TICK_S - 0.5, stop)
            if stop.is_set():
                return
            now = time.time()
            for c in self.clients:  # keep the speaking pattern moving
                for t in c.tracks:
                    if t.kind == "audio" and not c.left:
                        t.audio_level = self.speaker_level(c.spec.index, now)
            tick = {k: h.to_dict() for k, h in self.tick_latency.items()}
            for h in self.tick_latency.values():
                h.reset()
            self.emit({"type": "tick", "agent": self.index, "t": now, "c": self.counters(), "lat": tick})

    # -- main

    async def run(self) -> None:
        cfg = self.cfg
        from kindling_sdk import use_host_addresses

        peer.install()
        use_host_addresses([cfg.get("local_address", "127.0.0.1")])
        cache = Path(cfg["media_cache"]) if cfg.get("media_cache") else None
        if cfg["scenario"].get("audio"):
            self.audio_packets = audio_loop(self.audio_spec, cache)
        self.video_frames = [(layer, video_loop(layer, cache)) for layer in self.layers]
        self.emit({"type": "ready", "agent": self.index, "pid": os.getpid()})
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        if not line.strip():
            return
        start = json.loads(line)
        t0, end = float(start["t0"]), float(start["t0"]) + float(cfg["scenario"]["duration_s"])
        stop = asyncio.Event()
        self.clients = [SimClient(self, spec) for spec in self.specs]
        ticker = asyncio.ensure_future(self.ticker(t0, stop))
        runs = [asyncio.ensure_future(c.run(t0, stop)) for c in self.clients]
        await _sleep_until(end, asyncio.Event())
        stop.set()
        # Clients leave now; bounded: leave has its own timeout, this is the backstop.
        done, pending = await asyncio.wait(runs, timeout=LEAVE_TIMEOUT_S * 2 + 5)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                self.errors[f"client:{type(task.exception()).__name__}"] += 1
        ticker.cancel()
        self.emit({"type": "tick", "agent": self.index, "t": time.time(), "c": self.counters(),
                   "lat": {k: h.to_dict() for k, h in self.tick_latency.items()}})
        self.emit({
            "type": "final",
            "agent": self.index,
            "clients": [c.final() for c in self.clients],
            "streams": [s.to_dict() for c in self.clients for s in c.streams],
            "errors": dict(self.errors),
            "error_details": self.error_details,
            "latency": {k: h.to_dict() for k, h in self.latency.items()},
            "counters": self.counters(),
        })


def main() -> None:
    logging.basicConfig(level=os.environ.get("KINDLING_LOADTEST_LOG", "WARNING").upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s agent %(name)s: %(message)s")
    cfg = json.loads(sys.stdin.readline())
    agent = Agent(cfg)
    deadline = float(cfg["deadline"])

    async def bounded() -> None:
        try:
            async with asyncio.timeout(max(1.0, deadline - time.time())):
                await agent.run()
        except TimeoutError:
            agent.emit({"type": "error", "agent": agent.index, "message": "agent deadline reached"})

    try:
        import uvloop

        uvloop.run(bounded())
    except ImportError:  # pragma: no cover
        asyncio.run(bounded())
    sys.stdout.flush()
    os._exit(0)  # do not wait for aiortc's executor threads or stray sockets


if __name__ == "__main__":
    main()
