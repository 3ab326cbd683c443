"""Headless Chromium for the Web SDK tests (see /work/shared/notes/browser-tests.md):
Playwright drives the Debian ``/usr/bin/chromium`` (never ``playwright install``),
with fake camera/microphone, loopback ICE and no mDNS host-name hiding.

Test pages live on the test's own Kindling server origin: a page opens the
server's ``/healthz`` and then gets a small harness written into it
(``window.kt``) that loads the SDK from the server (``/sdk/hrtc.js``, or
``/sdk/hrtc.mjs`` as an ES module) and records every client event.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("KINDLING_CHROMIUM", "/usr/bin/chromium")

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    # Pages in the background must keep their heartbeats and decoders going.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def browser_missing() -> str | None:
    """Why the real-browser tests cannot run here, or None."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def require_browser() -> None:
    """In CI a missing browser is a failure; on a developer machine, a skip."""
    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"real-browser tests need Chromium in CI: {reason}", pytrace=False)
    pytest.skip(reason)


HARNESS_JS = r"""
window.kt = (function () {
  const kt = { events: [], client: null, local: null, remote: {} };
  const EVENTS = ['peer-join', 'peer-leave', 'stream-added', 'stream-removed', 'stream-updated', 'stream-subscribed',
    'client-banned', 'Error', 'connection-state-changed', 'mute-audio', 'unmute-audio', 'mute-video', 'unmute-video',
    'signature-expired', 'network-quality', 'remote-user-name-changed', 'rtc-stats', 'stream-interrupted',
    'stream-recovered', 'volume-indicator', 'media-reset'];
  function plain(d) {
    if (d && d.stream && d.stream.getStreamInfo) {
      const s = d.stream;
      return { userId: s.getUserId(), type: s.getType(), streamId: s.getId(), info: s.getStreamInfo() };
    }
    try { return JSON.parse(JSON.stringify(d === undefined ? null : d)); } catch (e) { return String(d); }
  }
  kt.err = function (e) {
    return e && e.getCode ? { code: e.getCode(), msg: e.getMsg(), rtc: e instanceof HRTC.RtcError }
      : { code: null, msg: String(e), rtc: false };
  };
  kt.create = function (appId, domain) {
    const c = HRTC.createClient(domain ? { appId: appId, domain: domain } : { appId: appId });
    EVENTS.forEach(function (ev) {
      c.on(ev, function (d) { kt.events.push({ ev: ev, d: plain(d), t: Date.now() }); });
    });
    c.on('stream-added', function (e) { kt.remote[e.stream.getUserId() + '/' + e.stream.getType()] = e.stream; });
    kt.client = c;
    return c;
  };
  kt.join = async function (o) {
    const c = kt.client || kt.create(o.appId, o.domain);
    await c.join(o.room, { userId: o.user, userName: o.userName, ctime: o.ctime, signature: o.signature,
      role: o.role === undefined ? 0 : o.role });
    return c.getConnectionState();
  };
  kt.publish = async function (o) {
    o = o || {};
    const s = HRTC.createStream({ audio: o.audio !== false, video: o.video !== false });
    if (o.profile) s.setVideoProfile(o.profile);
    await s.initialize();
    for (const p of (o.extra || [])) await s.addResolution(p);
    await s.play('local', { muted: true });
    await kt.client.publish(s);
    kt.local = s;
    return s.getStreamInfo();
  };
  kt.container = function (key) {
    const id = 'remote-' + key;
    if (!document.getElementById(id)) {
      const el = document.createElement('div');
      el.id = id;
      el.style.cssText = 'width:320px;height:240px';
      document.getElementById('remotes').appendChild(el);
    }
    return id;
  };
  kt.autoSubscribe = function (option) {
    kt.client.on('stream-removed', function (e) { e.stream.close(); }); // what apps do (client-sdk.md §1.7)
    kt.client.on('stream-added', async function (e) {
      const s = e.stream;
      try {
        await kt.client.subscribe(s, option);
        await s.play(kt.container(s.getUserId() + '-' + s.getType()), { muted: false });
        kt.events.push({ ev: 'played', d: s.getUserId(), t: Date.now() });
      } catch (err) {
        kt.events.push({ ev: 'subscribe-failed', d: kt.err(err), t: Date.now() });
      }
    });
  };
  kt.video = function (key) {
    const el = document.querySelector('#remote-' + key + ' video');
    if (!el) return null;
    const q = el.getVideoPlaybackQuality ? el.getVideoPlaybackQuality() : { totalVideoFrames: 0 };
    return { w: el.videoWidth, h: el.videoHeight, frames: q.totalVideoFrames, readyState: el.readyState };
  };
  kt.mapToObject = function (m) {
    const o = {};
    m.forEach(function (v, k) { o[k] = v; });
    return o;
  };
  kt.find = function (ev) { return kt.events.filter(function (e) { return e.ev === ev; }); };
  return kt;
})();
"""


