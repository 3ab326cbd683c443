"""A naive aiortc relay, the baseline of the A/B benchmark (docs/benchmarks.md).

What a first WebRTC server in Python usually is: every incoming track is decoded
by aiortc, fanned out with ``aiortc.contrib.media.MediaRelay``, and encoded again
for every subscriber by aiortc's own senders (VP8 and Opus). It follows Kindling's
media model closely enough to be driven by the same load-test clients: a publisher
connection offered by the client (one m-line per track), and a subscriber
connection offered by the relay once, with fixed slots (4 video + 4 audio) that
sources are mapped onto.

HTTP/JSON, no authentication, loopback only — a benchmark fixture, not a server::

    python -m loadtest.naive_relay --port 18600

``NaiveClient`` is the client side with the subset of ``kindling_sdk.Client`` the
load-test agent uses (join/publish/subscribe/leave, stream-added/-removed events by
polling).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger("loadtest.naive_relay")

VIDEO_SLOTS = 4
AUDIO_SLOTS = 4


class SlotTrack(MediaStreamTrack):
    """A subscriber slot: yields the frames of whichever relayed source is mapped
    onto it (nothing while none is)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.source: MediaStreamTrack | None = None
        self.source_key: tuple | None = None
        self._changed = asyncio.Event()

    def assign(self, proxy: MediaStreamTrack | None, key: tuple | None) -> None:
        old, self.source, self.source_key = self.source, proxy, key
        if old is not None:
            old.stop()
        self._changed.set()

    async def recv(self):
        while self.readyState == "live":
            src = self.source
            if src is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                return await src.recv()
            except MediaStreamError:
                if self.source is src:
                    self.source, self.source_key = None, None
        raise MediaStreamError


@dataclass(eq=False)
class Session:
    session_id: str
    room: str
    user: str
    pub_pc: RTCPeerConnection | None = None
    sources: dict[tuple[str, str | None], MediaStreamTrack] = field(default_factory=dict)  # (kind, rid) -> track
    info: dict | None = None  # the stream as /streams lists it
    sub_pc: RTCPeerConnection | None = None
    slots: list[tuple[str, SlotTrack]] = field(default_factory=list)  # (mid, slot)


def _new_pc() -> RTCPeerConnection:
    from kindling_sdk.media import new_peer_connection

    return new_peer_connection()


