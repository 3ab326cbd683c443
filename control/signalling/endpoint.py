"""The client signalling WebSocket (``GET /signalling``).

One connection carries one session (like one ``Client`` object of the Web SDK).
Requests are handled one at a time in arrival order and each gets exactly one
response; events are pushed through the same outbox so a response and the events
it causes reach the client in the order they happened. The outbox is a queue with
its own writer task, so the room logic never awaits a slow socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from control.errors import ClientErrors, SignallingError
from control.rooms.model import Member
from control.rooms.service import RoomService, event
from control.services import SERVICES
from control.signalling import protocol
from control.throttle import TokenBucket

log = logging.getLogger("kindling.signalling")

PATH = "/signalling"
_MAX_QUEUE = 10000
_CLOSE = object()


class Connection:
    def __init__(self, ws: web.WebSocketResponse, rooms: RoomService, *, rate: float, burst: int) -> None:
        self.ws = ws
        self.rooms = rooms
        self.member: Member | None = None
        self.last_seen = rooms.clock()
        self.bucket = TokenBucket(rate=rate, capacity=float(burst))
        self._queue: asyncio.Queue = asyncio.Queue()
        self._closing = False
        self._writer = asyncio.create_task(self._write())

    # ------------------------------------------------------------------ outbox

    def push(self, message: str) -> None:
        if self._closing:
            return
        if self._queue.qsize() >= _MAX_QUEUE:
            # A consumer this far behind is gone in practice; drop it rather than grow.
            log.warning("signalling client too slow; closing")
            self.close()
            return
        self._queue.put_nowait(message)

    def close(self) -> None:
        """Flush what is queued, then close the socket."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(_CLOSE)

    async def _write(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if item is _CLOSE:
                    break
                await self.ws.send_str(item)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            if not self.ws.closed:
                try:
                    await self.ws.close()
                except Exception:  # the peer may already be gone
                    pass

    async def finish(self) -> None:
        self.close()
        try:
            await asyncio.wait_for(self._writer, 2.0)
        except (TimeoutError, asyncio.CancelledError):
            self._writer.cancel()

    # ------------------------------------------------------------------ requests

    def respond(self, rid: Any, data: dict | None = None) -> None:
        self.push(json.dumps({"id": rid, "type": "response", "ok": True, "data": data or {}}, separators=(",", ":")))

    def fail(self, rid: Any, err: SignallingError) -> None:
        self.push(json.dumps({"id": rid, "type": "response", "ok": False, "error": err.payload()},
                             separators=(",", ":")))

    async def on_text(self, text: str, max_bytes: int) -> None:
        self.last_seen = self.rooms.clock()
        if self.member is not None:
            self.rooms.seen(self.member)
        if len(text) > max_bytes:
            self.fail(None, SignallingError(ClientErrors.INVALID_CTRL_PARAMETER,
                                            f"message larger than {max_bytes} bytes", "RTC.32000013"))
            return
        req, err, rid = protocol.parse_frame(text)
        if err is not None:
            self.fail(rid, err)
            return
        assert req is not None
        if not self.bucket.take():
            self.fail(req.id, SignallingError(ClientErrors.REQUEST_FREQUENTLY, None, "RTC.31000005"))
            return
        metrics = self.rooms._svc.metrics.signalling_requests
        try:
            data = await self._dispatch(req)
        except SignallingError as exc:
            metrics.labels(req.type, str(exc.error.code)).inc()
            self.fail(req.id, exc)
            return
        except Exception:
            log.exception("signalling request %s failed", req.type)
            metrics.labels(req.type, str(ClientErrors.INTERNAL_ERROR.code)).inc()
            self.fail(req.id, SignallingError(ClientErrors.INTERNAL_ERROR, None, "RTC.10000001"))
            return
        metrics.labels(req.type, "0").inc()
        self.respond(req.id, data)
        if req.type in ("join", "resume") and self.member is not None:
            if req.type == "join":
                self.rooms.introduce(self.member)
            else:
                self.rooms.deliver_pending(self.member)

    def _joined(self) -> Member:
        if self.member is None:
            raise SignallingError(ClientErrors.INVALID_OPERATION, "join a room first")
        if self.member.conn is not self:
            self.member = None
            raise SignallingError(ClientErrors.STATUS_ERROR, "the session is no longer in the room")
        return self.member

    async def _dispatch(self, req: protocol.Request) -> dict | None:
        rooms = self.rooms
        t = req.type
        if t == "heartbeat":
            protocol.empty(req.data)
            return {"serverTime": int(rooms.clock() * 1000)}
        if t == "join":
            jr = protocol.join_request(req.data)
            if self.member is not None:
                raise SignallingError(ClientErrors.ALREADY_JOINED, None, "RTC.32000033")  # R-USER-04
            member, token = await rooms.join(self, jr)
            self.member = member
            return self._session_info(member, token)
        if t == "resume":
            token, ctime, signature = protocol.resume_request(req.data)
            if self.member is not None:
                raise SignallingError(ClientErrors.ALREADY_JOINED, None, "RTC.32000033")
            member = await rooms.resume(self, token, ctime, signature)
            self.member = member
            return self._session_info(member, token)
        if t == "leave":
            protocol.empty(req.data)
            member = self._joined()
            await rooms.leave(member)
            member.conn = None
            self.member = None
            return None
        if t == "switchRole":
            f, ctime, signature = protocol.credential(req.data, {"role"})
            role = f.role()
            await rooms.switch_role(self._joined(), role, ctime, signature)
            return {"role": role}
        if t == "changeUserName":
            name = protocol.user_name(req.data)
            await rooms.change_user_name(self._joined(), name)
            return {"userName": name}
        if t == "renewSignature":
            _, ctime, signature = protocol.credential(req.data)
            await rooms.renew_signature(self._joined(), ctime, signature)
            return {"renewed": True}
        media = rooms.media
        assert media is not None
        if t == "publish":
            d = protocol.publish_request(req.data)
            return await media.publish(self._joined(), d)
        if t == "unpublish":
            await media.unpublish(self._joined(), protocol.stream_type_only(req.data))
            return None
        if t == "subscribe":
            return await media.subscribe(self._joined(), protocol.subscribe_request(req.data), replace=False)
        if t == "unsubscribe":
            return await media.unsubscribe(self._joined(), protocol.subscribe_request(req.data))
        if t == "subscriberAnswer":
            await media.subscriber_answer(self._joined(), protocol.sdp_only(req.data))
            return None
        if t == "batchSubscribe":
            return await media.batch_subscribe(self._joined(), protocol.batch_subscribe_request(req.data))
        if t == "subscriberConnect":
            protocol.empty(req.data)
            return await media.subscriber_connect(self._joined())
        if t == "setNetworkBandwidth":
            await media.set_bandwidth(self._joined(), protocol.bandwidth_request(req.data))
            return None
        if t == "mute":
            stype, kind, muted = protocol.mute_request(req.data)
            media.mute(self._joined(), stype, kind, muted)
            return None
        raise SignallingError(ClientErrors.INVALID_CTRL_PARAMETER, f"unknown request type {t!r}")

    def _session_info(self, member: Member, token: str) -> dict:
        s = self.rooms._settings
        return {
            "sessionId": member.session_id,
            "resumeToken": token,
            "roomId": member.room.room_id,
            "userId": member.user_id,
            "userName": member.user_name,
            "role": member.role,
            "signatureExpiresAt": member.sig_expiry,
            "keepalive": s.keepalive_s,
            "heartbeatInterval": s.heartbeat_interval_s,
            "streams": sorted(member.streams),
        }


async def signalling(request: web.Request) -> web.StreamResponse:
    svc = request.app[SERVICES]
    rooms = svc.rooms
    assert rooms is not None
    s = svc.settings
    # aiohttp's own cap sits above ours, so a merely large frame gets a documented
    # error response; only a grossly oversized one is cut off by aiohttp (close 1009).
    ws = web.WebSocketResponse(max_msg_size=s.ws_max_message_bytes * 4, heartbeat=None)
    await ws.prepare(request)
    conn = Connection(ws, rooms, rate=s.ws_rate_per_s, burst=s.ws_burst)
    rooms.connections.add(conn)
    # R-CONN-02: configuration is delivered as soon as the socket is up.
    conn.push(event("config", {
        "heartbeatInterval": s.heartbeat_interval_s,
        "disconnectAfter": s.disconnect_after_s,
        "keepalive": s.keepalive_s,
        "maxMessageBytes": s.ws_max_message_bytes,
    }))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await conn.on_text(msg.data, s.ws_max_message_bytes)
            elif msg.type == WSMsgType.BINARY:
                conn.fail(None, SignallingError(ClientErrors.INVALID_CTRL_PARAMETER,
                                                "binary frames are not part of the protocol", "RTC.32000013"))
            else:
                break
    finally:
        rooms.connections.discard(conn)
        member = conn.member
        if member is not None and member.conn is conn:
            rooms.disconnected(member)
        await conn.finish()
    return ws


def add_routes(app: web.Application) -> None:
    app.router.add_get(PATH, signalling)
