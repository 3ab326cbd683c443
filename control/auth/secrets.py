"""Sealing of stored secrets.

AK/SK verification is an HMAC keyed by the SK itself, so the server must be able to
recover every SK: a one-way hash is impossible. Instead every secret (SKs, app keys,
callback keys) is stored encrypted with AES-256-GCM under a *master key* that never
enters the database: ``KINDLING_MASTER_KEY`` (32 bytes, base64) or, when unset, a
key file ``<data-dir>/master.key`` created on first start with mode 0600. A database
dump alone therefore reveals no secret; the dump plus the master key does.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "v1:"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, master_key: str | None, data_dir: Path) -> SecretBox:
        if master_key:
            return cls(_decode_key(master_key))
        path = Path(data_dir) / "master.key"
        if path.exists():
            return cls(_decode_key(path.read_text().strip()))
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(key).decode() + "\n")
        return cls(key)

    def seal(self, plaintext: str) -> str:
        if plaintext == "":
            return ""
        nonce = secrets.token_bytes(12)
        ct = self._aead.encrypt(nonce, plaintext.encode(), None)
        return _PREFIX + base64.b64encode(nonce + ct).decode()

    def open(self, sealed: str) -> str:
        if sealed == "":
            return ""
        if not sealed.startswith(_PREFIX):
            raise ValueError("unknown secret format")
        raw = base64.b64decode(sealed[len(_PREFIX) :])
        return self._aead.decrypt(raw[:12], raw[12:], None).decode()


def _decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ValueError("KINDLING_MASTER_KEY must be 32 bytes encoded in base64") from exc
    if len(key) != 32:
        raise ValueError("KINDLING_MASTER_KEY must be 32 bytes encoded in base64")
    return key
