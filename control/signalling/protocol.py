"""Parsing and validation of signalling messages (docs/signalling.md).

Everything a client sends is checked here, before the room logic sees it:
shape, types (``role`` must be a JSON number, ``ctime`` a string), lengths and
character sets (room-rules.md R-ID-01..07), and unknown fields. A failure is a
``SignallingError`` with the documented client code, answered on the same
request ``id`` when one could be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from control.errors import ClientErrors, SignallingError
from control.rooms.model import ROLES
from control.rooms.service import JoinRequest

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_APP_ID = 128
MAX_USER_NAME = 256
MAX_SIGNATURE = 512
MAX_REQUEST_ID = 64

REQUEST_TYPES = (
    "join", "resume", "leave", "switchRole", "changeUserName", "renewSignature", "heartbeat",
    "publish", "unpublish", "subscribe", "unsubscribe", "subscriberAnswer", "mute",
    "batchSubscribe", "subscriberConnect", "setNetworkBandwidth",
)
MAX_SDP = 256 * 1024
STREAM_TYPES = ("main", "auxiliary")
MAX_RESOLUTIONS = 4


@dataclass(slots=True)
class Request:
    id: int | str
    type: str
    data: dict[str, Any]


def _bad(detail: str) -> SignallingError:
    return SignallingError(ClientErrors.INVALID_CTRL_PARAMETER, detail, "RTC.32000013")


def parse_frame(text: str) -> tuple[Request | None, SignallingError | None, Any]:
    """(request, error, request id): an error comes with whatever id could be read."""
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError):
        return None, _bad("the message is not valid JSON"), None
    if not isinstance(msg, dict):
        return None, _bad("the message must be a JSON object"), None
    rid = msg.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (int, str)) or (isinstance(rid, str) and len(rid) > MAX_REQUEST_ID):
        return None, _bad("'id' must be an integer or a string of at most 64 characters"), None
    unknown = set(msg) - {"id", "type", "data"}
    if unknown:
        return None, _bad(f"unknown field(s): {', '.join(sorted(unknown))}"), rid
    rtype = msg.get("type")
    if rtype not in REQUEST_TYPES:
        return None, _bad(f"unknown request type {rtype!r}"), rid
    data = msg.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, _bad("'data' must be a JSON object"), rid
    return Request(rid, rtype, data), None, rid


# ---------------------------------------------------------------------- field checks


class Fields:
    """Typed access to ``data`` that refuses unknown or mistyped fields."""

    def __init__(self, data: dict[str, Any], allowed: set[str]) -> None:
        unknown = set(data) - allowed
        if unknown:
            raise _bad(f"unknown field(s): {', '.join(sorted(unknown))}")
        self.data = data

    def string(self, name: str, *, required: bool = True, max_len: int, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            if required:
                raise _bad(f"'{name}' is required")
            return default
        if not isinstance(value, str):
            raise _bad(f"'{name}' must be a string")
        if len(value) > max_len:
            raise _bad(f"'{name}' is longer than {max_len} characters")
        return value

    def ident(self, name: str) -> str:
        value = self.string(name, max_len=64)
        if not ID_RE.fullmatch(value):
            raise _bad(f"'{name}' must be 1-64 characters of letters, digits, '_' and '-'")
        return value

    def role(self, name: str = "role") -> int:
        value = self.data.get(name)
        # R-ID-06: a JSON number only; "0" or true are refused.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(f"'{name}' must be a number (0 joiner, 2 player)")
        if value not in ROLES:
            raise _bad(f"'{name}' must be 0 (joiner) or 2 (player)")  # R-ID-07
        return value

    def ctime(self) -> str:
        value = self.data.get("ctime")
        if not isinstance(value, str) or not value:
            raise _bad("'ctime' must be a string of UNIX seconds")  # R-ID-05
        if not value.isdigit() or len(value) > 12:
            raise _bad("'ctime' must be a string of UNIX seconds")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise _bad(f"'{name}' must be true or false")
        return value

    def integer(self, name: str, lo: int, hi: int, *, required: bool = True, default: int = 0) -> int:
        value = self.data.get(name)
        if value is None and not required:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise _bad(f"'{name}' must be an integer in {lo}..{hi}")
        return value

    def stream_type(self) -> str:
        value = self.data.get("type", "main")
        if value not in STREAM_TYPES:
            raise _bad("'type' must be 'main' or 'auxiliary'")
        return value

    def optional_bool(self, name: str) -> bool | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, bool):
            raise _bad(f"'{name}' must be true or false")
        return value

    def string_list(self, name: str, max_items: int, max_len: int = 64) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > max_items or not all(
            isinstance(v, str) and 0 < len(v) <= max_len for v in value
        ):
            raise _bad(f"'{name}' must be a list of at most {max_items} strings")
        return value

    def obj(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise _bad(f"'{name}' must be an object")
        return value


def join_request(data: dict[str, Any]) -> JoinRequest:
    f = Fields(data, {"appId", "roomId", "userId", "userName", "role", "ctime", "signature", "options"})
    app_id = f.string("appId", max_len=MAX_APP_ID)
    if not app_id:
        raise _bad("'appId' is required")
    options = Fields(f.obj("options"), {"autoSubscribeAudio", "topN"})
    options.boolean("autoSubscribeAudio", True)  # validated now; used by the media plane
    return JoinRequest(
        app_id=app_id,
        room_id=f.ident("roomId"),
        user_id=f.ident("userId"),
        user_name=f.string("userName", required=False, max_len=MAX_USER_NAME),
        role=f.role(),
        ctime=f.ctime(),
        signature=f.string("signature", max_len=MAX_SIGNATURE),
        top_n=options.boolean("topN"),
    )


def credential(data: dict[str, Any], extra: set[str] = frozenset()) -> tuple[Fields, str, str]:
    f = Fields(data, {"ctime", "signature"} | set(extra))
    return f, f.ctime(), f.string("signature", max_len=MAX_SIGNATURE)


def user_name(data: dict[str, Any]) -> str:
    f = Fields(data, {"userName"})
    return f.string("userName", max_len=MAX_USER_NAME)


def empty(data: dict[str, Any]) -> None:
    Fields(data, set())


def resume_request(data: dict[str, Any]) -> tuple[str, str | None, str | None]:
    f = Fields(data, {"resumeToken", "ctime", "signature"})
    token = f.string("resumeToken", max_len=128)
    if not token:
        raise _bad("'resumeToken' is required")
    if "ctime" in data or "signature" in data:
        return token, f.ctime(), f.string("signature", max_len=MAX_SIGNATURE)
    return token, None, None


def publish_request(data: dict[str, Any]) -> dict[str, Any]:
    f = Fields(data, {"type", "audio", "audioMid", "video", "sdp", "replace", "audioProfile"})
    audio = f.boolean("audio")
    sdp = f.string("sdp", max_len=MAX_SDP)
    if not sdp.startswith("v=0"):
        raise SignallingError(ClientErrors.ANSWER_SDP_INVALID, "the offer is not an SDP")
    video_raw = data.get("video", [])
    if not isinstance(video_raw, list) or len(video_raw) > MAX_RESOLUTIONS:
        raise _bad(f"'video' must be a list of at most {MAX_RESOLUTIONS} resolutions")
    video = []
    seen: set[str] = set()
    for item in video_raw:
        if not isinstance(item, dict):
            raise _bad("each video resolution must be an object")
        v = Fields(item, {"resolutionId", "width", "height", "frameRate", "bitrate", "mid"})
        rid = v.string("resolutionId", max_len=64)
        if not rid or rid in seen:
            raise _bad("resolutionIds must be non-empty and unique")
        seen.add(rid)
        video.append({
            "resolutionId": rid,
            "width": v.integer("width", 1, 4096),
            "height": v.integer("height", 1, 4096),
            "frameRate": v.integer("frameRate", 1, 120),
            "bitrate": v.integer("bitrate", 1, 51200, required=False, default=0),
            "mid": v.string("mid", max_len=32),
        })
    if not audio and not video:
        raise _bad("a stream needs audio or at least one video resolution")
    audio_mid = f.string("audioMid", max_len=32) if audio else None
    profile = None
    if audio and data.get("audioProfile") is not None:
        raw = data["audioProfile"]
        if not isinstance(raw, dict):
            raise _bad("'audioProfile' must be an object")
        a = Fields(raw, {"sampleRate", "channelCount", "bitrate"})
        profile = {"sampleRate": a.integer("sampleRate", 8000, 48000),
                   "channelCount": a.integer("channelCount", 1, 2),
                   "bitrate": a.integer("bitrate", 6, 510)}
    return {"type": f.stream_type(), "audio": audio, "audioMid": audio_mid, "video": video, "sdp": sdp,
            "replace": f.boolean("replace"), "audioProfile": profile}


def subscribe_request(data: dict[str, Any]) -> dict[str, Any]:
    f = Fields(data, {"userId", "type", "audio", "video", "resolutionIds"})
    return {
        "userId": f.ident("userId"),
        "type": f.stream_type(),
        "audio": f.optional_bool("audio"),
        "video": f.optional_bool("video"),
        "resolutionIds": f.string_list("resolutionIds", MAX_RESOLUTIONS),
    }


def sdp_only(data: dict[str, Any]) -> str:
    f = Fields(data, {"sdp"})
    sdp = f.string("sdp", max_len=MAX_SDP)
    if not sdp.startswith("v=0"):
        raise SignallingError(ClientErrors.ANSWER_SDP_INVALID, "the answer is not an SDP")
    return sdp


def mute_request(data: dict[str, Any]) -> tuple[str, str, bool]:
    f = Fields(data, {"type", "kind", "muted"})
    kind = f.data.get("kind")
    if kind not in ("audio", "video"):
        raise _bad("'kind' must be 'audio' or 'video'")
    if not isinstance(f.data.get("muted"), bool):
        raise _bad("'muted' must be true or false")
    return f.stream_type(), kind, f.data["muted"]


def stream_type_only(data: dict[str, Any]) -> str:
    return Fields(data, {"type"}).stream_type()


def batch_subscribe_request(data: dict[str, Any]) -> list[dict[str, Any]]:
    f = Fields(data, {"subscribeInfos"})
    infos = f.data.get("subscribeInfos")
    if not isinstance(infos, list) or len(infos) > 500:
        raise _bad("'subscribeInfos' must be a list")
    out = []
    for item in infos:
        if not isinstance(item, dict):
            raise _bad("each subscribeInfo must be an object")
        g = Fields(item, {"userId", "resolutionIds", "minResolution"})
        floor = item.get("minResolution")
        if floor is not None and floor not in ("FHD", "HD", "SD", "LD"):
            raise _bad("'minResolution' must be FHD, HD, SD or LD")
        out.append({"userId": g.ident("userId"), "resolutionIds": g.string_list("resolutionIds", MAX_RESOLUTIONS),
                    "minResolution": floor})
    return out


def bandwidth_request(data: dict[str, Any]) -> int:
    # client-sdk.md §3.21: maxBandwidth in [3072, 51200] kbit/s.
    return Fields(data, {"maxBandwidth"}).integer("maxBandwidth", 3072, 51200)
