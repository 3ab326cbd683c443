"""The asyncio client: SparkRTC's ``Client`` in Python style (signalling half).

One ``Client`` is one session in one room, over one WebSocket to the control plane
(docs/signalling.md). It keeps the socket alive with heartbeats, reconnects by
itself when the network drops and resumes the same session within the server's
keepalive window, and reports every state change through
``connection-state-changed`` like the Web SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from kindling_sdk import media
from kindling_sdk.errors import RtcError, RtcErrorCode, local_error
from kindling_sdk.media import LocalStream, RemoteStream

log = logging.getLogger("kindling_sdk")

CONNECTING = "CONNECTING"
CONNECTED = "CONNECTED"
RECONNECTING = "RECONNECTING"
DISCONNECTED = "DISCONNECTED"

JOINER = 0
PLAYER = 2


def signalling_url(server: str) -> str:
    """``http://host:port`` / ``https://…`` / ``ws://…`` / bare ``host:port`` → the signalling URL."""
    if "://" not in server:
        server = "http://" + server
    scheme, rest = server.split("://", 1)
    scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
    rest = rest.rstrip("/")
    if not rest.endswith("/signalling"):
        rest += "/signalling"
    return f"{scheme}://{rest}"


def _subscription(stream: RemoteStream, audio: bool | None, video: bool | None,
                  resolution_ids: list[str] | None) -> dict[str, Any]:
    """A subscribe/unsubscribe request: only the options the caller gave (the server
    applies the documented defaults to the rest)."""
    data: dict[str, Any] = {"userId": stream.user_id, "type": stream.type}
    for name, value in (("audio", audio), ("video", video), ("resolutionIds", resolution_ids)):
        if value is not None:
            data[name] = value
    return data


