"""Every error code Kindling speaks, in one place.

Three families, exactly as the SparkRTC documents write them:

* REST codes (``RTC.0000xxxx``) returned in ``{"error_code", "error_msg"}`` bodies by
  the management API (rest-api.md §6.2), plus the gateway codes Kindling uses for
  authentication failures and throttling, which the documents leave to the
  implementer (rest-api.md §1.3): we reuse Huawei API Gateway's own names so that
  tooling written against the cloud recognises them.
* Client codes (``901xxxxx``) carried by signalling error responses and surfaced by
  the SDKs as ``RtcError.getCode()`` (client-sdk.md §9.1–9.2).
* Server codes (``RTC.3xxxxxxx``) pushed through the ``Error`` event for
  unrecoverable conditions (client-sdk.md §9.3).

Keeping them together means a handler never invents a code or a message.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------- REST


@dataclass(frozen=True, slots=True)
class RestError:
    status: int
    code: str
    msg: str


class RestErrors:
    OPERATION_UNAUTHORIZED = RestError(
        400, "RTC.00001001", "OperationUnauthorized: get DomainID fail please check X-Auth-Token or AK/SK"
    )
    MALFORMED_BODY = RestError(400, "RTC.00001002", "MalformedRequestBody: json parsing failed")
    INVALID_PARAMETER = RestError(400, "RTC.00001003", "InvalidParameterValue")
    INVALID_COMBINATION = RestError(400, "RTC.00001004", "InvalidParameterCombination")
    MISSING_PARAMETER = RestError(400, "RTC.00001005", "MissingParameter")
    APP_DEACTIVATED = RestError(400, "RTC.00001016", "AppDeactivation: app is stopped")
    APPS_EXCEED = RestError(400, "RTC.00001017", "AppsExceed: app num exceed")
    APP_EXIST = RestError(400, "RTC.00001020", "AppExist: app exists")
    APP_NOT_EXIST = RestError(404, "RTC.00001015", "AppNotExist: app does not exist under your account")
    # M2 "room cannot be found": the documents have no room code; [DOC] uses RTC.00001003.
    ROOM_NOT_EXIST = RestError(404, "RTC.00001003", "InvalidParameterValue")
    # Unknown route / method: the documents define no code; 404/405 with the parameter code.
    NOT_FOUND = RestError(404, "RTC.00001003", "InvalidParameterValue")
    METHOD_NOT_ALLOWED = RestError(405, "RTC.00001003", "InvalidParameterValue")
    BODY_TOO_LARGE = RestError(413, "RTC.00001003", "InvalidParameterValue")
    DB_ERROR = RestError(500, "RTC.00002002", "InternalError. DbErr")
    INTERNAL = RestError(500, "RTC.00002001", "InternalError")
    # Gateway-level codes (implementer's choice, rest-api.md §1.3 / §7.24).
    AUTH_FAILED = RestError(401, "APIGW.0301", "Incorrect IAM authentication information")
    AUTH_FORBIDDEN = RestError(403, "APIGW.0302", "The IAM user is not authorized to access the API")
    THROTTLED = RestError(429, "APIGW.0308", "The throttling threshold has been reached")


class RestException(Exception):
    """Raised anywhere under a REST handler; the middleware turns it into the error body."""

    def __init__(self, error: RestError, detail: str | None = None) -> None:
        super().__init__(detail or error.msg)
        self.error = error
        self.detail = detail

    @property
    def message(self) -> str:
        # The documented message first, so SDK users can match on it; our detail after.
        if self.detail:
            return f"{self.error.msg}: {self.detail}"
        return self.error.msg


# --------------------------------------------------------------------------- client codes


@dataclass(frozen=True, slots=True)
class ClientError:
    code: int
    msg: str


class ClientErrors:
    INVALID_OPERATION = ClientError(90100001, "illegal operation")
    STATUS_ERROR = ClientError(90100007, "room status error")
    WEBSOCKET_RECONNECT_TIMEOUT = ClientError(90100013, "websocket reconnect timeout")
    ROLE_NO_PERMISSION = ClientError(90100022, "the user role have no permission to operate")
    ANSWER_SDP_INVALID = ClientError(90100023, "the answer sdp is invalid")
    SIGNATURE_EXPIRED = ClientError(90100030, "signature expired")
    SIGNATURE_INVALID = ClientError(90100031, "signature invalid")
    INTERNAL_EXCEPTION = ClientError(90100104, "server internal exception")
    REQUEST_FREQUENTLY = ClientError(90100108, "request too frequently")
    INVALID_REQUEST_BODY = ClientError(90100109, "server internal exception")
    INTERNAL_ERROR = ClientError(90100199, "server internal exception")
    INVALID_CTRL_PARAMETER = ClientError(90100201, "request parameter is invalid")
    JOIN_ROOM_FAIL = ClientError(90100203, "join room fail")
    ALREADY_JOINED = ClientError(90100204, "joined already")
    STREAM_ALREADY_PUSHED = ClientError(90100207, "stream is pushed already")
    INVALID_SUBSCRIBED_INFO = ClientError(90100213, "invalid subscribe info")
    OVERLOAD_ROOM_CAPACITY = ClientError(90100217, "overload room capacity")
    KICK_USER_FAIL = ClientError(90100222, "kick user fail")
    ROOM_IDLE = ClientError(90100224, "room is released")
    KICKED_USER = ClientError(90100225, "user has been kicked out")
    ROOM_NOT_EXIST = ClientError(90100227, "room is not exist")
    ROLE_CHANGED_FAIL = ClientError(90100229, "role is unchanged")
    NOT_SUPPORT_SWITCH_ROLE = ClientError(90100241, "switch role is unsupported")
    ANCHOR_NUMBER_OUT_OF_RANGE = ClientError(90100246, "the number of anchors has reached the maximum")
    TOPN_SUB_MODE_FAULT = ClientError(90100247, "topn invalid parameters")
    DESKTOP_NUMBER_OUT_OF_RANGE = ClientError(
        90100250, "the number of desktop streams has reached the maximum"
    )


# --------------------------------------------------------------------------- server codes

SERVER_CODES: dict[str, str] = {
    "RTC.10000001": "Internal error.",
    "RTC.31000004": "Authentication failed.",
    "RTC.31000005": "Please try again.",
    "RTC.31000006": "Clock synchronization is required.",
    "RTC.32000010": "The user to be viewed does not exist.",
    "RTC.32000013": "Invalid request parameter.",
    "RTC.32000028": "Invalid operation.",
    "RTC.32000030": "Insufficient SFU resources.",
    "RTC.32000032": "The maximum number of rooms that a user can join has been reached.",
    "RTC.32000033": "Do not join the same room repeatedly.",
    "RTC.34000001": "The room is full.",
    "RTC.34000002": "The room does not exist.",
    "RTC.34000006": "The user does not exist.",
    "RTC.34000007": "Presentation sharing is in progress.",
}


class SignallingError(Exception):
    """A signalling request failed with a documented client code (and, where the
    room rules pair one, a server ``RTC.*`` code)."""

    def __init__(self, error: ClientError, detail: str | None = None, server_code: str | None = None) -> None:
        super().__init__(detail or error.msg)
        self.error = error
        self.detail = detail
        self.server_code = server_code

    def payload(self) -> dict:
        body: dict = {"code": self.error.code, "message": self.error.msg}
        if self.detail:
            body["detail"] = self.detail
        if self.server_code:
            body["serverCode"] = self.server_code
            body["serverMessage"] = SERVER_CODES[self.server_code]
        return body


# --------------------------------------------------------------------------- leave reasons

LEAVE_REASONS: dict[int, str] = {
    0: "The user exits the room.",
    1: "A server exception occurs.",
    2: "The SFU service is faulty.",
    3: "The service is unavailable (503).",
    4: "An internal error occurs.",
    5: "The user is banned from the room.",
    6: "The signature has expired.",
    7: "Reconnection times out.",
    8: "Network check. No error code is required for the UI.",
    9: "The user is removed.",
    10: "The room is dismissed.",
}
