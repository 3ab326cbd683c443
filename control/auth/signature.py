"""Join signatures (room-rules.md R-AUTH-01..05).

``signature = lowercase_hex(HMAC-SHA256(app_key, app_id + "+" + room_id + "+" + user_id + "+" + ctime))``
with ``ctime`` the decimal UNIX time at which the signature *expires*, at most 12 h
ahead. The literal "+" separators follow the SDK reference code (R-CONTRA-01).
"""

from __future__ import annotations

import hashlib
import hmac

from control.errors import ClientErrors, SignallingError

MAX_VALIDITY_S = 43200


def make_signature(app_key: str, app_id: str, room_id: str, user_id: str, ctime: str | int) -> str:
    content = f"{app_id}+{room_id}+{user_id}+{ctime}"
    return hmac.new(app_key.encode(), content.encode(), hashlib.sha256).hexdigest()


def check_signature(
    *,
    app_key: str,
    app_id: str,
    room_id: str,
    user_id: str,
    ctime: str,
    signature: str,
    now: float,
    max_validity_s: int = MAX_VALIDITY_S,
) -> int:
    """Return the expiry (UNIX seconds) of a valid signature, else raise the
    documented signalling error: 90100030 expired, 90100031 invalid."""
    if not ctime.isdigit() or len(ctime) > 12:
        raise SignallingError(ClientErrors.SIGNATURE_INVALID, "ctime must be a decimal UNIX time", "RTC.31000004")
    expiry = int(ctime)
    expected = make_signature(app_key, app_id, room_id, user_id, ctime)
    # Upper-case hex input is accepted by lower-casing first (OQ-34).
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise SignallingError(ClientErrors.SIGNATURE_INVALID, "signature does not match", "RTC.31000004")
    if expiry <= now:
        raise SignallingError(ClientErrors.SIGNATURE_EXPIRED, "ctime is in the past", "RTC.31000004")
    if expiry - now >= max_validity_s:
        raise SignallingError(
            ClientErrors.SIGNATURE_INVALID, "ctime is 12 hours or more ahead", "RTC.31000006"
        )
    return expiry
