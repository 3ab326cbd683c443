"""Write-behind persistence of room transitions.

The room state machine runs synchronously in memory (so its checks and changes
never interleave with other requests); every transition that must survive a
restart is queued here and written in batches, one transaction per batch, off the
request path. ``flush()`` waits until everything queued so far is durable; the
server flushes on shutdown. Heartbeats are never written one by one: ``touch``
collects session IDs and the sweeper writes their ``last_seen`` in one statement.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from control.rooms.model import Member, Room
from control.store.models import Participant
from control.store.models import Room as RoomRow

log = logging.getLogger("kindling.rooms.persistence")

_BATCH_DELAY_S = 0.02


def ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


class Persister:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self._sessions = sessions
        self._ops: list[tuple[str, Any]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------------ queueing

    def room_opened(self, room: Room) -> None:
        self._queue(
            "insert_room",
            dict(
                id=room.uid, app_id=room.app_id, room_id=room.room_id, state="RUNNING",
                owner_user_id=room.owner, start_time=ts(room.start_time),
            ),
        )

    def room_closed(self, room: Room, at: float, reason: str) -> None:
        self._queue("update_room", (room.uid, dict(state="CLOSED", end_time=ts(at), close_reason=reason)))

    def session_started(self, m: Member) -> None:
        self._queue(
            "insert_session",
            dict(
                session_id=m.session_id, room_uid=m.room.uid, app_id=m.room.app_id, room_id=m.room.room_id,
                user_id=m.user_id, user_name=m.user_name, role=m.role, state="ONLINE",
                connected=m.conn is not None, resume_token_hash=m.resume_hash,
                signature_expires_at=m.sig_expiry, top_n=m.top_n, joined_at=ts(m.joined_at),
                last_seen=ts(m.last_seen), disconnected_at=ts(m.disconnected_at),
            ),
        )

    def session_changed(self, m: Member, **fields: Any) -> None:
        for k in ("disconnected_at", "last_seen"):
            if k in fields and isinstance(fields[k], float):
                fields[k] = ts(fields[k])
        self._queue("update_session", (m.session_id, fields))

    def session_ended(self, m: Member, at: float, reason: int) -> None:
        self._queue(
            "update_session",
            (m.session_id, dict(state="OFFLINE", connected=False, left_at=ts(at), leave_reason=reason)),
        )

    def sessions_seen(self, session_ids: list[str], at: float) -> None:
        if session_ids:
            self._queue("touch", (session_ids, ts(at)))

    def _queue(self, op: str, arg: Any) -> None:
        self._ops.append((op, arg))
        self._idle.clear()
        self._wake.set()

    # ------------------------------------------------------------------ writing

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kindling-persister")

    async def stop(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def flush(self) -> None:
        if self._ops:
            self._wake.set()
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(_BATCH_DELAY_S)  # let a burst of joins share one transaction
            self._wake.clear()
            ops, self._ops = self._ops, []
            if ops:
                try:
                    await self._write(ops)
                except Exception:
                    log.exception("failed to persist %d room transitions; retrying", len(ops))
                    self._ops[:0] = ops
                    await asyncio.sleep(1.0)
                    self._wake.set()
                    continue
            if not self._ops:
                self._idle.set()

    async def _write(self, ops: list[tuple[str, Any]]) -> None:
        async with self._sessions.begin() as s:
            i = 0
            while i < len(ops):
                op, arg = ops[i]
                # Consecutive inserts of one kind go in a single statement.
                if op in ("insert_room", "insert_session"):
                    j = i
                    rows = []
                    while j < len(ops) and ops[j][0] == op:
                        rows.append(ops[j][1])
                        j += 1
                    table = RoomRow if op == "insert_room" else Participant
                    await s.execute(insert(table), rows)
                    i = j
                    continue
                if op == "update_room":
                    uid, fields = arg
                    await s.execute(update(RoomRow).where(RoomRow.id == uid).values(**fields))
                elif op == "update_session":
                    sid, fields = arg
                    await s.execute(update(Participant).where(Participant.session_id == sid).values(**fields))
                elif op == "touch":
                    sids, at = arg
                    await s.execute(
                        update(Participant)
                        .where(Participant.session_id.in_(sids), Participant.state == "ONLINE")
                        .values(last_seen=at)
                    )
                i += 1

    # ------------------------------------------------------------------ reading

    async def load_running(self) -> tuple[list[RoomRow], list[Participant]]:
        async with self._sessions() as s:
            rooms = list((await s.scalars(select(RoomRow).where(RoomRow.state == "RUNNING"))).all())
            parts = list(
                (await s.scalars(select(Participant).where(Participant.state == "ONLINE"))).all()
            )
        return rooms, parts

    async def ended_session(self, resume_hash: str) -> tuple[int | None, str] | None:
        """(leave_reason, room state) of a finished session with this resume token."""
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(Participant.leave_reason, RoomRow.state)
                    .join(RoomRow, RoomRow.id == Participant.room_uid)
                    .where(Participant.resume_token_hash == resume_hash)
                    .order_by(Participant.joined_at.desc())
                    .limit(1)
                )
            ).first()
        return None if row is None else (row[0], row[1])
