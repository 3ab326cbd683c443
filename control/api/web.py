"""The browser side: the Web SDK (``/sdk/hrtc.js``, ``/sdk/hrtc.mjs``), the demo
page (``/demo``) and, for demos only, a signature endpoint.

No authentication: these are static files. The signature endpoint hands out
join signatures for any app of this server, so it exists only when the server
was started with ``KINDLING_DEMO_SIGNATURES=1`` (a real deployment signs on its
own application server and never exposes the app key; client-sdk.md §10).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

from aiohttp import web

from control.auth.signature import make_signature
from control.services import SERVICES

ENV_DEMO_SIGNATURES = "KINDLING_DEMO_SIGNATURES"
ENV_WEB_DIR = "KINDLING_WEB_DIR"
SIGNATURE_VALIDITY_S = 2 * 3600  # the documents' recommendation
_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

JS = "application/javascript"
_FILES = {
    "hrtc.js": JS,
    "demo.html": "text/html",
    "demo.js": JS,
}


def web_dirs() -> list[Path]:
    """Where the SDK files may live, in order: an explicit directory, the source
    tree next to the ``control`` package (checkouts and editable installs), and
    the data directory a wheel installs them to (``share/kindling/web``)."""
    dirs = []
    if os.environ.get(ENV_WEB_DIR):
        dirs.append(Path(os.environ[ENV_WEB_DIR]))
    # The source tree, located from this module (control/api/web.py).
    dirs.append(Path(__file__).resolve().parents[2] / "sdk" / "web")
    dirs.append(Path(sys.prefix) / "share" / "kindling" / "web")
    return dirs


def find_file(name: str) -> Path | None:
    for d in web_dirs():
        p = d / name
        if p.is_file():
            return p
    return None


async def _read(name: str) -> bytes:
    path = find_file(name)
    if path is None:
        raise web.HTTPNotFound()
    return await asyncio.to_thread(path.read_bytes)


def _static(name: str, body: bytes) -> web.Response:
    charset = "utf-8"
    return web.Response(
        body=body,
        content_type=_FILES[name],
        charset=charset,
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


async def sdk_js(request: web.Request) -> web.Response:
    return _static("hrtc.js", await _read("hrtc.js"))


async def sdk_module(request: web.Request) -> web.Response:
    """The same SDK as an ES module: ``import HRTC from "/sdk/hrtc.mjs"``. The
    wrapper tells the SDK its own URL (``document.currentScript`` is null in
    modules), so the default server is still the one the file came from."""
    body = (
        b"const __hrtcModuleUrl = import.meta.url;\n"
        + await _read("hrtc.js")
        + b"\nconst HRTC = globalThis.HRTC;\nexport default HRTC;\nexport { HRTC };\n"
    )
    return _static("hrtc.js", body)


async def demo_page(request: web.Request) -> web.Response:
    return _static("demo.html", await _read("demo.html"))


async def demo_js(request: web.Request) -> web.Response:
    return _static("demo.js", await _read("demo.js"))


async def demo_signature(request: web.Request) -> web.Response:
    """``GET /demo/signature?appId=&roomId=&userId=`` → ``{ctime, signature}``
    valid for two hours (only with ``KINDLING_DEMO_SIGNATURES=1``)."""
    q = request.query
    app_id, room_id, user_id = q.get("appId", ""), q.get("roomId", ""), q.get("userId", "")
    if not app_id or len(app_id) > 128:
        return _error(400, "appId is required")
    if not _ID_RE.fullmatch(room_id) or not _ID_RE.fullmatch(user_id):
        return _error(400, "roomId and userId: 1-64 letters, digits, '-' or '_'")
    app = await request.app[SERVICES].apps.for_join(app_id)
    if app is None:
        return _error(404, "no such app")
    ctime = str(int(time.time()) + SIGNATURE_VALIDITY_S)
    signature = make_signature(app.app_key, app_id, room_id, user_id, ctime)
    return web.json_response({"ctime": ctime, "signature": signature}, headers={"Cache-Control": "no-store"})


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def demo_signatures_enabled() -> bool:
    return os.environ.get(ENV_DEMO_SIGNATURES, "").strip().lower() in ("1", "true", "yes", "on")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sdk/hrtc.js", sdk_js)
    app.router.add_get("/sdk/hrtc.mjs", sdk_module)
    app.router.add_get("/demo", demo_page)
    app.router.add_get("/demo/", demo_page)
    app.router.add_get("/demo/demo.js", demo_js)
    if demo_signatures_enabled():  # decided once, when the server starts
        app.router.add_get("/demo/signature", demo_signature)
