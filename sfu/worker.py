"""An SFU worker process: connects to the control plane over an authenticated
WebSocket (docs/worker-rpc.md), registers, heartbeats with its load, and executes
media commands for the rooms placed on it.

Run by ``kindling serve --workers N`` (one per core by default) or on another host
with ``kindling worker --control ws://control:8080/rpc/worker --secret S --media-host ADDR``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sfu import hooks
from sfu.audio_ranking import AudioRanking
from sfu.forwarder import Router
from sfu.peers import Publisher, SdpError, Subscriber, TrackInfo

log = logging.getLogger("kindling.sfu.worker")

HEARTBEAT_S = 1.0
MAX_SLOTS = 32
TOP_N = 3
TICK_S = 0.25
VOLUME_INTERVAL_S = 0.5
LOSS_HIGH = 0.08
LOSS_LOW = 0.02
FAULTS = os.environ.get("KINDLING_SFU_FAULTS") == "1"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class RpcError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False)
class RoomMedia:
    uid: str
    router: Router = field(default_factory=Router)
    ranking: AudioRanking = field(default_factory=lambda: AudioRanking(TOP_N))
    last_volume: float = 0.0
    publishers: dict[tuple[str, str], Publisher] = field(default_factory=dict)  # (session, type)
    subscribers: dict[str, Subscriber] = field(default_factory=dict)


class Worker:
    def __init__(self, control_url: str, secret: str, media_host: str, worker_id: str | None = None,
                 capacity: int = 1000) -> None:
        self.control_url = control_url
        self.secret = secret
        self.media_host = media_host
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.capacity = capacity
        self.rooms: dict[str, RoomMedia] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        hooks.install()
        hooks.use_host_addresses([self.media_host])
        delay = 0.2
        async with aiohttp.ClientSession() as http:
            while not self._stopping:
                try:
                    await self._session(http)
                    delay = 0.2
                except (aiohttp.ClientError, OSError, ConnectionError) as exc:
                    log.info("control plane not reachable (%s); retrying", exc)
                if self._stopping:
                    break
                # The control plane re-places rooms of a lost worker: start clean.
                await self._close_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            asyncio.ensure_future(self._ws.close())

    async def _session(self, http: aiohttp.ClientSession) -> None:
        headers = {"Authorization": f"Bearer {self.secret}"}
        ssl_opt = False if os.environ.get("KINDLING_WORKER_INSECURE_TLS") == "1" else True
        async with http.ws_connect(self.control_url, headers=headers, heartbeat=None, max_msg_size=0,
                                   ssl=ssl_opt) as ws:
            self._ws = ws
            await ws.send_str(json.dumps({"id": 0, "type": "register", "data": {
                "workerId": self.worker_id, "mediaHost": self.media_host, "capacity": self.capacity,
                "pid": os.getpid(),
            }}))
            beat = asyncio.create_task(self._heartbeat(ws))
            try:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    request = json.loads(msg.data)
                    if request.get("type") == "response":
                        if request.get("ok") is False:
                            log.error("control refused us: %s", request.get("error"))
                            self._stopping = True
                        continue
                    asyncio.create_task(self._serve(ws, request))
            finally:
                beat.cancel()
                self._ws = None

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(json.dumps({"type": "event", "event": "heartbeat", "data": self.load()}))

    def load(self) -> dict:
        pubs = sum(len(r.publishers) for r in self.rooms.values())
        subs = sum(len(r.subscribers) for r in self.rooms.values())
        sources = [s for r in self.rooms.values() for s in r.router.by_id.values()]
        return {
            "rooms": len(self.rooms),
            "publishers": pubs,
            "subscribers": subs,
            "packetsIn": sum(s.packets for s in sources),
            "cpuSeconds": time.process_time(),
            "rssBytes": _rss_bytes(),
            "time": time.time(),
        }

    # ------------------------------------------------------------------ commands

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, request: dict) -> None:
        rid = request.get("id")
        try:
            handler = getattr(self, "rpc_" + str(request.get("type", "")).replace("-", "_"), None)
            if handler is None:
                raise RpcError("unknown", f"unknown command {request.get('type')!r}")
            data = await handler(request.get("data") or {})
            reply: dict[str, Any] = {"id": rid, "type": "response", "ok": True, "data": data or {}}
        except RpcError as exc:
            reply = {"id": rid, "type": "response", "ok": False, "error": {"code": exc.code, "message": exc.message}}
        except SdpError as exc:
            reply = {"id": rid, "type": "response", "ok": False, "error": {"code": "sdp", "message": str(exc)}}
        except Exception as exc:
            log.exception("command %s failed", request.get("type"))
            reply = {"id": rid, "type": "response", "ok": False, "error": {"code": "internal", "message": str(exc)}}
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(reply))

    def _room(self, uid: str) -> RoomMedia:
        room = self.rooms.get(uid)
        if room is None:
            room = self.rooms[uid] = RoomMedia(uid)
        return room

    async def rpc_publish(self, d: dict) -> dict:
        room = self._room(d["roomUid"])
        key = (d["sessionId"], d["streamType"])
        old = room.publishers.pop(key, None)
        if old is not None:
            await old.close()
        pub = Publisher(d["sessionId"], d["streamType"], room.router, user_id=str(d.get("userId", "")))
        tracks = [TrackInfo(mid=t["mid"], kind=t["kind"], resolution_id=t.get("resolutionId"),
                            width=int(t.get("width", 0)), height=int(t.get("height", 0)),
                            bitrate=int(t.get("bitrate", 0))) for t in d["tracks"]]
        try:
            answer = await pub.negotiate(d["sdp"], tracks)
        except Exception:
            await pub.close()
            raise
        room.publishers[key] = pub
        return {"sdp": answer, "sources": [
            {"mid": t.mid, "kind": t.kind, "resolutionId": t.resolution_id} for t in tracks
        ]}

    async def rpc_unpublish(self, d: dict) -> dict:
        room = self.rooms.get(d["roomUid"])
        if room is not None:
            key = (d["sessionId"], d["streamType"])
            pub = room.publishers.pop(key, None)
            if pub is not None:
                await pub.close()
            self._release_stream(room, key)
        return {}

    def _release_stream(self, room: RoomMedia, key: tuple[str, str]) -> None:
        """Free every subscriber slot that carried a stream that is gone."""
        for sub in room.subscribers.values():
            for slot in sub.slots:
                if slot.stream_key == key:
                    self._release(room.router, slot)

    def _subscriber(self, room: RoomMedia, d: dict) -> tuple[Subscriber, bool]:
        sub = room.subscribers.get(d["sessionId"])
        if sub is not None:
            return sub, False
        sub = room.subscribers[d["sessionId"]] = Subscriber(
            d["sessionId"], room.router, user_id=str(d.get("userId", "")), top_n=bool(d.get("topN")),
            faults=FAULTS,
        )
        if sub.top_n:
            room.router.rank_audio = True
        return sub, True

    async def _offer_if_new(self, sub: Subscriber, new: bool, d: dict) -> str | None:
        if not new:
            return None
        video = int(d.get("videoSlots", 4))
        audio = int(d.get("audioSlots", 4))
        if not (0 <= video <= MAX_SLOTS and 0 <= audio <= MAX_SLOTS):
            raise RpcError("slots", f"slots must be within 0..{MAX_SLOTS}")
        if sub.top_n:
            audio = max(audio, TOP_N)
        offer = await sub.offer(video, audio)
        if sub.top_n:
            for slot in [s for s in sub.slots if s.kind == "audio"][:TOP_N]:
                slot.top_n = True
        return offer

    async def rpc_subscriber_connect(self, d: dict) -> dict:
        """Negotiate the subscriber connection without subscribing to anything yet
        (a top-N listener receives audio it never subscribed to)."""
        room = self._room(d["roomUid"])
        sub, new = self._subscriber(room, d)
        return {"offer": await self._offer_if_new(sub, new, d)}

    async def rpc_subscribe(self, d: dict) -> dict:
        """Set what one subscriber receives of one publisher stream: audio or not, and
        the set of resolutions. Slots already carrying that stream are reused, so
        changing resolutions switches in place (keyframe-gated, no renegotiation).
        The first call negotiates the subscriber connection and returns its offer."""
        room = self._room(d["roomUid"])
        sub, new = self._subscriber(room, d)
        try:
            return await self._subscribe(room, sub, new, d)
        except Exception:
            if new:
                # The offer of a new connection must reach the client with a successful
                # answer, or the next subscribe has to offer again: start over.
                room.subscribers.pop(d["sessionId"], None)
                await sub.close()
            raise

    async def _subscribe(self, room: RoomMedia, sub: Subscriber, new: bool, d: dict) -> dict:
        offer = await self._offer_if_new(sub, new, d)
        key = (d["publisherSession"], d["streamType"])
        pub = room.publishers.get(key)
        if pub is None:
            raise RpcError("no-stream", "the stream is not published")
        router = room.router
        floor = int(d.get("floorPixels") or 0)
        want_res = [r for r in (d.get("resolutionIds") or [])]
        video_srcs = {src.resolution_id: src for src in pub.sources if src.kind == "video"}
        audio_src = next((src for src in pub.sources if src.kind == "audio"), None)
        mine = [slot for slot in sub.slots if slot.stream_key == key]
        # audio
        audio_slot = next((s for s in mine if s.kind == "audio"), None)
        if d.get("audio") and audio_src is not None:
            if audio_slot is None:
                audio_slot = self._free(sub, "audio")
                audio_slot.stream_key = key
                router.attach(audio_slot, audio_src)
        elif audio_slot is not None:
            self._release(router, audio_slot)
        # video: keep slots whose resolution is still wanted, reuse the others in place
        current = {s.requested: s for s in mine if s.kind == "video"}
        spare = [s for r, s in current.items() if r not in want_res]
        for res in want_res:
            if res not in video_srcs:
                raise RpcError("no-stream", f"unknown resolution {res}")
            slot = current.get(res) or (spare.pop(0) if spare else self._free(sub, "video"))
            if slot.requested != res:
                slot.step = 0
            slot.stream_key, slot.requested, slot.floor_pixels = key, res, floor
            self._apply_layer(router, pub, slot)
        for slot in spare:
            self._release(router, slot)
        assignments = [{"mid": s.mid, "kind": s.kind, "resolutionId": s.requested}
                       for s in sub.slots if s.stream_key == key]
        return {"offer": offer, "assignments": assignments}

    @staticmethod
    def _free(sub: Subscriber, kind: str):
        for slot in sub.slots:
            if slot.kind == kind and slot.stream_key is None and not slot.top_n:
                return slot
        raise RpcError("slots", f"no free {kind} slot")

    @staticmethod
    def _release(router: Router, slot) -> None:
        router.detach(slot)
        slot.stream_key = slot.requested = None
        slot.step = slot.floor_pixels = 0

    @staticmethod
    def _layers(pub: Publisher) -> list:
        return sorted((s for s in pub.sources if s.kind == "video"), key=lambda s: (s.pixels, s.bitrate),
                      reverse=True)

    def _target(self, pub: Publisher, slot) -> Any:
        """The layer a slot should carry: the requested one, ``step`` layers lower
        while adaptation holds it down, never below the subscriber's floor."""
        layers = self._layers(pub)
        idx = next(i for i, s in enumerate(layers) if s.resolution_id == slot.requested)
        lowest = idx
        for i in range(idx, len(layers)):
            if layers[i].pixels >= slot.floor_pixels:
                lowest = i
        slot.step = max(0, min(slot.step, lowest - idx))
        return layers[idx + slot.step]

    def _apply_layer(self, router: Router, pub: Publisher, slot) -> None:
        target = self._target(pub, slot)
        if slot.pending is not target and (slot.source is not target or slot.pending is not None):
            router.attach(slot, target)

    async def rpc_set_bandwidth(self, d: dict) -> dict:
        room = self.rooms.get(d["roomUid"])
        sub = room.subscribers.get(d["sessionId"]) if room else None
        if sub is not None:
            sub.cap_kbps = int(d["maxKbps"]) if d.get("maxKbps") else None
            self._adapt(room, sub, time.monotonic(), force=True)
        return {}

    async def rpc_debug_drop(self, d: dict) -> dict:
        if not FAULTS:
            raise RpcError("unknown", "fault injection is off (KINDLING_SFU_FAULTS)")
        room = self.rooms.get(d["roomUid"])
        sub = room.subscribers.get(d["sessionId"]) if room else None
        if sub is None:
            raise RpcError("no-subscriber", "no such subscriber")
        sub.drop_ratio = float(d["ratio"])
        return {}

    def _adapt(self, room: RoomMedia, sub: Subscriber, now: float, force: bool = False) -> None:
        """Downlink adaptation (issue 5): step down one layer at a time to the floor
        while the subscriber reports loss or exceeds its cap; step back up after a
        quiet period. Hysteresis: 2 s between downward moves, 6 s of low loss before
        an upward one."""
        loss = sub.sample_loss() if not force else sub.loss
        slots = [s for s in sub.slots if s.kind == "video" and s.stream_key is not None and s.requested]
        if not slots:
            return
        pubs = {s.stream_key: room.publishers.get(s.stream_key) for s in slots}
        slots = [s for s in slots if pubs[s.stream_key] is not None]

        def total() -> int:
            return sum(self._target(pubs[s.stream_key], s).bitrate for s in slots)

        def step(down: bool) -> bool:
            order = sorted(slots, key=lambda s: self._target(pubs[s.stream_key], s).bitrate, reverse=down)
            for slot in order:
                before = slot.step
                slot.step += 1 if down else -1
                if slot.step < 0:
                    slot.step = 0
                self._target(pubs[slot.stream_key], slot)  # clamps to the floor
                if slot.step != before:
                    return True
            return False

        moved = False
        if sub.cap_kbps is not None:
            while total() > sub.cap_kbps and step(True):
                moved = True
        if not moved and (force or now - sub.last_adapt >= 2.0) and loss > LOSS_HIGH:
            moved = step(True)
        elif not moved and now - sub.last_adapt >= 6.0 and loss < LOSS_LOW:
            saved = {id(s): s.step for s in slots}
            if step(False) and sub.cap_kbps is not None and total() > sub.cap_kbps:
                for s in slots:
                    s.step = saved[id(s)]
            else:
                moved = any(s.step != saved[id(s)] for s in slots)
        if moved:
            log.debug("adapt %s loss=%.3f cap=%s steps=%s", sub.session_id, sub.loss, sub.cap_kbps,
                      [s.step for s in slots])
            sub.last_adapt = now
            for slot in slots:
                self._apply_layer(room.router, pubs[slot.stream_key], slot)

    def _rank_top_n(self, room: RoomMedia, now: float) -> None:
        listeners = [s for s in room.subscribers.values() if s.top_n]
        if not listeners:
            room.router.rank_audio = False
            return
        room.router.rank_audio = True
        audio = [s for s in room.router.by_id.values() if s.kind == "audio"]
        ranked = room.ranking.tick(audio, now)
        for sub in listeners:
            chosen = room.ranking.for_listener(sub.user_id)
            slots = [s for s in sub.slots if s.top_n]
            # Keep a speaker on its slot; fill freed slots with newcomers.
            for slot in slots:
                current = slot.pending or slot.source
                if current is not None and current not in chosen:
                    room.router.detach(slot)
            placed = {id(s.pending or s.source) for s in slots if (s.pending or s.source) is not None}
            free = [s for s in slots if s.source is None and s.pending is None]
            for src in chosen:
                if id(src) not in placed and free:
                    room.router.attach(free.pop(0), src)
        if now - room.last_volume >= VOLUME_INTERVAL_S and ranked:
            room.last_volume = now
            self._event("volume", {"roomUid": room.uid, "speakers": [
                {"userId": s.user_id, "volume": AudioRanking.volume(s)} for s in ranked[:TOP_N + 1]
            ]})

    def _announce_demand(self, room: RoomMedia) -> None:
        """Tell publishers which of their resolutions someone watches (or is switching
        to), so the others need not be encoded or sent (OQ-14, autoPushVideo=false).
        Sent when the set changes; publishers start with everything on."""
        for (session_id, stream_type), pub in room.publishers.items():
            active = frozenset(s.resolution_id for s in pub.sources
                               if s.kind == "video" and (s.slots or s.waiting))
            if active != pub.demand:
                pub.demand = active
                self._event("demand", {"roomUid": room.uid, "sessionId": session_id, "streamType": stream_type,
                                       "resolutionIds": sorted(active)})

    def _event(self, name: str, data: dict) -> None:
        ws = self._ws
        if ws is not None and not ws.closed:
            asyncio.ensure_future(self._send_event(ws, name, data))

    @staticmethod
    async def _send_event(ws, name: str, data: dict) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps({"type": "event", "event": name, "data": data}))

    async def rpc_subscriber_answer(self, d: dict) -> dict:
        room = self.rooms.get(d["roomUid"])
        sub = room.subscribers.get(d["sessionId"]) if room else None
        if sub is None:
            raise RpcError("no-subscriber", "no subscriber connection to answer")
        await sub.answer(d["sdp"])
        return {}

    async def rpc_close_session(self, d: dict) -> dict:
        room = self.rooms.get(d["roomUid"])
        if room is None:
            return {}
        for key in [k for k in room.publishers if k[0] == d["sessionId"]]:
            await room.publishers.pop(key).close()
            self._release_stream(room, key)
        sub = room.subscribers.pop(d["sessionId"], None)
        if sub is not None:
            await sub.close()
        return {}

    async def rpc_close_room(self, d: dict) -> dict:
        room = self.rooms.pop(d["roomUid"], None)
        if room is not None:
            await self._close_room(room)
        return {}

    async def _close_room(self, room: RoomMedia) -> None:
        for pub in room.publishers.values():
            await pub.close()
        for sub in room.subscribers.values():
            await sub.close()

    async def _close_all(self) -> None:
        rooms, self.rooms = self.rooms, {}
        for room in rooms.values():
            await self._close_room(room)

    async def tick_loop(self) -> None:
        """Control work a few times a second, off the per-packet path: keyframe
        retries, top-N ranking (one per room), downlink adaptation."""
        ticks = 0
        while True:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            ticks += 1
            for room in list(self.rooms.values()):
                try:
                    if ticks % 2 == 0:
                        room.router.retry_keyframes(now)
                    self._rank_top_n(room, now)
                    if ticks % 2 == 0:
                        for sub in room.subscribers.values():
                            self._adapt(room, sub, now)
                        self._announce_demand(room)
                    if ticks % 8 == 0 and log.isEnabledFor(logging.DEBUG):
                        self._debug_room(room)
                except Exception:
                    log.exception("tick failed for room %s", room.uid)

    @staticmethod
    def _debug_room(room: RoomMedia) -> None:
        for src in room.router.by_id.values():
            log.debug("source %s %s/%s ssrc=%d packets=%d slots=%d waiting=%d", src.id, src.kind, src.resolution_id,
                      src.ssrc, src.packets, len(src.slots), len(src.waiting))
        for sub in room.subscribers.values():
            log.debug("subscriber %s loss=%.3f drop=%.2f", sub.session_id, sub.loss, sub.drop_ratio)
            for slot in sub.slots:
                dt = slot.downtrack
                log.debug("slot %s %s ready=%s source=%s pending=%s sent=%s", slot.mid, slot.kind,
                          slot.send is not None, slot.source and slot.source.id, slot.pending and slot.pending.id,
                          dt.packets if dt else None)


def run_worker(control_url: str, secret: str, media_host: str, worker_id: str | None = None) -> None:
    async def main() -> None:
        import signal

        worker = Worker(control_url, secret, media_host, worker_id)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, worker.stop)
        retry = asyncio.create_task(worker.tick_loop())
        try:
            await worker.run()
        finally:
            retry.cancel()
            log.info("worker %s stopping", worker.worker_id)
            try:
                await asyncio.wait_for(worker._close_all(), 3.0)
            except TimeoutError:
                log.warning("peer connections did not close in time")
            log.info("worker %s stopped", worker.worker_id)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:  # pragma: no cover
        asyncio.run(main())


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(prog="python -m sfu.worker")
    p.add_argument("--control", required=True)
    p.add_argument("--secret", default=os.environ.get("KINDLING_WORKER_SECRET", ""))
    p.add_argument("--media-host", default=os.environ.get("KINDLING_MEDIA_HOST", "127.0.0.1"))
    p.add_argument("--worker-id", default=None)
    a = p.parse_args()
    logging.basicConfig(level=os.environ.get("KINDLING_SFU_LOG", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    run_worker(a.control, a.secret, a.media_host, a.worker_id)
