"""The room state machine.

Every decision (limits, roles, bans, expiry) is taken synchronously on the event
loop, between two awaits, so concurrent requests cannot interleave half-way: a
join either happens completely or not at all. Events go into each member's outbox
(or its pending list while it is disconnected); durable transitions go to the
write-behind ``Persister``.

Rules implemented here are named by their room-rules.md numbers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from control import ids
from control.auth.signature import check_signature
from control.errors import LEAVE_REASONS, ClientErrors, SignallingError
from control.rooms.model import JOINER, PLAYER, Member, Outbox, Room
from control.rooms.persistence import Persister
from control.store.apps import ACTIVATION, DELETED, JoinableApp

if TYPE_CHECKING:
    from control.rooms.media import MediaCoordinator
    from control.services import Services

log = logging.getLogger("kindling.rooms")

_APP_CACHE_TTL_S = 2.0


def event(name: str, data: dict) -> str:
    return json.dumps({"type": "event", "event": name, "data": data}, separators=(",", ":"))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def leave_reason(code: int) -> dict:
    return {"code": code, "msg": LEAVE_REASONS[code]}


@dataclass(slots=True)
class JoinRequest:
    app_id: str
    room_id: str
    user_id: str
    user_name: str
    role: int
    ctime: str
    signature: str
    top_n: bool = False


class RoomService:
    def __init__(self, svc: Services) -> None:
        self._svc = svc
        self._settings = svc.settings
        self.persister = Persister(svc.sessions)
        self.rooms: dict[tuple[str, str], Room] = {}
        self.user_rooms: dict[tuple[str, str], set[tuple[str, str]]] = {}
        self.by_token: dict[str, Member] = {}
        self.connections: set = set()
        self._app_cache: dict[str, tuple[float, JoinableApp | None]] = {}
        self._sweeper: asyncio.Task | None = None
        self.media: MediaCoordinator | None = None  # wired by build_services
        self._stopping = False
        self.clock = time.time  # wall clock (UNIX seconds); tests may replace it

    # ================================================================== lifecycle

    async def start(self) -> None:
        await self._restore()
        self.persister.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="kindling-room-sweeper")

    async def stop(self) -> None:
        """Graceful shutdown: every member counts as disconnected now, so after a
        restart the keepalive window runs exactly as if the server had stayed up
        and the clients had lost their network at this moment."""
        self._stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
        now = self.clock()
        for room in self.rooms.values():
            for m in room.members.values():
                if m.conn is not None:
                    m.conn = None
                    m.disconnected_at = now
                    self.persister.session_changed(m, connected=False, disconnected_at=now, last_seen=now)
        for conn in list(self.connections):
            conn.close()
        await self.persister.stop()

    async def _restore(self) -> None:
        rooms, parts = await self.persister.load_running()
        now = self.clock()
        by_uid: dict[str, Room] = {}
        for row in rooms:
            room = Room(row.id, row.app_id, row.room_id, row.owner_user_id, row.start_time.timestamp())
            by_uid[room.uid] = room
            self.rooms[room.key] = room
        for p in parts:
            room = by_uid.get(p.room_uid)
            if room is None:
                continue
            lost = p.disconnected_at or p.last_seen
            m = Member(
                session_id=p.session_id, room=room, user_id=p.user_id, user_name=p.user_name,
                role=p.role, resume_hash=p.resume_token_hash, sig_expiry=p.signature_expires_at,
                top_n=p.top_n, joined_at=p.joined_at.timestamp(), last_seen=p.last_seen.timestamp(),
                conn=None, disconnected_at=lost.timestamp(),
                sig_expired_notified=p.signature_expires_at <= now,
            )
            room.members[m.user_id] = m
            self.user_rooms.setdefault(m.key, set()).add(room.key)
            self.by_token[m.resume_hash] = m
        for room in list(self.rooms.values()):
            if not room.members:
                self._close_room(room, now, "EMPTY")
        if rooms:
            log.info("restored %d running rooms with %d sessions", len(self.rooms), len(parts))

    # ================================================================== apps

    async def _app(self, app_id: str) -> JoinableApp | None:
        now = time.monotonic()
        hit = self._app_cache.get(app_id)
        if hit is not None and now - hit[0] < _APP_CACHE_TTL_S:
            return hit[1]
        app = await self._svc.apps.for_join(app_id)
        self._app_cache[app_id] = (now, app)
        return app

    def forget_app(self, app_id: str) -> None:
        self._app_cache.pop(app_id, None)

    def _verify(self, app: JoinableApp, room_id: str, user_id: str, ctime: str, signature: str) -> int:
        if not app.auth_enable:
            # OQ-13: authentication switched off for this app (development mode).
            return int(ctime) if ctime.isdigit() else int(self.clock()) + self._settings.signature_max_validity_s
        return check_signature(
            app_key=app.app_key, app_id=app.app_id, room_id=room_id, user_id=user_id, ctime=ctime,
            signature=signature, now=self.clock(), max_validity_s=self._settings.signature_max_validity_s,
        )

    # ================================================================== join / leave

    async def join(self, conn: Outbox, req: JoinRequest) -> tuple[Member, str]:
        """Admit a new session (R-ROOM-01, R-CAP-01, R-MULTI-*, R-USER-05).
        Returns the member and its resume token."""
        app = await self._app(req.app_id)
        if app is None or app.state == DELETED:
            raise SignallingError(ClientErrors.JOIN_ROOM_FAIL, "unknown application", "RTC.31000004")
        if app.state != ACTIVATION:
            # R-APP-02, OQ-20: a disabled app admits nobody new, even into running rooms.
            raise SignallingError(ClientErrors.JOIN_ROOM_FAIL, f"application is {app.state}", "RTC.31000004")
        expiry = self._verify(app, req.room_id, req.user_id, req.ctime, req.signature)
        # ---- from here on no await: the checks and the changes are one step ----
        key = (req.app_id, req.room_id)
        room = self.rooms.get(key)
        old = room.members.get(req.user_id) if room is not None else None
        others = self.user_rooms.get((req.app_id, req.user_id), set()) - {key}
        if len(others) >= self._settings.max_rooms_per_user:
            raise SignallingError(
                ClientErrors.JOIN_ROOM_FAIL, "the user is already in the maximum number of rooms", "RTC.32000032"
            )
        if req.role == JOINER:
            self._check_joiner_elsewhere(req.app_id, req.user_id, others)
            senders = room.sender_count() if room is not None else 0
            if old is not None and old.role == JOINER:
                senders -= 1
            if senders >= self._settings.max_senders_per_room:
                raise SignallingError(ClientErrors.ANCHOR_NUMBER_OUT_OF_RANGE, None, "RTC.34000001")
        now = self.clock()
        if room is None:
            room = Room(uuid.uuid4().hex, req.app_id, req.room_id, req.user_id, now)
            self.rooms[key] = room
            self.persister.room_opened(room)
        token = ids.session_token()
        member = Member(
            session_id=uuid.uuid4().hex, room=room, user_id=req.user_id, user_name=req.user_name,
            role=req.role, resume_hash=token_hash(token), sig_expiry=expiry, top_n=req.top_n,
            joined_at=now, last_seen=now, conn=conn,
        )
        if old is not None:
            self._ban(old, now)
        room.members[member.user_id] = member
        self.user_rooms.setdefault(member.key, set()).add(key)
        self.by_token[member.resume_hash] = member
        self.persister.session_started(member)
        if old is None:
            self._broadcast(room, event("peer-join", self._peer(member)), exclude=member)
        elif old.user_name != member.user_name:
            # OQ-08: a login elsewhere replaces the old session seamlessly for peers.
            self._broadcast(
                room,
                event("remote-user-name-changed",
                      {"roomId": room.room_id, "userId": member.user_id, "userName": member.user_name}),
                exclude=member,
            )
        return member, token

    def introduce(self, member: Member) -> None:
        """After the join response: tell the newcomer who is already there (R-USER-02, OQ-15)."""
        for other in member.room.members.values():
            if other is not member:
                member.send(event("peer-join", self._peer(other)))
        if self.media is not None:
            self.media.announce_existing(member)

    def _check_joiner_elsewhere(self, app_id: str, user_id: str, other_rooms: set[tuple[str, str]]) -> None:
        # R-MULTI-03: role 0 in at most one room at a time (OQ-07 code).
        for k in other_rooms:
            r = self.rooms.get(k)
            m = r.members.get(user_id) if r is not None else None
            if m is not None and m.role == JOINER:
                raise SignallingError(
                    ClientErrors.ROLE_NO_PERMISSION, "the user is a joiner in another room", "RTC.32000028"
                )

    def _ban(self, old: Member, now: float) -> None:
        """R-USER-05: the same user joined the same room from another connection."""
        old.send(event("client-banned", {"userId": old.user_id, "reason": LEAVE_REASONS[5]}))
        self._detach(old)
        if self.media is not None:
            self.media.member_leaving(old)
        self._end_session(old, now, 5)

    async def leave(self, member: Member) -> None:
        self._remove(member, 0)

    def _remove(self, member: Member, code: int, *, tell_peers: bool = True) -> None:
        room = member.room
        if room.members.get(member.user_id) is not member:
            return
        now = self.clock()
        if self.media is not None:
            self.media.member_leaving(member)
        del room.members[member.user_id]
        self._end_session(member, now, code)
        if tell_peers:
            self._broadcast(
                room,
                event("peer-leave", {**self._peer(member), "reason": leave_reason(code)}),
                exclude=member,
            )
        if not room.members:
            self._close_room(room, now, "EMPTY" if code != 10 else "DISMISSED")

    def _end_session(self, member: Member, now: float, code: int) -> None:
        rooms = self.user_rooms.get(member.key)
        if rooms is not None:
            rooms.discard(member.room.key)  # a replacing session (R-USER-05) adds it back
            if not rooms:
                del self.user_rooms[member.key]
        self.by_token.pop(member.resume_hash, None)
        self.persister.session_ended(member, now, code)

    def _close_room(self, room: Room, now: float, reason: str) -> None:
        if self.rooms.get(room.key) is room:
            del self.rooms[room.key]
        self.persister.room_closed(room, now, reason)
        if self.media is not None:
            self.media.room_closed(room)

    def _detach(self, member: Member) -> None:
        """Close a member's connection for good (no reconnection follows)."""
        conn = member.conn
        member.conn = None
        if conn is not None:
            conn.close()

    # ================================================================== in-room requests

    async def switch_role(self, member: Member, role: int, ctime: str, signature: str) -> None:
        """R-ROLE-04..06, R-AUTH-06."""
        app = await self._app(member.room.app_id)
        if app is None or app.state == DELETED:
            raise SignallingError(ClientErrors.STATUS_ERROR, "the application no longer exists", "RTC.31000004")
        expiry = self._verify(app, member.room.room_id, member.user_id, ctime, signature)
        self._require_current(member)
        if role == member.role:
            raise SignallingError(ClientErrors.ROLE_CHANGED_FAIL)
        if role == JOINER:
            self._check_joiner_elsewhere(
                member.room.app_id, member.user_id,
                self.user_rooms.get(member.key, set()) - {member.room.key},
            )
            if member.room.sender_count() >= self._settings.max_senders_per_room:
                raise SignallingError(ClientErrors.ANCHOR_NUMBER_OUT_OF_RANGE, None, "RTC.34000001")
        member.role = role
        if role == PLAYER and self.media is not None:
            self.media.role_changed_to_player(member)
        self._renewed(member, expiry)
        self.persister.session_changed(member, role=role, signature_expires_at=expiry)
        # R-ROLE-07: no role-change event; peers learn through stream events (issue 4).

    async def change_user_name(self, member: Member, user_name: str) -> None:
        """R-USER-06."""
        self._require_current(member)
        member.user_name = user_name
        self.persister.session_changed(member, user_name=user_name)
        room = member.room
        self._broadcast(
            room,
            event("remote-user-name-changed",
                  {"roomId": room.room_id, "userId": member.user_id, "userName": user_name}),
            exclude=member,
        )

    async def renew_signature(self, member: Member, ctime: str, signature: str) -> None:
        """R-AUTH-07."""
        app = await self._app(member.room.app_id)
        if app is None or app.state == DELETED:
            raise SignallingError(ClientErrors.STATUS_ERROR, "the application no longer exists", "RTC.31000004")
        expiry = self._verify(app, member.room.room_id, member.user_id, ctime, signature)
        self._require_current(member)
        self._renewed(member, expiry)
        self.persister.session_changed(member, signature_expires_at=expiry)

    def _renewed(self, member: Member, expiry: int) -> None:
        member.sig_expiry = expiry
        member.sig_expired_notified = False

    def _require_current(self, member: Member) -> None:
        if member.room.members.get(member.user_id) is not member:
            raise SignallingError(ClientErrors.STATUS_ERROR, "the session is no longer in the room")

    # ================================================================== connection state

    def seen(self, member: Member) -> None:
        member.last_seen = self.clock()

    def disconnected(self, member: Member) -> None:
        """The signalling connection dropped: keep the member for the keepalive window
        (R-ROOM-04, R-CONN-03); no peer is told yet."""
        if member.conn is None or self._stopping:
            return
        if member.room.members.get(member.user_id) is not member:
            member.conn = None
            return
        now = self.clock()
        member.conn = None
        member.disconnected_at = now
        self.persister.session_changed(member, connected=False, disconnected_at=now, last_seen=member.last_seen)

    async def resume(self, conn: Outbox, token: str, ctime: str | None, signature: str | None) -> Member:
        """R-CONN-03/04: a reconnection within the window takes the session back,
        with no peer-leave/peer-join; events missed meanwhile are delivered."""
        h = token_hash(token)
        member = self.by_token.get(h)
        if member is None:
            await self.persister.flush()
            ended = await self.persister.ended_session(h)
            if ended is None:
                raise SignallingError(ClientErrors.ROOM_NOT_EXIST, "unknown session", "RTC.34000002")
            reason, room_state = ended
            if reason == 9:
                raise SignallingError(ClientErrors.KICKED_USER, None, "RTC.34000006")
            if reason == 10 or room_state == "CLOSED":
                raise SignallingError(ClientErrors.ROOM_IDLE, None, "RTC.34000002")
            raise SignallingError(
                ClientErrors.WEBSOCKET_RECONNECT_TIMEOUT, "the session has ended; join again", "RTC.34000006"
            )
        if ctime is not None and signature is not None:
            app = await self._app(member.room.app_id)
            if app is None:
                raise SignallingError(ClientErrors.ROOM_NOT_EXIST, "unknown application", "RTC.34000002")
            expiry = self._verify(app, member.room.room_id, member.user_id, ctime, signature)
            self._renewed(member, expiry)
            self.persister.session_changed(member, signature_expires_at=expiry)
        elif member.sig_expiry <= self.clock():
            # OQ-10: an expired credential must be renewed before the session comes back.
            raise SignallingError(ClientErrors.SIGNATURE_EXPIRED, "resume with a renewed signature")
        if self.by_token.get(h) is not member:
            raise SignallingError(ClientErrors.ROOM_NOT_EXIST, "the session ended meanwhile", "RTC.34000002")
        previous = member.conn
        if previous is not None:
            # The old socket is half-open: the client has already moved on.
            member.conn = None
            previous.close()
        now = self.clock()
        member.conn = conn
        member.last_seen = now
        member.disconnected_at = None
        self.persister.session_changed(member, connected=True, disconnected_at=None, last_seen=now)
        return member

    def deliver_pending(self, member: Member) -> None:
        pending, member.pending = member.pending, []
        if member.conn is not None:
            for message in pending:
                member.conn.push(message)

    # ================================================================== REST actions

    def remove_users(self, app_id: str, room_id: str, user_ids: list[str]) -> int:
        """M1 / R-KICK-01..03: removed users get client-banned and lose their socket;
        peers see peer-leave with reason 9 (OQ-02)."""
        room = self.rooms.get((app_id, room_id))
        if room is None:
            return 0
        removed = 0
        for user_id in dict.fromkeys(user_ids):
            member = room.members.get(user_id)
            if member is None:
                continue
            member.send(event("client-banned", {"userId": user_id, "reason": LEAVE_REASONS[9]}))
            self._detach(member)
            self._remove(member, 9)
            removed += 1
        return removed

    def dismiss(self, app_id: str, room_id: str) -> bool:
        """M2 / R-KICK-04, OQ-03: everyone sees the others leave with reason 10, then
        is told it was removed, and the room closes."""
        room = self.rooms.get((app_id, room_id))
        if room is None:
            return False
        members = list(room.members.values())
        for member in members:
            for other in members:
                if other is not member:
                    member.send(event("peer-leave", {**self._peer(other), "reason": leave_reason(10)}))
            member.send(event("client-banned", {"userId": member.user_id, "reason": LEAVE_REASONS[10]}))
            self._detach(member)
        for member in members:
            self._remove(member, 10, tell_peers=False)
        return True

    async def dismiss_app(self, app_id: str) -> None:
        self.forget_app(app_id)
        for app, room_id in [k for k in self.rooms if k[0] == app_id]:
            self.dismiss(app, room_id)

    # ================================================================== sweeping

    async def _sweep_forever(self) -> None:
        interval = max(0.05, min(1.0, self._settings.heartbeat_interval_s / 4))
        touch_every = max(1.0, self._settings.keepalive_s / 4)
        last_touch = self.clock()
        while True:
            await asyncio.sleep(interval)
            try:
                now = self.clock()
                self.sweep(now)
                if now - last_touch >= touch_every:
                    last_touch = now
                    self.persister.sessions_seen(
                        [m.session_id for r in self.rooms.values() for m in r.members.values()
                         if m.conn is not None],
                        now,
                    )
            except Exception:
                log.exception("room sweep failed")

    def sweep(self, now: float) -> None:
        s = self._settings
        for conn in list(self.connections):
            if now - conn.last_seen > s.disconnect_after_s:
                conn.close()  # silent for too long (OQ-01); its member becomes disconnected
        participants = 0
        for room in list(self.rooms.values()):
            for member in list(room.members.values()):
                if member.conn is None and member.disconnected_at is not None:
                    if now - member.disconnected_at >= s.keepalive_s:
                        self._remove(member, 7)  # R-ROOM-04, OQ-04
                        continue
                if not member.sig_expired_notified and member.sig_expiry <= now:
                    member.sig_expired_notified = True
                    member.send(event("signature-expired", {"errorCode": "90100030", "errorMsg": "signature expired"}))
                participants += 1
        if self._svc.workers is not None:
            self._svc.workers.sweep(time.monotonic())
        m = self._svc.metrics
        m.rooms.set(len(self.rooms))
        m.participants.set(participants)
        m.ws_connections.set(len(self.connections))

    # ================================================================== helpers

    @staticmethod
    def _peer(member: Member) -> dict:
        return {"userId": member.user_id, "userName": member.user_name}

    @staticmethod
    def _broadcast(room: Room, message: str, *, exclude: Member | None = None) -> None:
        for m in room.members.values():
            if m is not exclude:
                m.send(message)


__all__ = ["JOINER", "PLAYER", "JoinRequest", "RoomService", "event"]