def harness_html(module: bool) -> str:
    if module:
        loader = (
            '<script type="module">import HRTC from "/sdk/hrtc.mjs";'
            "window.HRTC_MODULE_DEFAULT = HRTC === window.HRTC && typeof HRTC.createClient === 'function';"
            "window.HRTC_READY = true;</script>"
        )
    else:
        loader = '<script src="/sdk/hrtc.js"></script><script>window.HRTC_READY = !!window.HRTC;</script>'
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>kindling browser test</title></head><body>'
        '<div id="local" style="width:320px;height:240px"></div><div id="remotes"></div>'
        f"<script>{HARNESS_JS}</script>{loader}</body></html>"
    )


class Page:
    """One browser page (its own browser context) running the harness."""

    def __init__(self, page: Any, name: str) -> None:
        self.page = page
        self.name = name
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    async def js(self, expression: str, arg: Any = None) -> Any:
        return await self.page.evaluate(expression, arg)

    async def events(self) -> list[dict]:
        return await self.js("() => kt.events")

    async def diagnostics(self) -> str:
        try:
            events = await self.js("() => kt.events.filter(e => e.ev !== 'rtc-stats').map(e => [e.ev, e.d])")
        except Exception as exc:  # the page may be gone
            events = f"<unavailable: {exc}>"
        return (f"[{self.name}] events: {json.dumps(events)[:3000]}\n"
                f"[{self.name}] console:\n  " + "\n  ".join(self.console[-40:]))

    async def wait(self, predicate: str, arg: Any = None, timeout: float = 15.0) -> Any:
        """Wait until a *synchronous* JS predicate is truthy; its value is returned."""
        try:
            handle = await self.page.wait_for_function(predicate, arg=arg, timeout=timeout * 1000, polling=100)
            return await handle.json_value()
        except Exception as exc:
            raise AssertionError(f"timed out waiting for {predicate!r}: {exc}\n{await self.diagnostics()}") from None

    async def event(self, name: str, timeout: float = 15.0) -> Any:
        """The payload of the first event of that name (waiting for it)."""
        found = await self.wait("n => { const e = kt.events.find(x => x.ev === n); return e ? [e.d] : null; }",
                                name, timeout)
        return found[0]

    async def video(self, key: str) -> dict | None:
        return await self.js("k => kt.video(k)", key)

    async def frames_grow(self, key: str, seconds: float = 1.0) -> tuple[dict, dict]:
        first = await self.video(key)
        await asyncio.sleep(seconds)
        second = await self.video(key)
        assert first and second and second["frames"] > first["frames"], (first, second, await self.diagnostics())
        return first, second


async def open_page(browser: Any, base_url: str, name: str, *, module: bool = False) -> Page:
    """A page whose document comes from the server (so it has the server's origin and
    Chrome's loopback address space, which WebSocket and fetch need under Local
    Network Access checks), then gets the harness written into it."""
    context = await browser.new_context()
    page = await context.new_page()
    p = Page(page, name)
    await page.goto(f"{base_url}/healthz")
    await page.set_content(harness_html(module))
    await p.wait("() => window.HRTC_READY === true && !!window.kt", timeout=10)
    return p