class Client:
    def __init__(
        self,
        server: str,
        app_id: str,
        *,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        ssl: Any = None,
        video_codec: str = "vp8",
    ) -> None:
        self.url = signalling_url(server)
        self.app_id = app_id
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.auto_reconnect = reconnect
        self.video_codec = video_codec.lower()  # must match the server's KINDLING_VIDEO_CODEC
        self._ssl = ssl
        self._handlers: dict[str, list[Callable]] = {}
        self._state = DISCONNECTED
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._heartbeat: asyncio.Task | None = None
        self._reconnector: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._config: dict = {}
        self._config_ready: asyncio.Event | None = None
        self._session: dict | None = None  # the join/resume response
        self._ended = False  # left, kicked, banned or dismissed: never reconnect
        self._tasks: set[asyncio.Task] = set()
        self.room_id: str | None = None
        self.user_id: str | None = None
        self.role: int | None = None
        self.top_n = False
        self._pub_pcs: dict[str, Any] = {}  # stream type -> RTCPeerConnection
        self._local: dict[str, LocalStream] = {}
        self._sub_pc: Any = None
        self._relay = media.MediaRelay()
        self._monitor: asyncio.Task | None = None
        self._detect_interval: float | None = None
        self._rtc_stats_interval: float | None = None
        self.remote_streams: dict[tuple[str, str], RemoteStream] = {}

    # ------------------------------------------------------------------ events

    def on(self, event: str, handler: Callable) -> None:
        self._handlers.setdefault(event, []).append(handler)

    def off(self, event: str, handler: Callable) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.get(event, []).remove(handler)

    def _emit(self, event: str, payload: Any) -> None:
        for handler in list(self._handlers.get(event, [])):
            try:
                result = handler(payload)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:
                log.exception("handler for %s failed", event)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            prev, self._state = self._state, state
            self._emit("connection-state-changed", {"prevState": prev, "curState": state})

    def get_connection_state(self) -> str:
        return self._state

    @property
    def session_id(self) -> str | None:
        return self._session["sessionId"] if self._session else None

    # ------------------------------------------------------------------ public API

    async def join(
        self,
        room_id: str,
        *,
        user_id: str,
        signature: str,
        ctime: str,
        role: int = JOINER,
        user_name: str | None = None,
        top_n: bool = False,
        auto_subscribe_audio: bool = True,
    ) -> dict:
        if self._session is not None:
            raise RtcError(RtcErrorCode.ALREADY_JOINED, "joined already")
        self._ended = False
        await self._connect(CONNECTING)
        data: dict[str, Any] = {
            "appId": self.app_id,
            "roomId": room_id,
            "userId": user_id,
            "role": role,
            "ctime": ctime,
            "signature": signature,
            "options": {"topN": top_n, "autoSubscribeAudio": auto_subscribe_audio},
        }
        if user_name is not None:
            data["userName"] = user_name
        try:
            self._session = await self.request("join", data)
        except RtcError:
            await self._shutdown()
            self._set_state(DISCONNECTED)
            raise
        self.room_id, self.user_id, self.role = room_id, user_id, role
        self.top_n = top_n
        if top_n:
            # Top-N audio arrives without any subscription: open the subscriber connection now.
            result = await self.request("subscriberConnect")
            await self._wire(None, result)
        return self._session

    async def leave(self) -> None:
        if self._session is None:
            raise RtcError(RtcErrorCode.INVALID_OPERATION, "illegal operation", "not in a room")
        self._ended = True
        try:
            if self._state == CONNECTED:
                await self.request("leave")
        finally:
            self._session = None
            await self._close_media()
            await self._shutdown()
            self._set_state(DISCONNECTED)

    async def _close_media(self) -> None:
        pcs = list(self._pub_pcs.values()) + ([self._sub_pc] if self._sub_pc is not None else [])
        self._pub_pcs, self._sub_pc = {}, None
        self._local.clear()
        for pc in pcs:
            with contextlib.suppress(Exception):
                await pc.close()

    async def switch_role(self, role: int, *, signature: str, ctime: str) -> None:
        await self.request("switchRole", {"role": role, "signature": signature, "ctime": ctime})
        self.role = role

    async def change_user_name(self, user_name: str) -> bool:
        await self.request("changeUserName", {"userName": user_name})
        return True

    async def renew_signature(self, ctime: str, signature: str) -> bool:
        await self.request("renewSignature", {"ctime": ctime, "signature": signature})
        return True

    # ------------------------------------------------------------------ media

    async def publish(self, stream: LocalStream) -> None:
        """Publish a local stream (joiners only: players get 90100022)."""
        if stream.type in self._pub_pcs:
            raise RtcError(90100207, "stream is pushed already")
        await self._negotiate_publish(stream, replace=False)

    async def republish(self, stream: LocalStream) -> None:
        """Publish a changed stream again (a resolution added or removed, tracks
        replaced): peers get ``stream-updated`` and keep their subscriptions."""
        old = self._pub_pcs.get(stream.type)
        if old is None:
            raise RtcError(90100001, "illegal operation", "publish the stream first")
        await self._negotiate_publish(stream, replace=True)
        await old.close()

    async def _negotiate_publish(self, stream: LocalStream, *, replace: bool) -> None:
        pc, request = await media.build_publish_offer(stream, self._relay, self.video_codec)
        if replace:
            request["replace"] = True
        try:
            result = await self.request("publish", request)
            await media.apply_answer(pc, result["sdp"])
        except BaseException:
            await pc.close()
            raise
        stream.stream_id = result["streamId"]
        self._pub_pcs[stream.type] = pc
        self._local[stream.type] = stream

    async def unpublish(self, stream: LocalStream) -> None:
        pc = self._pub_pcs.pop(stream.type, None)
        self._local.pop(stream.type, None)
        try:
            await self.request("unpublish", {"type": stream.type})
        finally:
            if pc is not None:
                await pc.close()

    async def subscribe(self, stream: RemoteStream, *, audio: bool | None = None, video: bool | None = None,
                        resolution_ids: list[str] | None = None) -> RemoteStream:
        """Incremental subscription. With no option: audio and the highest resolution."""
        result = await self.request("subscribe", _subscription(stream, audio, video, resolution_ids))
        await self._wire(stream, result)
        self._emit("stream-subscribed", {"stream": stream})
        return stream

    async def unsubscribe(self, stream: RemoteStream, *, audio: bool | None = None, video: bool | None = None,
                          resolution_ids: list[str] | None = None) -> None:
        result = await self.request("unsubscribe", _subscription(stream, audio, video, resolution_ids))
        await self._wire(stream, result)

    async def batch_subscribe(self, infos: list[dict]) -> None:
        """Replace the whole set of video subscriptions (main streams): ``infos`` is
        ``[{"userId", "resolutionIds"?, "minResolution"?}]``; audio is untouched."""
        data = {"subscribeInfos": [
            {k: v for k, v in i.items() if k in ("userId", "resolutionIds", "minResolution") and v is not None}
            for i in infos
        ]}
        result = await self.request("batchSubscribe", data)
        if result.get("offer"):
            await self._wire(None, {"offer": result["offer"]})
        for r in result.get("results", []):
            info = r["stream"]
            stream = self.remote_streams.get((info["userId"], info["type"])) or RemoteStream.from_info(info)
            await self._wire(stream, r)
            self._emit("stream-subscribed", {"stream": stream})

    def set_network_bandwidth(self, max_bandwidth_kbps: int) -> Any:
        """Cap the total media bandwidth this client receives (3072..51200 kbit/s)."""
        return self._spawn(self.request("setNetworkBandwidth", {"maxBandwidth": max_bandwidth_kbps}))

    @property
    def top_n_audio_tracks(self) -> list:
        """The receiving tracks of the top-N audio slots (top-N mode only)."""
        if self._sub_pc is None:
            return []
        return [t.receiver.track for t in self._sub_pc.getTransceivers() if t.kind == "audio"][:3]

    async def _wire(self, stream: RemoteStream | None, result: dict) -> None:
        offer = result.get("offer")
        if offer:
            if self._sub_pc is not None:
                await self._sub_pc.close()
            self._sub_pc = media.new_peer_connection()
            answer = await media.accept_subscriber_offer(self._sub_pc, offer)
            await self.request("subscriberAnswer", {"sdp": answer})
        if stream is not None:
            media.assign_tracks(self._sub_pc, stream, result.get("assignments", []))

    async def mute(self, stream: LocalStream, kind: str, muted: bool = True) -> None:
        await self.request("mute", {"type": stream.type, "kind": kind, "muted": muted})

    async def _media_reset(self) -> None:
        """The room's SFU worker failed: publish again on the new one."""
        pcs, self._pub_pcs = self._pub_pcs, {}
        for pc in pcs.values():
            await pc.close()
        if self._sub_pc is not None:
            await self._sub_pc.close()
            self._sub_pc = None
        for stream in list(self._local.values()):
            try:
                await self.publish(stream)
            except RtcError as exc:
                self._emit("Error", {"errorCode": str(exc.code), "errorMsg": exc.msg})

    async def _republish_lost(self, types: list[str]) -> None:
        for stype in types:
            stream = self._local.get(stype)
            pc = self._pub_pcs.pop(stype, None)
            if pc is not None:
                await pc.close()
            if stream is None:
                continue
            try:
                await self.publish(stream)
            except RtcError as exc:
                self._emit("Error", {"errorCode": str(exc.code), "errorMsg": exc.msg})

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ------------------------------------------------------------------ quality monitoring

    def enable_stream_state_detection(self, enable: bool, interval: float = 3.0) -> None:
        """``stream-interrupted`` when a subscribed video brings no packets for
        ``interval`` seconds (1..60), ``stream-recovered`` when it flows again."""
        if not 1 <= interval <= 60:
            raise RtcError(90000005, "invalid parameter", "interval must be in [1, 60]")
        self._detect_interval = interval if enable else None
        self._ensure_monitor()

    def enable_rtc_stats(self, enable: bool, interval_ms: int = 1000) -> None:
        """Periodic ``rtc-stats`` events (client-sdk.md rtcStatsInfo)."""
        self._rtc_stats_interval = interval_ms / 1000 if enable else None
        self._ensure_monitor()

    def _ensure_monitor(self) -> None:
        if self._monitor is None or self._monitor.done():
            self._monitor = asyncio.ensure_future(self._monitor_loop())

    async def _monitor_loop(self) -> None:
        last_packets: dict[str, tuple[int, float]] = {}
        interrupted: set[str] = set()
        last_stats = 0.0
        last_quality: tuple[int, int] | None = None
        loop = asyncio.get_running_loop()
        while self._session is not None or not self._ended:
            await asyncio.sleep(0.25)
            now = loop.time()
            sub_stats = await self._sub_pc.getStats() if self._sub_pc is not None else {}
            inbound = {s.ssrc: s for s in sub_stats.values() if s.type == "inbound-rtp"}
            if self._detect_interval is not None and self._sub_pc is not None:
                for stream in list(self.remote_streams.values()):
                    for track in stream.video_tracks.values():
                        packets = self._packets_for(track, inbound)
                        key = f"{stream.user_id}/{stream.type}/{id(track)}"
                        seen = last_packets.get(key)
                        if seen is None or packets != seen[0]:
                            last_packets[key] = (packets, now)
                            if key in interrupted:
                                interrupted.discard(key)
                                self._emit("stream-recovered", [{"userId": stream.user_id,
                                                                 "isScreen": stream.type == "auxiliary"}])
                        elif now - seen[1] >= self._detect_interval and key not in interrupted:
                            interrupted.add(key)
                            self._emit("stream-interrupted", [{"userId": stream.user_id,
                                                               "isScreen": stream.type == "auxiliary"}])
            if now - last_stats >= 2.0:
                quality = await self._network_quality(inbound)
                if quality != last_quality:
                    last_quality = quality
                    self._emit("network-quality", {"uplinkNetworkQuality": quality[0],
                                                   "downlinkNetworkQuality": quality[1]})
            if self._rtc_stats_interval is not None and now - last_stats >= self._rtc_stats_interval:
                last_stats = now
                self._emit("rtc-stats", await self._rtc_stats(inbound))
            elif now - last_stats >= 2.0:
                last_stats = now

    def _packets_for(self, track: Any, inbound: dict) -> int:
        for t in self._sub_pc.getTransceivers():
            if t.receiver.track is track:
                # aiortc names a receiver's stats "inbound-rtp_<id(receiver)>".
                suffix = f"_{id(t.receiver)}"
                return sum(s.packetsReceived for s in inbound.values() if s.id.endswith(suffix))
        return 0

    async def _network_quality(self, inbound: dict) -> tuple[int, int]:
        """0 unknown, 1 excellent … 6 down (client-sdk.md §8.6), from loss and RTT."""
        def grade(loss: float, rtt_ms: float) -> int:
            if loss < 0.01 and rtt_ms < 100:
                return 1
            if loss < 0.03 and rtt_ms < 200:
                return 2
            if loss < 0.08 and rtt_ms < 300:
                return 3
            if loss < 0.15 and rtt_ms < 500:
                return 4
            if loss < 0.3:
                return 5
            return 6

        up = 0
        if self._pub_pcs:
            report = await next(iter(self._pub_pcs.values())).getStats()
            remote = [s for s in report.values() if s.type == "remote-inbound-rtp"]
            if remote:
                loss = max(getattr(s, "fractionLost", 0) or 0 for s in remote)
                rtt = max((getattr(s, "roundTripTime", 0) or 0) for s in remote) * 1000
                up = grade(loss, rtt)
        down = 0
        if inbound:
            received = sum(s.packetsReceived for s in inbound.values())
            lost = sum(max(0, s.packetsLost) for s in inbound.values())
            down = grade(lost / max(1, received + lost), 0) if received else 0
        return up, down

    async def _rtc_stats(self, inbound: dict) -> list[dict]:
        out = []
        for stype, pc in self._pub_pcs.items():
            report = await pc.getStats()
            for s in report.values():
                if s.type == "outbound-rtp":
                    out.append({"userName": self.user_id or "", "isRemote": False,
                                "streamType": "desktop" if stype == "auxiliary" else "main",
                                "mediaType": s.kind, "bitrate": 0, "frameRate": 0, "rtt": 0, "jitter": 0,
                                "pktLossRate": 0})
        for s in inbound.values():
            lost = max(0, s.packetsLost)
            out.append({"userName": "", "isRemote": True, "streamType": "main", "mediaType": s.kind,
                        "bitrate": 0, "frameRate": 0, "rtt": 0, "jitter": s.jitter,
                        "pktLossRate": lost / max(1, s.packetsReceived + lost)})
        return out

    # ------------------------------------------------------------------ statistics

    async def get_transport_stats(self) -> dict:
        """``TransportStats`` of the publisher connection (after publish)."""
        pc = self._pub_pcs.get("main") or next(iter(self._pub_pcs.values()), None)
        if pc is None:
            raise RtcError(90100001, "illegal operation", "publish first")
        report = await pc.getStats()
        sent = sum(getattr(s, "bytesSent", 0) for s in report.values() if s.type == "outbound-rtp")
        rtts = [s.roundTripTime for s in report.values()
                if s.type == "remote-inbound-rtp" and getattr(s, "roundTripTime", None)]
        received = 0
        if self._sub_pc is not None:
            sub = await self._sub_pc.getStats()
            # aiortc's inbound stats carry no byte counts; the transport's do.
            received = sum(getattr(s, "bytesReceived", 0) for s in sub.values() if s.type == "transport")
        return {"bytesSent": sent, "bytesReceived": received, "rtt": (rtts[0] * 1000) if rtts else 0}

    async def get_local_video_stats(self) -> dict:
        out: dict[str, dict] = {}
        for stype, pc in self._pub_pcs.items():
            report = await pc.getStats()
            rows = [{"bytesSent": s.bytesSent, "packetsSent": s.packetsSent}
                    for s in report.values() if s.type == "outbound-rtp" and s.kind == "video"]
            entry = out.setdefault(self.user_id or "", {"mainStream": [], "subStream": None})
            if stype == "main":
                entry["mainStream"] = rows
            else:
                entry["subStream"] = rows[0] if rows else None
        return out

    async def get_local_audio_stats(self) -> dict[str, dict]:
        """``Map<userId, LocalAudioStats>``: {bytesSent, packetsSent} of our audio."""
        out = {"bytesSent": 0, "packetsSent": 0}
        for pc in self._pub_pcs.values():
            for s in (await pc.getStats()).values():
                if s.type == "outbound-rtp" and s.kind == "audio":
                    out["bytesSent"] += s.bytesSent
                    out["packetsSent"] += s.packetsSent
        return {self.user_id or "": out}

    async def _slot_stats(self) -> dict[str, Any]:
        """Receive statistics per subscriber slot (mid)."""
        if self._sub_pc is None:
            return {}
        report = await self._sub_pc.getStats()
        by_receiver = {s.id: s for s in report.values() if s.type == "inbound-rtp"}
        out = {}
        for t in self._sub_pc.getTransceivers():
            row = by_receiver.get(f"inbound-rtp_{id(t.receiver)}")
            if row is not None:
                out[t.mid] = (t.receiver.track, row)
        return out

    async def get_remote_audio_stats(self) -> dict[str, dict]:
        """``Map<userId, RemoteAudioStats>``: {bytesReceived, packetsReceived, packetsLost}.
        aiortc reports no byte counts per stream: bytesReceived is estimated from
        packets at the Opus frame size the SDK negotiates (20 ms)."""
        slots = await self._slot_stats()
        out: dict[str, dict] = {}
        for stream in self.remote_streams.values():
            for track, row in slots.values():
                if stream.audio_track is not None and track is stream.audio_track:
                    out[stream.user_id] = {"packetsReceived": row.packetsReceived,
                                           "packetsLost": max(0, row.packetsLost),
                                           "bytesReceived": 0}
        return out

    async def get_remote_video_stats(self) -> dict[str, dict]:
        """``Map<userId, AllRemoteVideoStats>``: {mainStream: [RemoteVideoStats], subStream}
        with {packetsReceived, packetsLost, resolutionId} per subscribed resolution."""
        slots = await self._slot_stats()
        out: dict[str, dict] = {}
        for stream in self.remote_streams.values():
            rows = []
            for res, vtrack in stream.video_tracks.items():
                for track, row in slots.values():
                    if track is vtrack:
                        rows.append({"resolutionId": res, "packetsReceived": row.packetsReceived,
                                     "packetsLost": max(0, row.packetsLost), "bytesReceived": 0})
            if rows:
                entry = out.setdefault(stream.user_id, {"mainStream": [], "subStream": None})
                if stream.type == "main":
                    entry["mainStream"] = rows
                else:
                    entry["subStream"] = rows[0]
        return out

    async def get_remote_stats(self, kind: str) -> list[dict]:
        """Per-slot receive statistics of the subscriber connection."""
        if self._sub_pc is None:
            return []
        report = await self._sub_pc.getStats()
        return [{"ssrc": s.ssrc, "packetsReceived": s.packetsReceived, "packetsLost": s.packetsLost,
                 "jitter": s.jitter}
                for s in report.values() if s.type == "inbound-rtp" and s.kind == kind]

    async def close(self) -> None:
        """Drop the connection without leaving (as a crashed client would)."""
        self._ended = True
        self._session = None
        await self._close_media()
        await self._shutdown()
        self._set_state(DISCONNECTED)

    # ------------------------------------------------------------------ requests

    async def request(self, rtype: str, data: dict | None = None) -> dict:
        ws = self._ws
        if ws is None or ws.closed or self._state not in (CONNECTED, CONNECTING, RECONNECTING):
            raise local_error(RtcErrorCode.WEBSOCKET_NOT_CONNECTED)
        rid = next(self._ids)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await ws.send_str(json.dumps({"id": rid, "type": rtype, "data": data or {}}))
            return await asyncio.wait_for(fut, self.request_timeout)
        except TimeoutError:
            raise local_error(RtcErrorCode.WAIT_RSP_TIMEOUT, rtype) from None
        except (ConnectionError, RuntimeError) as exc:
            raise local_error(RtcErrorCode.WEBSOCKET_INTERRUPTED, str(exc)) from None
        finally:
            self._pending.pop(rid, None)

    async def send_raw(self, text: str) -> None:
        """Send a frame as is (for protocol tests)."""
        assert self._ws is not None
        await self._ws.send_str(text)

    # ------------------------------------------------------------------ connection

    async def _connect(self, state: str) -> None:
        self._set_state(state)
        if self._http is None:
            self._http = aiohttp.ClientSession()
        self._config_ready = asyncio.Event()
        try:
            self._ws = await asyncio.wait_for(
                self._http.ws_connect(self.url, ssl=self._ssl, heartbeat=None, max_msg_size=0),
                self.connect_timeout,
            )
        except TimeoutError:
            raise local_error(RtcErrorCode.WEBSOCKET_CONNECT_TIMEOUT) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise RtcError(90100016, "websocket connect error", str(exc)) from None
        self._reader = asyncio.create_task(self._read(self._ws))
        try:
            await asyncio.wait_for(self._config_ready.wait(), self.connect_timeout)
        except TimeoutError:
            raise RtcError(90100009, "wait server config fail") from None
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.create_task(self._beat())
        if state == CONNECTING:
            self._set_state(CONNECTED)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                self._on_message(json.loads(msg.data))
        except (ConnectionError, asyncio.CancelledError, ValueError):
            pass
        finally:
            if ws is self._ws:
                self._on_socket_closed()

    def _on_message(self, msg: dict) -> None:
        if msg.get("type") == "response":
            fut = self._pending.get(msg.get("id"))  # type: ignore[arg-type]
            if fut is not None and not fut.done():
                if msg.get("ok"):
                    fut.set_result(msg.get("data") or {})
                else:
                    e = msg.get("error") or {}
                    fut.set_exception(
                        RtcError(e.get("code", 90000001), e.get("message", ""), e.get("detail"), e.get("serverCode"))
                    )
            elif msg.get("id") is None and not msg.get("ok"):
                e = msg.get("error") or {}
                self._emit("Error", {"errorCode": str(e.get("code")), "errorMsg": e.get("message", "")})
            return
        name = msg.get("event")
        data = msg.get("data") or {}
        if name == "config":
            self._config = data
            if self._config_ready is not None:
                self._config_ready.set()
            return
        if name == "client-banned":
            self._ended = True  # kicked, dismissed or logged in elsewhere: do not come back
            self._session = None
        if name in ("stream-added", "stream-updated"):
            stream = RemoteStream.from_info(data)
            self.remote_streams[(stream.user_id, stream.type)] = stream
            self._emit(name, {"stream": stream})
            return
        if name == "stream-removed":
            stream = self.remote_streams.pop((data["userId"], data["type"]), None) or RemoteStream.from_info(data)
            self._emit(name, {"stream": stream})
            return
        if name == "layer-demand":
            stream = self._local.get(data.get("type"))
            # A single resolution keeps sending (first-frame latency over idle bandwidth).
            if stream is not None and len(stream.gates) > 1:
                wanted = set(data.get("resolutionIds") or [])
                for rid, gate in stream.gates.items():
                    gate.active = rid in wanted
            return
        if name == "media-reset":
            self._spawn(self._media_reset())
        self._emit(name, data)

    def _on_socket_closed(self) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(local_error(RtcErrorCode.WEBSOCKET_INTERRUPTED))
        if self._ended or self._session is None or not self.auto_reconnect:
            self._session = None if self._ended else self._session
            self._set_state(DISCONNECTED)
            return
        if self._reconnector is None or self._reconnector.done():
            self._reconnector = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """Reconnect and resume within the keepalive window (R-CONN-03/04)."""
        session = self._session
        if session is None:
            return
        token = session["resumeToken"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(session.get("keepalive", 60))
        delay = 0.2
        self._set_state(RECONNECTING)
        while not self._ended and loop.time() < deadline:
            try:
                await self._connect(RECONNECTING)
                self._session = await self.request("resume", {"resumeToken": token})
                self._set_state(CONNECTED)
                # After a server restart the media is gone: publish again what it lost.
                lost = [t for t in self._local if t not in self._session.get("streams", [])]
                if lost:
                    self._spawn(self._republish_lost(lost))
                return
            except RtcError as exc:
                if exc.code not in (90100016, RtcErrorCode.WEBSOCKET_CONNECT_TIMEOUT, 90100009,
                                    RtcErrorCode.WEBSOCKET_INTERRUPTED, RtcErrorCode.WAIT_RSP_TIMEOUT):
                    # The server answered: the session cannot come back.
                    await self._give_up(str(exc.code), exc.msg)
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        if not self._ended:
            await self._give_up(str(RtcErrorCode.WEBSOCKET_RECONNECT_TIMEOUT), "websocket reconnect timeout")

    async def _give_up(self, code: str, msg: str) -> None:
        self._session = None
        self._ended = True
        ws = self._ws
        self._ws = None
        if ws is not None:
            await ws.close()
        self._set_state(DISCONNECTED)
        self._emit("Error", {"errorCode": code, "errorMsg": msg})

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(float(self._config.get("heartbeatInterval", 5)))
            if self._state == CONNECTED:
                with contextlib.suppress(RtcError):
                    await self.request("heartbeat")

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        for task in (self._heartbeat, self._reconnector, self._monitor):
            if task is not None and task is not current and not task.done():
                task.cancel()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def drop_network(self) -> None:
        """Test helper: kill the socket as a network failure would (the client then
        reconnects by itself)."""
        if self._ws is not None:
            await self._ws.close()
