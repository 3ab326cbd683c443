"""Join signatures, for a tenant's signature server (and tests).

``HMAC-SHA256(app_key, app_id + "+" + room_id + "+" + user_id + "+" + ctime)`` in
lowercase hex, where ``ctime`` is the UNIX time the signature expires (< 12 h ahead).
The app key must never be shipped to end-user devices.
"""

from __future__ import annotations

import hashlib
import hmac
import time


def make_signature(app_key: str, app_id: str, room_id: str, user_id: str, ctime: str | int) -> str:
    message = f"{app_id}+{room_id}+{user_id}+{ctime}".encode()
    return hmac.new(app_key.encode(), message, hashlib.sha256).hexdigest()


def signed(app_key: str, app_id: str, room_id: str, user_id: str, valid_for_s: int = 7200) -> tuple[str, str]:
    """(ctime, signature) valid for ``valid_for_s`` seconds from now."""
    ctime = str(int(time.time()) + valid_for_s)
    return ctime, make_signature(app_key, app_id, room_id, user_id, ctime)
