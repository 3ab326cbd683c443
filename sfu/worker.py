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
from sfu.forwarder import Router
from sfu.peers import Publisher, SdpError, Subscriber, TrackInfo

log = logging.getLogger("kindling.sfu.worker")

HEARTBEAT_S = 1.0
MAX_SLOTS = 32


class RpcError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(eq=False)
class RoomMedia:
    uid: str
    router: Router = field(default_factory=Router)
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
        ssl_opt = False if os.environ.get("KINDLING_WORKER_INSECURE_TLS") == "1" else None
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
        pub = Publisher(d["sessionId"], d["streamType"], room.router)
        tracks = [TrackInfo(mid=t["mid"], kind=t["kind"], resolution_id=t.get("resolutionId")) for t in d["tracks"]]
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
            pub = room.publishers.pop((d["sessionId"], d["streamType"]), None)
            if pub is not None:
                await pub.close()
        return {}

    async def rpc_subscribe(self, d: dict) -> dict:
        """Map (or unmap) sources of one publisher stream onto this subscriber's slots.
        The first call negotiates the subscriber connection and returns its offer."""
        room = self._room(d["roomUid"])
        sub = room.subscribers.get(d["sessionId"])
        offer = None
        if sub is None:
            video = int(d.get("videoSlots", 4))
            audio = int(d.get("audioSlots", 4))
            if not (0 <= video <= MAX_SLOTS and 0 <= audio <= MAX_SLOTS):
                raise RpcError("slots", f"slots must be within 0..{MAX_SLOTS}")
            sub = room.subscribers[d["sessionId"]] = Subscriber(d["sessionId"], room.router)
            offer = await sub.offer(video, audio)
        pub = room.publishers.get((d["publisherSession"], d["streamType"]))
        if pub is None:
            raise RpcError("no-stream", "the stream is not published")
        want_audio = bool(d.get("audio"))
        want_res = d.get("resolutionIds")  # None: no video; [] never reaches here
        assignments = []
        for src in pub.sources:
            wanted = (src.kind == "audio" and want_audio) or (
                src.kind == "video" and want_res is not None and src.resolution_id in want_res
            )
            current = next((s for s in sub.slots if s.source is src or s.pending is src), None)
            if wanted and current is None:
                slot = sub.free_slot(src.kind)
                if slot is None:
                    raise RpcError("slots", f"no free {src.kind} slot")
                room.router.attach(slot, src)
                current = slot
            elif not wanted and current is not None:
                room.router.detach(current)
                current = None
            if current is not None:
                assignments.append({"mid": current.mid, "kind": src.kind, "resolutionId": src.resolution_id})
        return {"offer": offer, "assignments": assignments}

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

    async def keyframe_retry_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            ticks += 1
            for room in self.rooms.values():
                room.router.retry_keyframes(now)
                if ticks % 4 == 0 and log.isEnabledFor(logging.DEBUG):
                    self._debug_room(room)

    @staticmethod
    def _debug_room(room: RoomMedia) -> None:
        for src in room.router.by_id.values():
            log.debug("source %s %s/%s ssrc=%d packets=%d slots=%d waiting=%d", src.id, src.kind, src.resolution_id,
                      src.ssrc, src.packets, len(src.slots), len(src.waiting))
        for sub in room.subscribers.values():
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
        retry = asyncio.create_task(worker.keyframe_retry_loop())
        try:
            await worker.run()
        finally:
            retry.cancel()
            await worker._close_all()

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
