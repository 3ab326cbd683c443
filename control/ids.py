"""Identifier shapes, matching the vendor's examples (rest-api.md §1.8)."""

from __future__ import annotations

import secrets
import string
import uuid

_AK_ALPHABET = string.ascii_uppercase + string.digits
_SK_ALPHABET = string.ascii_letters + string.digits


def project_id() -> str:
    return uuid.uuid4().hex  # 32 hex, like Huawei project IDs


def app_id() -> str:
    return secrets.token_hex(12)  # 24 hex, like 5ff9701f2346968bb306cb43


def access_key() -> str:
    return "".join(secrets.choice(_AK_ALPHABET) for _ in range(20))


def secret_key() -> str:
    return "".join(secrets.choice(_SK_ALPHABET) for _ in range(40))


def app_key() -> str:
    return secrets.token_hex(16)


def request_id() -> str:
    return uuid.uuid4().hex


def session_token() -> str:
    return secrets.token_urlsafe(24)
