"""Verification of ``SDK-HMAC-SHA256`` request signatures, exactly as the official
``huaweicloudsdkcore`` signer computes them (rest-api.md §2.2).

The verifier is a pure function of the raw request so it can be tested against the
captured test vectors without a server. It must see the path and query *as sent*
(before any routing normalisation) and the exact body bytes: the SDK hashes its own
serialisation, which the server must never re-create.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "SDK-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_AUTH_RE = re.compile(
    r"SDK-HMAC-SHA256 Access=([^,\s]+), SignedHeaders=([^,\s]+), Signature=([0-9a-fA-F]{64})"
)


class SignatureError(Exception):
    """Why a request's signature was refused (the message is safe to return)."""


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def _encode(value: str | bytes) -> str:
    # RFC 3986 unreserved set; everything else %XX with upper-case hex.
    return quote(value, safe="-_.~")


def _decode(value: str) -> bytes:
    return unquote_to_bytes(value)


def canonical_uri(raw_path: str) -> str:
    decoded = _decode(raw_path)
    encoded = "/".join(_encode(seg) for seg in decoded.split(b"/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs: list[tuple[bytes, bytes]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((_decode(name), _decode(value)))
    # The SDK sorts the unencoded strings by code point; for UTF-8 that is byte order.
    pairs.sort()
    return "&".join(f"{_encode(n)}={_encode(v)}" for n, v in pairs)


def parse_authorization(header: str | None) -> ParsedAuthorization:
    if not header:
        raise SignatureError("missing Authorization header")
    m = _AUTH_RE.fullmatch(header.strip())
    if m is None:
        raise SignatureError("malformed Authorization header (expected SDK-HMAC-SHA256)")
    ak, signed, sig = m.groups()
    names = tuple(signed.split(";"))
    if any(n != n.lower() or not n for n in names):
        raise SignatureError("SignedHeaders must be lower-case names")
    return ParsedAuthorization(ak, names, sig.lower())


def string_to_sign(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: tuple[str, ...],
    body: bytes,
) -> str:
    lines = []
    for name in signed_headers:
        value = headers.get(name)
        if value is None:
            raise SignatureError(f"signed header {name!r} is missing")
        lines.append(f"{name}:{value.strip()}\n")
    if not body:
        payload_hash = EMPTY_SHA256
    else:
        payload_hash = headers.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()
    creq = "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            "".join(lines),
            ";".join(signed_headers),
            payload_hash,
        ]
    )
    date = headers.get("x-sdk-date", "")
    return f"{ALGORITHM}\n{date}\n{hashlib.sha256(creq.encode()).hexdigest()}"


def sign(secret_key: str, sts: str) -> str:
    return hmac.new(secret_key.encode(), sts.encode(), hashlib.sha256).hexdigest()


def check_date(value: str | None, now: datetime, max_skew_s: int) -> None:
    if not value:
        raise SignatureError("missing X-Sdk-Date header")
    try:
        when = datetime.strptime(value, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("X-Sdk-Date must be YYYYMMDDTHHMMSSZ") from None
    if abs((now - when).total_seconds()) > max_skew_s:
        raise SignatureError("request expired: X-Sdk-Date is outside the allowed clock skew")


def verify(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    auth: ParsedAuthorization,
    secret_key: str,
    now: datetime | None,
    max_skew_s: int,
) -> None:
    """Raise ``SignatureError`` unless the request carries a valid signature.

    ``headers`` must look names up case-insensitively (aiohttp's CIMultiDict does).
    ``now=None`` skips the clock check (test vectors carry a fixed 2024 date).
    """
    if "host" not in auth.signed_headers or "x-sdk-date" not in auth.signed_headers:
        raise SignatureError("SignedHeaders must include host and x-sdk-date")
    if now is not None:
        check_date(headers.get("x-sdk-date"), now, max_skew_s)
    sts = string_to_sign(method, raw_path, raw_query, headers, auth.signed_headers, body)
    expected = sign(secret_key, sts)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureError("signature does not match")
