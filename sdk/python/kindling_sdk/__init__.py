"""Kindling's Python client SDK (asyncio), mirroring the SparkRTC client API.

>>> client = Client("http://127.0.0.1:8080", app_id)
>>> client.on("peer-join", print)
>>> await client.join("room1", user_id="alice", role=JOINER, ctime=ctime, signature=sig)
"""

from kindling_sdk.client import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    JOINER,
    PLAYER,
    RECONNECTING,
    Client,
)
from kindling_sdk.errors import RtcError, RtcErrorCode
from kindling_sdk.media import LocalStream, RemoteStream, use_host_addresses
from kindling_sdk.signature import make_signature, signed

__all__ = [
    "CONNECTED",
    "CONNECTING",
    "DISCONNECTED",
    "JOINER",
    "PLAYER",
    "RECONNECTING",
    "Client",
    "LocalStream",
    "RemoteStream",
    "use_host_addresses",
    "RtcError",
    "RtcErrorCode",
    "make_signature",
    "signed",
]
