"""A raw AK/SK-signing HTTP helper for bad-input tests (the official SDK cannot be
made to send malformed requests). Signs exactly as huaweicloudsdkcore does; the
signer itself is proven by the test vectors in test_aksk_vectors.py."""

from __future__ import annotations

import json as jsonlib
from datetime import UTC, datetime, timedelta

from control.auth import aksk


async def signed_request(
    http,
    k,
    method: str,
    path: str,
    *,
    body: bytes | dict | None = None,
    query: str = "",
    project: bool | str = True,
    ak: str | None = None,
    sk: str | None = None,
    date_shift: timedelta = timedelta(0),
    tamper=None,
    content_type: str = "application/json",
    extra_headers: dict | None = None,
):
    if isinstance(body, dict):
        raw = jsonlib.dumps(body).encode()
    else:
        raw = body or b""
    headers = {
        "Content-Type": content_type,
        "User-Agent": "huaweicloud-usdk-python/3.0; kindling-tests",
        "X-Sdk-Date": (datetime.now(UTC) + date_shift).strftime(aksk.DATE_FORMAT),
        "Host": f"127.0.0.1:{k.settings.port}",
    }
    if project:
        headers["X-Project-Id"] = project if isinstance(project, str) else k.project_id
    signed = tuple(sorted(h.lower() for h in headers))
    lower = {h.lower(): v for h, v in headers.items()}
    sts = aksk.string_to_sign(method, path, query, lower, signed, raw)
    sig = aksk.sign(sk or k.sk, sts)
    headers["Authorization"] = (
        f"SDK-HMAC-SHA256 Access={ak or k.ak}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    if extra_headers:
        headers.update(extra_headers)
    if tamper is not None:
        tamper(headers)
    url = f"{k.url}{path}" + (f"?{query}" if query else "")
    async with http.request(method, url, data=raw, headers=headers, skip_auto_headers={"Content-Type"}) as resp:
        text = await resp.text()
        try:
            parsed = jsonlib.loads(text) if text else None
        except ValueError:
            parsed = text
        return resp.status, parsed, resp.headers
