"""Small tools for signalling tests: an event recorder for SDK clients and a raw
WebSocket for speaking (and mis-speaking) the protocol directly."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from kindling_sdk import Client, RtcError
from tests.conftest import sign

EVENTS = (
    "peer-join", "peer-leave", "client-banned", "signature-expired", "remote-user-name-changed",
    "connection-state-changed", "Error", "stream-added", "stream-removed", "stream-updated", "stream-subscribed",
    "media-reset", "volume-indicator", "network-quality", "rtc-stats", "stream-interrupted", "stream-recovered",
    "mute-audio", "unmute-audio", "mute-video", "unmute-video",
)


class Recorder:
    """Collects every event of a client in order."""

    def __init__(self, client: Client) -> None:
        self.events: list[tuple[str, Any]] = []
        self._changed = asyncio.Event()
        for name in EVENTS:
            client.on(name, lambda data, name=name: self._add(name, data))

    def _add(self, name: str, data: Any) -> None:
        self.events.append((name, data))
        self._changed.set()

    def of(self, name: str) -> list[Any]:
        return [d for n, d in self.events if n == name]

    async def wait(self, name: str, pred=lambda d: True, timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            for n, d in self.events:
                if n == name and pred(d):
                    return d
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {name} event matching in {timeout}s; got {self.events}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass


async def joined(k, app_id: str, key: str, room: str, user: str, role: int = 0, **kw) -> tuple[Client, Recorder]:
    client = k.client(app_id, **{x: kw.pop(x) for x in ("reconnect",) if x in kw})
    rec = Recorder(client)
    ctime, sig = sign(key, app_id, room, user)
    await client.join(room, user_id=user, ctime=ctime, signature=sig, role=role, **kw)
    return client, rec


async def join_error(k, app_id: str, room: str, user: str, *, ctime: str, signature: str, role: Any = 0,
                     **kw) -> RtcError:
    client = k.client(app_id)
    try:
        await client.join(room, user_id=user, ctime=ctime, signature=signature, role=role, **kw)
    except RtcError as exc:
        return exc
    raise AssertionError("join unexpectedly succeeded")


class RawWS:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = http
        self.ws = ws
        self.events: list[dict] = []
        self.config: dict | None = None

    @classmethod
    async def open(cls, k) -> RawWS:
        http = aiohttp.ClientSession()
        ws = await http.ws_connect(f"ws://127.0.0.1:{k.settings.port}/signalling", max_msg_size=0)
        raw = cls(http, ws)
        first = await raw.next_message()
        assert first["type"] == "event" and first["event"] == "config"
        raw.config = first["data"]
        return raw

    async def next_message(self, timeout: float = 5.0) -> dict:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"socket ended: {msg.type} {msg.data!r}")
        return json.loads(msg.data)

    async def response(self, timeout: float = 5.0) -> dict:
        while True:
            m = await self.next_message(timeout)
            if m["type"] == "response":
                return m
            self.events.append(m)

    async def send(self, payload: Any) -> None:
        await self.ws.send_str(payload if isinstance(payload, str) else json.dumps(payload))

    async def call(self, rid: Any, rtype: str, data: dict | None = None) -> dict:
        await self.send({"id": rid, "type": rtype, "data": data or {}})
        return await self.response()

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