class Relay:
    def __init__(self) -> None:
        self.relay = MediaRelay()
        self.sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task] = set()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _session(self, body: dict) -> Session:
        s = self.sessions.get(str(body.get("sessionId")))
        if s is None:
            raise web.HTTPNotFound(text="unknown session")
        return s

    async def join(self, request: web.Request) -> web.Response:
        body = await request.json()
        s = Session(uuid.uuid4().hex, str(body["room"]), str(body["user"]))
        self.sessions[s.session_id] = s
        return web.json_response({"sessionId": s.session_id})

    async def publish(self, request: web.Request) -> web.Response:
        body = await request.json()
        s = self._session(body)
        req = body["request"]
        pc = _new_pc()
        s.pub_pc = pc
        await pc.setRemoteDescription(RTCSessionDescription(req["sdp"], "offer"))
        by_mid = {t.mid: t.receiver.track for t in pc.getTransceivers()}
        if req.get("audio"):
            s.sources[("audio", None)] = by_mid[req["audioMid"]]
        for v in req.get("video", []):
            s.sources[("video", v["resolutionId"])] = by_mid[v["mid"]]
        for track in s.sources.values():
            self._spawn(self._start_reading(track))
        await pc.setLocalDescription(await pc.createAnswer())
        s.info = {"userId": s.user, "userName": s.user, "streamId": s.session_id, "type": "main",
                  "audio": bool(req.get("audio")), "video": [{k: v[k] for k in ("resolutionId", "width", "height",
                                                                               "frameRate", "bitrate")}
                                                             for v in req.get("video", [])],
                  "audioMuted": False, "videoMuted": False}
        return web.json_response({"sdp": pc.localDescription.sdp, "streamId": s.session_id})

    async def _start_reading(self, track: MediaStreamTrack) -> None:
        """Start MediaRelay's reader now: aiortc decodes every track whether or not it
        is read, and unread frames would pile up in the track's queue."""
        proxy = self.relay.subscribe(track, buffered=False)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            await proxy.recv()
        proxy.stop()

    async def streams(self, request: web.Request) -> web.Response:
        room = request.query.get("room", "")
        return web.json_response({"streams": [s.info for s in self.sessions.values()
                                              if s.room == room and s.info is not None]})

    async def subscribe(self, request: web.Request) -> web.Response:
        body = await request.json()
        s = self._session(body)
        pub = next((p for p in self.sessions.values() if p.room == s.room and p.user == body["userId"] and p.info),
                   None)
        if pub is None:
            raise web.HTTPNotFound(text="no such stream")
        offer = None
        if s.sub_pc is None:
            pc = s.sub_pc = _new_pc()
            from kindling_sdk.media import preferred

            for kind, n in (("video", VIDEO_SLOTS), ("audio", AUDIO_SLOTS)):
                for _ in range(n):
                    slot = SlotTrack(kind)
                    t = pc.addTransceiver(slot, direction="sendonly")
                    t.setCodecPreferences(preferred(kind, "video/vp8" if kind == "video" else "audio/opus"))
                    s.slots.append((t, slot))  # mid known after the offer
            await pc.setLocalDescription(await pc.createOffer())
            s.slots = [(t.mid, slot) for t, slot in s.slots]
            offer = pc.localDescription.sdp
        wanted: list[tuple[str, str | None]] = []
        if body.get("audio"):
            wanted.append(("audio", None))
        for rid in body.get("resolutionIds") or []:
            wanted.append(("video", rid))
        assignments = []
        for key in wanted:
            source = pub.sources.get(key)
            if source is None:
                raise web.HTTPBadRequest(text=f"no source {key}")
            full = (pub.user,) + key
            slot_mid, slot = next(((m, sl) for m, sl in s.slots if sl.source_key == full), (None, None))
            if slot is None:
                slot_mid, slot = next(((m, sl) for m, sl in s.slots if sl.kind == key[0] and sl.source is None),
                                      (None, None))
                if slot is None:
                    raise web.HTTPConflict(text=f"no free {key[0]} slot")
                slot.assign(self.relay.subscribe(source, buffered=False), full)
            assignments.append({"mid": slot_mid, "kind": key[0], "resolutionId": key[1]})
        return web.json_response({"offer": offer, "assignments": assignments})

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.json()
        s = self._session(body)
        if s.sub_pc is None:
            raise web.HTTPConflict(text="no subscriber connection")
        await s.sub_pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
        return web.json_response({})

    async def leave(self, request: web.Request) -> web.Response:
        body = await request.json()
        s = self.sessions.pop(str(body.get("sessionId")), None)
        if s is not None:
            s.info = None
            for _, slot in s.slots:
                slot.assign(None, None)
                slot.stop()
            for pc in (s.pub_pc, s.sub_pc):
                if pc is not None:
                    await pc.close()
        return web.json_response({})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sessions": len(self.sessions)})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/join", self.join)
        app.router.add_post("/publish", self.publish)
        app.router.add_get("/streams", self.streams)
        app.router.add_post("/subscribe", self.subscribe)
        app.router.add_post("/answer", self.answer)
        app.router.add_post("/leave", self.leave)
        app.router.add_get("/healthz", self.healthz)

        async def cleanup(_: web.Application) -> None:
            for sid in list(self.sessions):
                s = self.sessions.pop(sid)
                for pc in (s.pub_pc, s.sub_pc):
                    if pc is not None:
                        with contextlib.suppress(Exception):
                            await pc.close()

        app.on_cleanup.append(cleanup)
        return app


# ---------------------------------------------------------------------- client


class NaiveError(Exception):
    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


