"""Errors raised by the SDK, carrying SparkRTC's numeric client codes."""

from __future__ import annotations


class RtcError(Exception):
    """Mirrors the Web SDK's ``RtcError``: ``code`` (number) and ``msg``."""

    def __init__(self, code: int, msg: str, detail: str | None = None, server_code: str | None = None) -> None:
        super().__init__(f"{code} {msg}" + (f" ({detail})" if detail else ""))
        self.code = code
        self.msg = msg
        self.detail = detail
        self.server_code = server_code

    def get_code(self) -> int:
        return self.code

    def get_msg(self) -> str:
        return self.msg


class RtcErrorCode:
    WAIT_RSP_TIMEOUT = 90000004
    INVALID_PARAMETER = 90000005
    INVALID_OPERATION = 90100001
    STATUS_ERROR = 90100007
    WEBSOCKET_NOT_CONNECTED = 90100008
    WEBSOCKET_CONNECT_TIMEOUT = 90100012
    WEBSOCKET_RECONNECT_TIMEOUT = 90100013
    WEBSOCKET_INTERRUPTED = 90100015
    ROLE_NO_PERMISSION = 90100022
    SIGNATURE_EXPIRED = 90100030
    SIGNATURE_INVALID = 90100031
    REQUEST_FREQUENTLY = 90100108
    INVALID_CTRL_PARAMETER = 90100201
    JOIN_ROOM_FAIL = 90100203
    ALREADY_JOINED = 90100204
    ROOM_IDLE = 90100224
    KICKED_USER = 90100225
    ROOM_NOT_EXIST = 90100227
    ROLE_CHANGED_FAIL = 90100229
    ANCHOR_NUMBER_OUT_OF_RANGE = 90100246


MESSAGES = {
    90000004: "message response timeout",
    90000005: "invalid parameter",
    90100001: "illegal operation",
    90100008: 'websocket connection state is not "CONNECTED"',
    90100012: "websocket connect timeout",
    90100013: "websocket reconnect timeout",
    90100015: "websocket connection state is idle, interrupt operation",
}


def local_error(code: int, detail: str | None = None) -> RtcError:
    return RtcError(code, MESSAGES.get(code, "sdk internal error"), detail)
