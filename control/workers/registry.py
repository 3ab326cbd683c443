"""SFU workers as the control plane sees them: registration over the RPC
WebSocket (docs/worker-rpc.md), heartbeats and load, room placement on the
least-loaded live worker (recorded in PostgreSQL), and failure detection."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert

from control.services import SERVICES
from control.store.models import Room as RoomRow
from control.store.models import Worker as WorkerRow
from control.timefmt import utcnow

log = logging.getLogger("kindling.workers")

RPC_PATH = "/rpc/worker"
HEARTBEAT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 15.0


class WorkerError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(eq=False)
class WorkerConn:
    worker_id: str
    media_host: str
    capacity: int
    ws: web.WebSocketResponse
    load: dict = field(default_factory=dict)
    last_heartbeat: float = field(default_factory=time.monotonic)
    rooms: set[str] = field(default_factory=set)
    alive: bool = True
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _pending: dict[int, asyncio.Future] = field(default_factory=dict)

    def score(self) -> float:
        """Lower is better: placed rooms plus media sessions, relative to capacity."""
        sessions = self.load.get("publishers", 0) + self.load.get("subscribers", 0)
        return (len(self.rooms) * 10 + sessions) / max(1, self.capacity)

    async def call(self, rtype: str, data: dict, timeout: float = CALL_TIMEOUT_S) -> dict:
        if not self.alive:
            raise WorkerError("dead", "the worker is gone")
        rid = next(self._ids)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self.ws.send_str(json.dumps({"id": rid, "type": rtype, "data": data}))
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise WorkerError("timeout", f"{rtype} timed out") from None
        except (ConnectionError, RuntimeError) as exc:
            raise WorkerError("dead", str(exc)) from None
        finally:
            self._pending.pop(rid, None)

    def resolve(self, msg: dict) -> None:
        fut = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
        if fut is None or fut.done():
            return
        if msg.get("ok"):
            fut.set_result(msg.get("data") or {})
        else:
            err = msg.get("error") or {}
            fut.set_exception(WorkerError(str(err.get("code")), str(err.get("message"))))

    def fail_pending(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(WorkerError("dead", "the worker went away"))


class WorkerRegistry:
    def __init__(self, svc: Any) -> None:
        self._svc = svc
        self.workers: dict[str, WorkerConn] = {}
        self.on_worker_lost: Callable[[WorkerConn, set[str]], None] | None = None
        self.changed = asyncio.Event()

    def live(self) -> list[WorkerConn]:
        return [w for w in self.workers.values() if w.alive]

    def place(self, room_uid: str, current: str | None) -> WorkerConn | None:
        """The worker hosting a room: its current one while alive, else the least loaded."""
        if current is not None:
            w = self.workers.get(current)
            if w is not None and w.alive:
                return w
        live = self.live()
        if not live:
            return None
        best = min(live, key=WorkerConn.score)
        best.rooms.add(room_uid)
        asyncio.ensure_future(self._record_placement(room_uid, best.worker_id))
        return best

    def release(self, room_uid: str, worker_id: str | None) -> None:
        w = self.workers.get(worker_id) if worker_id else None
        if w is not None:
            w.rooms.discard(room_uid)

    async def _record_placement(self, room_uid: str, worker_id: str | None) -> None:
        # The room row is written by the room persister; make sure it is there first.
        rooms = self._svc.rooms
        if rooms is not None:
            await rooms.persister.flush()
        async with self._svc.sessions.begin() as s:
            await s.execute(update(RoomRow).where(RoomRow.id == room_uid).values(worker_id=worker_id))

    async def _record_worker(self, w: WorkerConn, state: str) -> None:
        now = utcnow()
        async with self._svc.sessions.begin() as s:
            stmt = insert(WorkerRow).values(
                worker_id=w.worker_id, media_host=w.media_host, capacity=w.capacity, state=state,
                registered_at=now, last_heartbeat=now, load=w.load,
            )
            await s.execute(stmt.on_conflict_do_update(
                index_elements=[WorkerRow.worker_id],
                set_={"state": state, "media_host": w.media_host, "capacity": w.capacity, "last_heartbeat": now,
                      "load": w.load},
            ))

    def lost(self, w: WorkerConn) -> None:
        if not w.alive:
            return
        w.alive = False
        w.fail_pending()
        rooms, w.rooms = set(w.rooms), set()
        log.warning("worker %s lost; %d rooms to re-place", w.worker_id, len(rooms))
        asyncio.ensure_future(self._record_worker(w, "DEAD"))
        if self.on_worker_lost is not None:
            self.on_worker_lost(w, rooms)

    def sweep(self, now: float) -> None:
        for w in self.live():
            if now - w.last_heartbeat > HEARTBEAT_TIMEOUT_S:
                with contextlib.suppress(Exception):
                    asyncio.ensure_future(w.ws.close())
                self.lost(w)

    async def wait_for_workers(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.live()) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True


async def rpc_endpoint(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    registry: WorkerRegistry = svc.workers
    secret = svc.settings.worker_secret or ""
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        return web.json_response({"error": "worker authentication failed"}, status=403)
    ws = web.WebSocketResponse(heartbeat=None, max_msg_size=16 * 1024 * 1024)
    await ws.prepare(request)
    conn: WorkerConn | None = None
    try:
        first = await ws.receive(timeout=10)
        msg = json.loads(first.data) if first.type == WSMsgType.TEXT else {}
        d = msg.get("data") or {}
        if msg.get("type") != "register" or not isinstance(d.get("workerId"), str):
            await ws.send_str(json.dumps({"id": msg.get("id"), "type": "response", "ok": False,
                                          "error": {"code": "register", "message": "register first"}}))
            return ws
        old = registry.workers.get(d["workerId"])
        if old is not None:
            registry.lost(old)
        conn = WorkerConn(d["workerId"], str(d.get("mediaHost", "")), int(d.get("capacity", 1000)), ws)
        registry.workers[conn.worker_id] = conn
        await registry._record_worker(conn, "ALIVE")
        await ws.send_str(json.dumps({"id": msg.get("id"), "type": "response", "ok": True, "data": {}}))
        registry.changed.set()
        log.info("worker %s registered (media %s)", conn.worker_id, conn.media_host)
        async for m in ws:
            if m.type != WSMsgType.TEXT:
                break
            payload = json.loads(m.data)
            if payload.get("type") == "response":
                conn.resolve(payload)
            elif payload.get("type") == "event" and payload.get("event") == "heartbeat":
                conn.last_heartbeat = time.monotonic()
                conn.load = payload.get("data") or {}
            elif payload.get("type") == "event" and payload.get("event") == "demand":
                d = payload.get("data") or {}
                media = svc.rooms.media if svc.rooms is not None else None
                if media is not None:
                    media.on_demand(str(d.get("roomUid")), str(d.get("sessionId")), str(d.get("streamType")),
                                    list(d.get("resolutionIds") or []))
            elif payload.get("type") == "event" and payload.get("event") == "volume":
                d = payload.get("data") or {}
                media = svc.rooms.media if svc.rooms is not None else None
                if media is not None:
                    media.on_volume(str(d.get("roomUid")), list(d.get("speakers") or []))
    except (TimeoutError, ValueError):
        pass
    finally:
        if conn is not None and registry.workers.get(conn.worker_id) is conn:
            registry.lost(conn)
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get(RPC_PATH, rpc_endpoint)