class NaiveClient:
    """The subset of ``kindling_sdk.Client`` the load-test agent uses, against the relay."""

    POLL_S = 0.5

    def __init__(self, server: str, request_timeout: float = 15.0) -> None:
        self.server = server.rstrip("/")
        self.request_timeout = request_timeout
        self.rtt: dict[str, float] = {}
        self.remote_streams: dict[tuple[str, str], Any] = {}
        self._handlers: dict[str, list] = {}
        self._http: aiohttp.ClientSession | None = None
        self._session_id: str | None = None
        self._user: str | None = None
        self._room: str | None = None
        self._pub_pc: RTCPeerConnection | None = None
        self._sub_pc: RTCPeerConnection | None = None
        self._poller: asyncio.Task | None = None
        self._ids = itertools.count(1)

    def on(self, event: str, handler) -> None:
        self._handlers.setdefault(event, []).append(handler)

    def _emit(self, event: str, payload: Any) -> None:
        for h in list(self._handlers.get(event, [])):
            try:
                h(payload)
            except Exception:
                log.exception("handler for %s failed", event)

    async def _call(self, method: str, path: str, body: dict | None = None, op: str | None = None) -> dict:
        assert self._http is not None
        start = time.monotonic()
        try:
            async with asyncio.timeout(self.request_timeout):
                async with self._http.request(method, self.server + path, json=body) as resp:
                    if resp.status >= 400:
                        raise NaiveError(str(resp.status), await resp.text())
                    data = await resp.json()
        except TimeoutError:
            raise NaiveError("timeout", path) from None
        except aiohttp.ClientError as exc:
            raise NaiveError("connect", str(exc)) from None
        self.rtt[op or path.strip("/")] = time.monotonic() - start
        return data

    async def join(self, room_id: str, *, user_id: str, **_: Any) -> dict:
        self._http = aiohttp.ClientSession()
        self._room, self._user = room_id, user_id
        try:
            result = await self._call("POST", "/join", {"room": room_id, "user": user_id})
        except NaiveError:
            await self._http.close()
            self._http = None
            raise
        self._session_id = result["sessionId"]
        self._poller = asyncio.ensure_future(self._poll())
        return result

    async def _poll(self) -> None:
        from kindling_sdk.media import RemoteStream

        while self._session_id is not None:
            try:
                data = await self._call("GET", f"/streams?room={self._room}", op="streams")
            except NaiveError:
                await asyncio.sleep(self.POLL_S)
                continue
            now = {(s["userId"], s["type"]): s for s in data["streams"] if s["userId"] != self._user}
            for key in [k for k in self.remote_streams if k not in now]:
                self._emit("stream-removed", {"stream": self.remote_streams.pop(key)})
            for key, info in now.items():
                if key not in self.remote_streams:
                    stream = RemoteStream.from_info(info)
                    self.remote_streams[key] = stream
                    self._emit("stream-added", {"stream": stream})
            await asyncio.sleep(self.POLL_S)

    async def publish(self, stream) -> None:
        from kindling_sdk import media

        pc, request = await media.build_publish_offer(stream, MediaRelay())
        try:
            result = await self._call("POST", "/publish", {"sessionId": self._session_id, "request": request},
                                      op="publish")
            await media.apply_answer(pc, result["sdp"])
        except BaseException:
            await pc.close()
            raise
        stream.stream_id = result["streamId"]
        self._pub_pc = pc

    async def subscribe(self, stream, *, audio: bool | None = None, video: bool | None = None,
                        resolution_ids: list[str] | None = None):
        from kindling_sdk import media

        result = await self._call("POST", "/subscribe", {
            "sessionId": self._session_id, "userId": stream.user_id, "audio": bool(audio),
            "resolutionIds": resolution_ids if video else [],
        }, op="subscribe")
        if result.get("offer"):
            self._sub_pc = media.new_peer_connection()
            answer = await media.accept_subscriber_offer(self._sub_pc, result["offer"])
            await self._call("POST", "/answer", {"sessionId": self._session_id, "sdp": answer}, op="answer")
        media.assign_tracks(self._sub_pc, stream, result["assignments"])
        return stream

    async def leave(self) -> None:
        try:
            if self._session_id is not None:
                await self._call("POST", "/leave", {"sessionId": self._session_id}, op="leave")
        finally:
            await self.close()

    async def close(self) -> None:
        self._session_id = None
        if self._poller is not None:
            self._poller.cancel()
        for pc in (self._pub_pc, self._sub_pc):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        self._pub_pc = self._sub_pc = None
        if self._http is not None:
            await self._http.close()
            self._http = None


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m loadtest.naive_relay", description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18600)
    ap.add_argument("--media-host", default="127.0.0.1", help="address for ICE host candidates")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s relay: %(message)s")

    class ConsentOnly(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "Consent to send expired" in record.getMessage()

    ice = logging.getLogger("aioice.ice")  # log when an overloaded relay loses its peers (RFC 7675)
    ice.setLevel(logging.INFO)
    ice.addFilter(ConsentOnly())
    from kindling_sdk import use_host_addresses

    use_host_addresses([args.media_host])
    web.run_app(Relay().app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
