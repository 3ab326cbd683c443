"""Publishing and subscribing: the room rules of streams (R-STR, R-ROLE-02/05,
R-PRES-01, R-SUB) on the control side, and the commands they become for the SFU
worker hosting the room.

The control plane never touches packets: it validates, keeps the stream and
subscription state, tells the room, and asks the room's worker to (re)wire.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

from control.errors import ClientErrors, SignallingError
from control.rooms.model import JOINER, Member, Room, Stream
from control.workers.registry import WorkerConn, WorkerError

if TYPE_CHECKING:
    from control.rooms.service import RoomService

log = logging.getLogger("kindling.media")

STREAM_TYPES = ("main", "auxiliary")
MAX_RESOLUTIONS = 4
# OQ-16: the floor of adaptation per minResolution (pixels of the smallest allowed layer).
MIN_RESOLUTION_PIXELS = {"FHD": 1920 * 1080, "HD": 1280 * 720, "SD": 640 * 360, "LD": 0}


def _event(name: str, data: dict) -> str:
    return json.dumps({"type": "event", "event": name, "data": data}, separators=(",", ":"))


def stream_info(member: Member, stream: Stream) -> dict:
    return {
        "userId": member.user_id,
        "userName": member.user_name,
        "streamId": stream.stream_id,
        "type": stream.type,
        "audio": stream.audio,
        "video": stream.video,
        "audioMuted": stream.audio_muted,
        "videoMuted": stream.video_muted,
        **({"audioProfile": stream.audio_profile} if stream.audio_profile else {}),
    }


class MediaCoordinator:
    def __init__(self, rooms: RoomService) -> None:
        self.rooms = rooms
        self.registry = rooms._svc.workers
        self.registry.on_worker_lost = self._worker_lost
        self._locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------------ helpers

    def _worker(self, room: Room) -> WorkerConn:
        w = self.registry.place(room.uid, room.worker_id)
        if w is None:
            raise SignallingError(ClientErrors.OVERLOAD_ROOM_CAPACITY, "no SFU worker is available", "RTC.32000030")
        room.worker_id = w.worker_id
        return w

    def _lock(self, room: Room) -> asyncio.Lock:
        lock = self._locks.get(room.uid)
        if lock is None:
            lock = self._locks[room.uid] = asyncio.Lock()
        return lock

    @staticmethod
    def _broadcast(room: Room, message: str, exclude: Member | None = None) -> None:
        for m in room.members.values():
            if m is not exclude:
                m.send(message)

    async def _call(self, worker: WorkerConn, rtype: str, data: dict) -> dict:
        try:
            return await worker.call(rtype, data)
        except WorkerError as exc:
            if exc.code == "sdp":
                raise SignallingError(ClientErrors.ANSWER_SDP_INVALID, exc.message) from None
            if exc.code in ("slots", "no-stream"):
                raise SignallingError(ClientErrors.INVALID_SUBSCRIBED_INFO, exc.message, "RTC.32000010") from None
            log.warning("worker %s failed %s: %s", worker.worker_id, rtype, exc)
            raise SignallingError(ClientErrors.INTERNAL_ERROR, "the media server failed", "RTC.32000030") from None

    # ------------------------------------------------------------------ publish

    async def publish(self, member: Member, d: dict[str, Any]) -> dict:
        if member.role != JOINER:
            raise SignallingError(ClientErrors.ROLE_NO_PERMISSION, "players cannot publish", "RTC.32000028")
        stype = d["type"]
        room = member.room
        replacing = member.streams.get(stype) if d.get("replace") else None
        if stype in member.streams and replacing is None:
            raise SignallingError(ClientErrors.STREAM_ALREADY_PUSHED)
        if d.get("replace") and replacing is None:
            raise SignallingError(ClientErrors.INVALID_OPERATION, "nothing to republish: publish it first")
        if stype == "auxiliary" and replacing is None and any("auxiliary" in m.streams for m in room.members.values()):
            raise SignallingError(ClientErrors.DESKTOP_NUMBER_OUT_OF_RANGE, None, "RTC.34000007")
        tracks = []
        if d["audio"]:
            tracks.append({"mid": d["audioMid"], "kind": "audio"})
        for v in d["video"]:
            tracks.append({"mid": v["mid"], "kind": "video", "resolutionId": v["resolutionId"], "width": v["width"],
                           "height": v["height"], "bitrate": v["bitrate"]})
        async with self._lock(room):
            worker = self._worker(room)
            result = await self._call(worker, "publish", {
                "roomUid": room.uid, "sessionId": member.session_id, "userId": member.user_id,
                "streamType": stype, "sdp": d["sdp"], "tracks": tracks,
            })
        self.rooms._require_current(member)
        video = [{k: v[k] for k in ("resolutionId", "width", "height", "frameRate", "bitrate")} for v in d["video"]]
        if replacing is not None:
            # R-STR-05: same stream, new tracks or specifications: stream-updated, and the
            # subscriptions to what still exists carry on without a new subscribe.
            if member.streams.get(stype) is not replacing:
                raise SignallingError(ClientErrors.STATUS_ERROR, "the stream changed meanwhile")
            replacing.audio, replacing.video = bool(d["audio"]), video
            replacing.audio_profile = d.get("audioProfile")
            self._broadcast(room, _event("stream-updated", stream_info(member, replacing)), exclude=member)
            await self._resubscribe(member, replacing)
            return {"streamId": replacing.stream_id, "sdp": result["sdp"]}
        if stype in member.streams:
            raise SignallingError(ClientErrors.STREAM_ALREADY_PUSHED)
        stream = Stream(uuid.uuid4().hex[:16], stype, bool(d["audio"]), video,
                        audio_profile=d.get("audioProfile"))
        member.streams[stype] = stream
        self._broadcast(room, _event("stream-added", stream_info(member, stream)), exclude=member)
        return {"streamId": stream.stream_id, "sdp": result["sdp"]}

    async def _resubscribe(self, publisher: Member, stream: Stream) -> None:
        key = (publisher.user_id, stream.type)
        for m in list(publisher.room.members.values()):
            sub = m.subscriptions.get(key)
            if sub is None or m is publisher:
                continue
            audio = sub[0] and stream.audio
            res = tuple(r for r in sub[1] if r in stream.resolution_ids())
            try:
                await self._apply(m, publisher, stream, audio, res)
            except SignallingError as exc:
                log.info("could not carry %s's subscription over: %s", m.user_id, exc)

    async def unpublish(self, member: Member, stype: str) -> None:
        stream = member.streams.get(stype)
        if stream is None:
            raise SignallingError(ClientErrors.INVALID_OPERATION, "the stream is not published")
        await self._remove_stream(member, stream, close_on_worker=True)

    async def _remove_stream(self, member: Member, stream: Stream, *, close_on_worker: bool) -> None:
        room = member.room
        member.streams.pop(stream.type, None)
        for m in room.members.values():
            m.subscriptions.pop((member.user_id, stream.type), None)
        self._broadcast(room, _event("stream-removed", stream_info(member, stream)), exclude=member)
        if close_on_worker and room.worker_id:
            w = self.registry.workers.get(room.worker_id)
            if w is not None and w.alive:
                try:
                    await w.call("unpublish", {"roomUid": room.uid, "sessionId": member.session_id,
                                               "streamType": stream.type})
                except WorkerError:
                    pass

    def announce_existing(self, member: Member) -> None:
        """R-USER-02: a newcomer learns every stream already published."""
        for other in member.room.members.values():
            if other is member:
                continue
            for stream in other.streams.values():
                member.send(_event("stream-added", stream_info(other, stream)))

    # ------------------------------------------------------------------ subscribe

    async def subscribe(self, member: Member, d: dict[str, Any], *, replace: bool) -> dict:
        room = member.room
        target = room.members.get(d["userId"])
        stype = d["type"]
        stream = target.streams.get(stype) if target is not None else None
        if target is None or stream is None or target is member:
            raise SignallingError(ClientErrors.INVALID_SUBSCRIBED_INFO, "no such remote stream", "RTC.32000010")
        key = (target.user_id, stype)
        cur_audio, cur_res = member.subscriptions.get(key, (False, ()))
        audio = d.get("audio")
        video = d.get("video")
        res_ids = d.get("resolutionIds")
        if audio and member.top_n:
            # OQ-18: a top-N listener gets the loudest speakers, not chosen audio.
            raise SignallingError(ClientErrors.TOPN_SUB_MODE_FAULT, "audio is chosen by top-N mode")
        if audio is None and video is None:
            audio, video = not member.top_n, True  # no option: audio and the highest resolution
        audio, video = bool(audio), bool(video)
        if not audio and not video:
            raise SignallingError(ClientErrors.INVALID_SUBSCRIBED_INFO, "audio and video cannot both be false")
        if audio and not stream.audio:
            audio = False
        wanted: tuple[str, ...] = ()
        if video:
            if res_ids:
                unknown = [r for r in res_ids if r not in stream.resolution_ids()]
                if unknown:
                    raise SignallingError(ClientErrors.INVALID_SUBSCRIBED_INFO,
                                          f"unknown resolutionIds {unknown}", "RTC.32000010")
                wanted = tuple(dict.fromkeys(res_ids))
            elif stream.highest() is not None:
                wanted = (stream.highest(),)
        new_audio = audio or (cur_audio and not replace)
        new_res = wanted if replace else tuple(dict.fromkeys(cur_res + wanted))
        return await self._apply(member, target, stream, new_audio, new_res)

    async def unsubscribe(self, member: Member, d: dict[str, Any]) -> dict:
        room = member.room
        target = room.members.get(d["userId"])
        stype = d["type"]
        key = (d["userId"], stype)
        if key not in member.subscriptions or target is None or stype not in target.streams:
            raise SignallingError(ClientErrors.INVALID_SUBSCRIBED_INFO, "not subscribed", "RTC.32000010")
        cur_audio, cur_res = member.subscriptions[key]
        audio, video, res_ids = d.get("audio"), d.get("video"), d.get("resolutionIds")
        if audio is None and video is None:
            new_audio, new_res = False, ()
        else:
            new_audio = cur_audio and not audio
            if video:
                new_res = tuple(r for r in cur_res if res_ids and r not in res_ids) if res_ids else ()
            else:
                new_res = cur_res
        return await self._apply(member, target, target.streams[stype], new_audio, new_res)

    def _session_params(self, member: Member) -> dict:
        s = self.rooms._settings
        return {"roomUid": member.room.uid, "sessionId": member.session_id, "userId": member.user_id,
                "topN": member.top_n, "videoSlots": s.video_slots, "audioSlots": s.audio_slots}

    async def _apply(self, member: Member, target: Member, stream: Stream, audio: bool,
                     res: tuple[str, ...], floor: str | None = None) -> dict:
        room = member.room
        async with self._lock(room):
            worker = self._worker(room)
            result = await self._call(worker, "subscribe", {
                **self._session_params(member), "publisherSession": target.session_id,
                "streamType": stream.type, "audio": audio, "resolutionIds": list(res) if res else None,
                "floorPixels": MIN_RESOLUTION_PIXELS.get(floor or "LD", 0),
            })
        key = (target.user_id, stream.type)
        if audio or res:
            member.subscriptions[key] = (audio, res)
        else:
            member.subscriptions.pop(key, None)
        return {
            "offer": result.get("offer"),
            "assignments": result.get("assignments", []),
            "stream": stream_info(target, stream),
        }

    async def batch_subscribe(self, member: Member, infos: list[dict]) -> dict:
        """R-SUB-05: the list is the complete set of video subscriptions (main streams);
        users left out lose their video, audio subscriptions are untouched."""
        room = member.room
        wanted: dict[str, dict] = {}
        for info in infos:
            target = room.members.get(info["userId"])
            stream = target.streams.get("main") if target is not None else None
            if target is None or stream is None or target is member:
                raise SignallingError(ClientErrors.INVALID_SUBSCRIBED_INFO, f"no stream of {info['userId']}",
                                      "RTC.32000010")
            res = info.get("resolutionIds") or ([stream.highest()] if stream.highest() else [])
            unknown = [r for r in res if r not in stream.resolution_ids()]
            if unknown:
                raise SignallingError(ClientErrors.INVALID_SUBSCRIBED_INFO, f"unknown resolutionIds {unknown}",
                                      "RTC.32000010")
            wanted[target.user_id] = {"res": tuple(dict.fromkeys(res)), "floor": info.get("minResolution")}
        results = []
        for (user_id, stype), (audio, res) in list(member.subscriptions.items()):
            if stype == "main" and user_id not in wanted and res:
                target = room.members.get(user_id)
                if target is not None and "main" in target.streams:
                    await self._apply(member, target, target.streams["main"], audio, ())
        for user_id, w in wanted.items():
            target = room.members[user_id]
            audio = member.subscriptions.get((user_id, "main"), (False, ()))[0]
            results.append(await self._apply(member, target, target.streams["main"], audio, w["res"], w["floor"]))
        offer = next((r["offer"] for r in results if r.get("offer")), None)
        return {"offer": offer, "results": [{**r, "offer": None} for r in results]}

    async def subscriber_connect(self, member: Member) -> dict:
        async with self._lock(member.room):
            worker = self._worker(member.room)
            return await self._call(worker, "subscriber-connect", self._session_params(member))

    async def set_bandwidth(self, member: Member, max_kbps: int) -> None:
        worker = self._worker(member.room)
        await self._call(worker, "set-bandwidth", {"roomUid": member.room.uid, "sessionId": member.session_id,
                                                  "maxKbps": max_kbps})

    def on_demand(self, room_uid: str, session_id: str, stream_type: str, resolution_ids: list[str]) -> None:
        """Relay a worker's layer demand to the publisher (``layer-demand``)."""
        room = next((r for r in self.rooms.rooms.values() if r.uid == room_uid), None)
        if room is None:
            return
        for m in room.members.values():
            if m.session_id == session_id:
                m.send(_event("layer-demand", {"type": stream_type, "resolutionIds": resolution_ids}))

    def on_volume(self, room_uid: str, speakers: list[dict]) -> None:
        """A worker's top-N ranking tick: ``volume-indicator`` to the room's top-N listeners."""
        room = next((r for r in self.rooms.rooms.values() if r.uid == room_uid), None)
        if room is None:
            return
        payload = json.dumps({"type": "event", "event": "volume-indicator",
                              "data": [{"user_id": s["userId"], "volume": s["volume"]} for s in speakers]},
                             separators=(",", ":"))
        for m in room.members.values():
            if m.top_n:
                m.send(payload)

    async def subscriber_answer(self, member: Member, sdp: str) -> None:
        room = member.room
        worker = self._worker(room)
        await self._call(worker, "subscriber-answer", {"roomUid": room.uid, "sessionId": member.session_id,
                                                       "sdp": sdp})
        member.subscriber_ready = True

    # ------------------------------------------------------------------ mute

    def mute(self, member: Member, stype: str, kind: str, muted: bool) -> None:
        stream = member.streams.get(stype)
        if stream is None:
            raise SignallingError(ClientErrors.INVALID_OPERATION, "the stream is not published")
        if kind == "audio":
            stream.audio_muted = muted
        else:
            stream.video_muted = muted
        name = ("mute-" if muted else "unmute-") + kind
        info = {"roomId": member.room.room_id, "userId": member.user_id, "status": 2 if muted else 1,
                "reason": 1 if muted else 2}
        self._broadcast(member.room, _event(name, info), exclude=member)

    # ------------------------------------------------------------------ lifecycle hooks

    def member_leaving(self, member: Member) -> None:
        """Before peer-leave: the member's streams go (R-USER-03) and its media closes."""
        room = member.room
        for stream in list(member.streams.values()):
            member.streams.pop(stream.type, None)
            for m in room.members.values():
                m.subscriptions.pop((member.user_id, stream.type), None)
            self._broadcast(room, _event("stream-removed", stream_info(member, stream)), exclude=member)
        member.subscriptions.clear()
        if room.worker_id:
            w = self.registry.workers.get(room.worker_id)
            if w is not None and w.alive:
                asyncio.ensure_future(self._quiet(w, "close-session",
                                                  {"roomUid": room.uid, "sessionId": member.session_id}))

    def role_changed_to_player(self, member: Member) -> None:
        """R-ROLE-05: a player only receives, so its streams are unpublished."""
        for stream in list(member.streams.values()):
            asyncio.ensure_future(self._remove_stream(member, stream, close_on_worker=True))

    def room_closed(self, room: Room) -> None:
        self._locks.pop(room.uid, None)
        if room.worker_id:
            w = self.registry.workers.get(room.worker_id)
            self.registry.release(room.uid, room.worker_id)
            if w is not None and w.alive:
                asyncio.ensure_future(self._quiet(w, "close-room", {"roomUid": room.uid}))

    @staticmethod
    async def _quiet(w: WorkerConn, rtype: str, data: dict) -> None:
        try:
            await w.call(rtype, data)
        except WorkerError:
            pass

    def _worker_lost(self, worker: WorkerConn, room_uids: set[str]) -> None:
        """A worker died: its rooms' media is gone. Everyone sees the streams removed
        and gets ``media-reset`` (leave reason 2, "The SFU service is faulty.") so the
        SDKs republish and resubscribe; the room is placed afresh on the next command."""
        for room in list(self.rooms.rooms.values()):
            if room.uid not in room_uids and room.worker_id != worker.worker_id:
                continue
            room.worker_id = None
            for member in room.members.values():
                for stream in list(member.streams.values()):
                    self._broadcast(room, _event("stream-removed", stream_info(member, stream)), exclude=member)
                member.streams.clear()
                member.subscriptions.clear()
                member.subscriber_ready = False
            self._broadcast(room, _event("media-reset", {"reason": {"code": 2, "msg": "The SFU service is faulty."}}))
