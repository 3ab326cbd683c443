"""The Web SDK (sdk/web/hrtc.js) in a real headless Chromium against a real
Kindling server and SFU worker: publish/subscribe between pages, screen sharing,
layers and batchSubscribe, local stream controls (mute, replaceTrack, mixing,
republish), top-N audio, leave/kick events, interop with the Python SDK,
signature renewal and reconnection, error codes, the ES-module build, the demo
page and its routes.

In CI (``CI`` set) these tests fail when Chromium or Playwright is missing;
elsewhere they are skipped.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from control.auth.signature import make_signature
from tests.browser_fixtures import CHROMIUM, CHROMIUM_ARGS, open_page, require_browser
from tests.conftest import sign
from tests.helpers import Recorder
from tests.media_fixtures import camera, frames


@pytest.fixture
async def browser():
    require_browser()
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    try:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()
    finally:
        await pw.stop()


@pytest.fixture
def demo_signatures(monkeypatch):
    """Must come before ``kindling``/``media`` in a test's arguments: the server reads it at start."""
    monkeypatch.setenv("KINDLING_DEMO_SIGNATURES", "1")


async def join_page(page, k, app_id: str, key: str, room: str, user: str, *, role: int = 0,
                    auto_subscribe: bool | dict = False) -> None:
    ctime, sig = sign(key, app_id, room, user)
    await page.js("o => kt.create(o.appId)", {"appId": app_id})
    if auto_subscribe is not False:
        await page.js("o => kt.autoSubscribe(o === true ? undefined : o)", auto_subscribe)
    state = await page.js("o => kt.join(o)", {"appId": app_id, "room": room, "user": user, "ctime": ctime,
                                              "signature": sig, "role": role, "userName": user.title()})
    assert state == "CONNECTED"


# ----------------------------------------------------------------------------- media between browsers


async def test_two_pages_play_each_other_then_leave(media, browser):
    k = media
    app_id, key = await k.app()
    alice = await open_page(browser, k.url, "alice")
    bob = await open_page(browser, k.url, "bob")
    await join_page(alice, k, app_id, key, "r", "alice", auto_subscribe=True)
    await alice.js("() => kt.publish({profile: '360p_1'})")
    await join_page(bob, k, app_id, key, "r", "bob", auto_subscribe=True)
    await bob.js("() => kt.publish({profile: '360p_1'})")

    # Each page plays the other's camera: decoded pictures, and more of them over time.
    await alice.wait("() => { const v = kt.video('bob-main'); return v && v.w > 0; }")
    await bob.wait("() => { const v = kt.video('alice-main'); return v && v.w > 0; }")
    await alice.frames_grow("bob-main")
    _, v = await bob.frames_grow("alice-main")
    assert v["w"] == 640 and v["h"] == 360

    stats = await bob.js("async () => kt.mapToObject(await kt.client.getRemoteVideoStats())")
    assert stats["alice"]["mainStream"][0]["framesDecoded"] > 0, stats
    audio = await bob.js("async () => kt.mapToObject(await kt.client.getRemoteAudioStats())")
    assert audio["alice"]["packetsReceived"] > 0, audio
    transport = await alice.js("() => kt.client.getTransportStats()")
    assert transport["bytesSent"] > 0 and transport["bytesReceived"] > 0, transport
    local = await alice.js("async () => kt.mapToObject(await kt.client.getLocalVideoStats())")
    assert local["alice"]["mainStream"][0]["framesEncoded"] > 0, local
    joined = await bob.event("peer-join")
    assert joined == {"userId": "alice", "userName": "Alice"}
    subscribed = await bob.event("stream-subscribed")
    assert subscribed["userId"] == "alice" and subscribed["type"] == "main"

    # Screen sharing: a second stream of type auxiliary, played with objectFit contain; one per room.
    await alice.js("""async () => {
        const screen = HRTC.createStream({screen: true});
        screen.setScreenProfile('720p');
        await screen.initialize();
        await kt.client.publish(screen);
        kt.screen = screen;
    }""")
    shared = await bob.wait("""() => { const v = document.querySelector('#remote-alice-auxiliary video');
                                       return v && v.videoWidth > 0 ? [v.videoWidth, v.style.objectFit] : null; }""")
    assert shared[0] > 0 and shared[1] == "contain"
    second = await bob.js("""async () => {
        const s = HRTC.createStream({screen: true}); await s.initialize();
        try { await kt.client.publish(s); return null; } catch (e) { return kt.err(e); } finally { s.close(); } }""")
    assert second == {"code": 90100250, "msg": "the number of desktop streams has reached the maximum", "rtc": True}

    await alice.js("() => kt.client.leave()")
    assert await alice.js("() => kt.client.getConnectionState()") == "DISCONNECTED"
    left = await bob.event("peer-leave")
    assert left == {"userId": "alice", "userName": "Alice", "reason": {"code": 0, "msg": "The user exits the room."}}
    names = [e["ev"] for e in await bob.events()]
    assert names.index("stream-removed") < names.index("peer-leave")
    removed = sorted(e["d"]["type"] for e in await bob.events() if e["ev"] == "stream-removed")
    assert removed == ["auxiliary", "main"]
    # The removed stream's player lost its track (the slot may carry someone else next).
    assert await bob.js("() => kt.remote['alice/main'].getVideoTrack()") is None


async def test_subscribing_a_layer_and_switching_layers(media, browser):
    k = media
    app_id, key = await k.app()
    alice = await open_page(browser, k.url, "alice")
    viewer = await open_page(browser, k.url, "viewer")
    await join_page(alice, k, app_id, key, "r", "alice")
    info = await alice.js("() => kt.publish({profile: '360p_1', extra: ['180p_1']})")
    high, low = info["videoProfiles"]
    assert (high["width"], high["height"], low["width"], low["height"]) == (640, 360, 320, 180)
    assert high["hasTrack"] and low["hasTrack"]

    await join_page(viewer, k, app_id, key, "r", "viewer", role=2)
    remote_info = (await viewer.event("stream-added"))["info"]
    assert [p["resolutionId"] for p in remote_info["videoProfiles"]] == [high["resolutionId"], low["resolutionId"]]
    got = await viewer.js("""async low => {
        const s = kt.remote['alice/main'];
        await kt.client.subscribe(s, {video: true, audio: false, resolutionIds: [low]});
        await s.play(kt.container('alice-main'));
        return s.getStreamInfo().videoProfiles.map(p => [p.resolutionId, p.hasTrack]);
    }""", low["resolutionId"])
    assert got == [[high["resolutionId"], False], [low["resolutionId"], True]]
    small = await viewer.wait("() => { const v = kt.video('alice-main'); return v && v.w > 0 ? v : null; }")
    assert 0 < small["w"] <= 320, small
    await viewer.frames_grow("alice-main")

    # batchSubscribe: the full list of video subscriptions -> the high layer instead of the low one.
    await viewer.js("h => kt.client.batchSubscribe([{userId: 'alice', resolutionIds: [h]}])", high["resolutionId"])
    # The server switches in place on a keyframe, and its downlink adaptation may hold the
    # low layer for a few seconds until the estimate allows the high one.
    big = await viewer.wait("() => { const v = kt.video('alice-main'); return v && v.w > 320 ? v : null; }",
                            timeout=30)
    assert big["w"] > small["w"], (small, big)
    flags = await viewer.js("() => kt.remote['alice/main'].getStreamInfo().videoProfiles.map(p => p.hasTrack)")
    assert flags == [True, False]
    await viewer.frames_grow("alice-main")
    # The publisher's audio profile travels with the stream (the 'standard' profile here).
    audio = await viewer.js("() => kt.remote['alice/main'].getStreamInfo().audioProfile")
    assert audio == {"sampleRate": 48000, "channelCount": 1, "bitrate": 40000}, audio

    # A server without batchSubscribe: the SDK subscribes/unsubscribes the difference itself.
    await viewer.js("""() => {
        const request = kt.client._request.bind(kt.client);
        kt.client._request = (type, data, timeout) => type === 'batchSubscribe'
            ? Promise.reject(new HRTC.RtcError(90100201, 'request parameter is invalid',
                                               "unknown request type 'batchSubscribe'"))
            : request(type, data, timeout);
    }""")
    await viewer.js("l => kt.client.batchSubscribe([{userId: 'alice', resolutionIds: [l]}])", low["resolutionId"])
    flags = await viewer.js("() => kt.remote['alice/main'].getStreamInfo().videoProfiles.map(p => p.hasTrack)")
    assert flags == [False, True]
    await viewer.wait("() => { const v = kt.video('alice-main'); return v && v.w > 0 && v.w <= 320; }")
    await viewer.js("() => kt.client.batchSubscribe([])")
    flags = await viewer.js("() => kt.remote['alice/main'].getStreamInfo().videoProfiles.map(p => p.hasTrack)")
    assert flags == [False, False]
    assert len(await viewer.js("() => kt.find('stream-subscribed')")) == 3


async def test_local_stream_controls_reach_the_other_page(media, browser):
    k = media
    app_id, key = await k.app()
    alice = await open_page(browser, k.url, "alice")
    bob = await open_page(browser, k.url, "bob")
    await join_page(alice, k, app_id, key, "r", "alice")
    await alice.js("() => kt.publish({profile: '360p_1'})")
    await join_page(bob, k, app_id, key, "r", "bob", role=2, auto_subscribe=True)
    await bob.js("async () => { await kt.client.enableStreamStateDetection(true, 1);"
                 " await kt.client.enableRtcStats(true, 500); }")
    await bob.wait("() => { const v = kt.video('alice-main'); return v && v.w > 0; }")

    # Mute and unmute: track.enabled locally, mute requests to the server, events at the peer.
    assert await alice.js("() => kt.local.muteAudio()") is True
    assert await alice.js("() => kt.local.getAudioTrack().enabled") is False
    assert await bob.event("mute-audio") == {"roomId": "r", "userId": "alice", "status": 2, "reason": 1}
    assert await alice.js("() => kt.local.unmuteAudio()") is True
    assert await bob.event("unmute-audio") == {"roomId": "r", "userId": "alice", "status": 1, "reason": 2}
    await alice.wait("() => kt.local.getAudioLevel() > 0.001")  # WebAudio analyser on the fake microphone

    # Audio mixing: a 0.6 s WAV mixed into what is sent (WebAudio), then back to the microphone.
    mixing = await alice.js("""async () => {
        const rate = 48000, n = rate * 0.6, buf = new ArrayBuffer(44 + n * 2), v = new DataView(buf);
        const text = (o, s) => [...s].forEach((c, i) => v.setUint8(o + i, c.charCodeAt(0)));
        text(0, 'RIFF'); v.setUint32(4, 36 + n * 2, true); text(8, 'WAVEfmt '); v.setUint32(16, 16, true);
        v.setUint16(20, 1, true); v.setUint16(22, 1, true); v.setUint32(24, rate, true);
        v.setUint32(28, rate * 2, true); v.setUint16(32, 2, true); v.setUint16(34, 16, true);
        text(36, 'data'); v.setUint32(40, n * 2, true);
        for (let i = 0; i < n; i++) v.setInt16(44 + i * 2, Math.sin(i / rate * 2 * Math.PI * 440) * 12000, true);
        const url = URL.createObjectURL(new Blob([buf], {type: 'audio/wav'}));
        const mic = kt.local.getAudioTrack(), sender = kt.local._pub.audioSender;
        let played = false;
        kt.local.on('audio-mixing-played', () => { played = true; });
        const finished = new Promise(r => kt.local.on('audio-mixing-finished', () => r(true)));
        await kt.local.startAudioMixing({filePath: url});
        const during = {mixed: sender.track !== mic && sender.track.readyState === 'live',
                        duration: kt.local.getAudioMixingDuration()};
        const done = await Promise.race([finished, new Promise(r => setTimeout(() => r(false), 5000))]);
        return {played, ...during, finished: done, restored: sender.track === mic};
    }""")
    assert mixing == {"played": True, "mixed": True, "duration": 600, "finished": True, "restored": True}

    # Statistics events computed from getStats().
    row = await bob.wait("""() => { const e = kt.find('rtc-stats').reverse().find(e => e.d.some(r => r.bitrate > 0));
                                    return e ? e.d.find(r => r.mediaType === 'video') : null; }""")
    assert row["isRemote"] is True and row["streamType"] == "main" and row["userName"] == "Alice"
    quality = await bob.event("network-quality")
    assert set(quality) == {"uplinkNetworkQuality", "downlinkNetworkQuality"}

    # The camera stops: stream-interrupted; a new track in its place (no renegotiation): stream-recovered.
    await alice.js("() => kt.local.getVideoTrack().stop()")
    assert await bob.event("stream-interrupted") == [{"userId": "alice", "isScreen": False}]
    await alice.js("""async () => {
        const t = (await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 360}})).getVideoTracks()[0];
        await kt.local.replaceTrack(t, 'video');
    }""")
    assert await bob.event("stream-recovered") == [{"userId": "alice", "isScreen": False}]
    assert await bob.js("() => kt.find('stream-removed').length") == 0

    # A second resolution on a published stream: published again in place (stream-updated, same
    # stream id) and bob's subscription carries on without a new subscribe.
    stream_id = (await bob.event("stream-added"))["streamId"]
    await alice.js("() => kt.local.addResolution('180p_1')")
    updated = await bob.event("stream-updated")
    assert updated["streamId"] == stream_id
    assert [(p["width"], p["height"]) for p in updated["info"]["videoProfiles"]] == [(640, 360), (320, 180)]
    frames = (await bob.video("alice-main"))["frames"]
    await bob.wait("n => { const v = kt.video('alice-main'); return v && v.w > 320 && v.frames > n + 10; }", frames)
    assert await bob.js("() => kt.find('stream-removed').length + kt.find('played').length") == 1

    # unpublish, switch to player and back (new signatures), publish the same stream again.
    await alice.js("() => kt.client.unpublish(kt.local)")
    await bob.wait("() => kt.find('stream-removed').length === 1")
    for role in (2, 0):
        ctime, sig = sign(key, app_id, "r", "alice")
        await alice.js("o => kt.client.switchRole(o.role, {ctime: o.ctime, signature: o.sig})",
                       {"role": role, "ctime": ctime, "sig": sig})
    await alice.js("() => kt.client.publish(kt.local)")
    await bob.wait("() => kt.find('played').length === 2")
    await bob.wait("() => { const v = kt.video('alice-main'); return v && v.w > 320; }")


async def test_top_n_audio_mode(media, browser):
    k = media
    app_id, key = await k.app()
    listener = await open_page(browser, k.url, "listener")
    speaker = await open_page(browser, k.url, "speaker")
    ctime, sig = sign(key, app_id, "r", "listener")
    assert await listener.js("o => { kt.create(o); return kt.client.enableTopThreeAudioMode(true); }", app_id) is True
    await listener.js("o => kt.join(o)", {"appId": app_id, "room": "r", "user": "listener", "ctime": ctime,
                                          "signature": sig, "role": 2})
    assert await listener.js("() => kt.client.enableTopThreeAudioMode(false)") is False  # only before join
    await join_page(speaker, k, app_id, key, "r", "speaker")
    await speaker.js("() => kt.publish({profile: '180p_1'})")
    # The loudest speakers come without any subscription; the SDK plays them itself.
    volumes = await listener.event("volume-indicator")
    assert volumes[0]["user_id"] == "speaker" and 0 <= volumes[0]["volume"] <= 100
    packets = 0
    for _ in range(50):
        packets = await listener.js("""async () => {
            let n = 0;
            for (const el of document.querySelectorAll('audio.hrtc-topn-audio')) {
                const r = await kt.client._subPc.getTransceivers()
                    .find(t => t.receiver.track === el.srcObject.getAudioTracks()[0]).receiver.getStats();
                r.forEach(s => { if (s.type === 'inbound-rtp') n += s.packetsReceived; });
            }
            return n;
        }""")
        if packets > 0:
            break
        await asyncio.sleep(0.1)
    assert packets > 0
    await listener.js("() => { kt.client.setVolume4TopThree(30); kt.client.muteAudio4TopThree(true); }")
    players = await listener.js("() => [...document.querySelectorAll('audio.hrtc-topn-audio')]"
                                ".map(el => [el.volume, el.muted])")
    assert players == [[0.3, True]] * 3
    # An explicit audio subscription is refused in this mode (the server picks the audio).
    refused = await listener.js("""async () => { try { await kt.client.subscribe(kt.remote['speaker/main'],
        {audio: true, video: true}); return null; } catch (e) { return kt.err(e); } }""")
    assert refused["code"] == 90100247


async def test_browser_and_python_sdk_see_each_other(media, browser):
    k = media
    app_id, key = await k.app()
    web = await open_page(browser, k.url, "web")
    await join_page(web, k, app_id, key, "r", "web", auto_subscribe=True)
    await web.js("() => kt.publish({profile: '360p_1'})")

    py = k.client(app_id)
    rec = Recorder(py)
    ctime, sig = sign(key, app_id, "r", "py")
    await py.join("r", user_id="py", ctime=ctime, signature=sig)
    await py.publish(camera())  # 640x360 + 320x180 test patterns and a tone-less audio track
    stream = (await rec.wait("stream-added"))["stream"]
    assert stream.user_id == "web" and stream.has_audio and len(stream.video) == 1
    await py.subscribe(stream)
    got = await frames(stream.video_track, 5)
    assert (got[-1].width, got[-1].height) == (640, 360)
    assert (await frames(stream.audio_track, 5))[0].sample_rate == 48000

    played = await web.wait("() => { const v = kt.video('py-main'); return v && v.w > 0 ? v : null; }")
    assert played["w"] == 640  # no option: audio and the highest resolution
    await web.frames_grow("py-main")
    audio = await web.js("async () => kt.mapToObject(await kt.client.getRemoteAudioStats())")
    assert audio["py"]["packetsReceived"] > 0


# ----------------------------------------------------------------------------- signalling in the browser


async def test_kick_through_rest_api_bans_the_page_es_module_build(kindling, browser):
    from huaweicloudsdkcloudrtc.v2 import RemoveUsersReq, RemoveUsersRequest

    k = kindling
    app_id, key = await k.app()
    page = await open_page(browser, k.url, "bob", module=True)
    assert await page.js("() => window.HRTC_MODULE_DEFAULT") is True
    await join_page(page, k, app_id, key, "r", "bob")  # no domain: the server the module came from
    req = RemoveUsersRequest(app_id=app_id, room_id="r", body=RemoveUsersReq(user_ids=["bob"]))
    await asyncio.to_thread(k.rtc().remove_users, req)
    assert await page.event("client-banned") == {"userId": "bob", "reason": "The user is removed."}
    await page.wait("() => kt.client.getConnectionState() === 'DISCONNECTED'")
    states = [e["d"]["curState"] for e in await page.events() if e["ev"] == "connection-state-changed"]
    assert states == ["CONNECTING", "CONNECTED", "DISCONNECTED"]  # no reconnection after a kick


async def test_signature_expiry_renewal_reconnect_and_resume(kindling, browser):
    k = kindling
    app_id, key = await k.app()
    py = k.client(app_id)
    rec = Recorder(py)
    ctime, sig = sign(key, app_id, "r", "py")
    await py.join("r", user_id="py", ctime=ctime, signature=sig)
    page = await open_page(browser, k.url, "web")
    ctime, sig = sign(key, app_id, "r", "web", valid_for=2)
    await page.js("o => kt.create(o.appId)", {"appId": app_id})
    await page.js("o => kt.join(o)", {"appId": app_id, "room": "r", "user": "web", "ctime": ctime, "signature": sig})
    await rec.wait("peer-join")
    expired = await page.event("signature-expired", timeout=10)
    assert expired == {"errorCode": "90100030", "errorMsg": "signature expired"}
    ctime, sig = sign(key, app_id, "r", "web")
    assert await page.js("o => kt.client.renewSignature(o.ctime, o.sig)", {"ctime": ctime, "sig": sig}) is True

    session = await page.js("() => kt.client._session.sessionId")
    await page.js("() => kt.client._dropSocket()")  # what a network failure looks like to the SDK
    await page.wait("() => kt.find('connection-state-changed').some(e => e.d.curState === 'RECONNECTING')")
    await page.wait("() => kt.client.getConnectionState() === 'CONNECTED'")
    assert await page.js("() => kt.client._session.sessionId") == session  # resumed, with the renewed signature
    assert await page.js("() => kt.client.changeUserName('Webby')") is True
    changed = await rec.wait("remote-user-name-changed")
    assert changed == {"roomId": "r", "userId": "web", "userName": "Webby"}
    assert rec.of("peer-leave") == []  # the others never saw it leave

    # A renewal the server refuses comes back as signature-expired with the "invalid" code.
    assert await page.js("o => kt.client.renewSignature(o, 'ab'.repeat(32))", ctime) is True
    await page.wait("() => kt.find('signature-expired').some(e => e.d.errorCode === '90100031')")
    assert await page.js("() => kt.client.renewSignature('soon', 'x')") is False


async def test_error_codes_reach_the_page_as_rtc_errors(kindling, browser):
    k = kindling
    app_id, key = await k.app()
    page = await open_page(browser, k.url, "eve")
    ctime, sig = sign(key, app_id, "r", "eve")
    await page.js("o => kt.create(o)", app_id)

    async def attempt(body: str, arg=None) -> dict:
        return await page.js(f"async o => {{ try {{ {body}; return null; }} catch (e) {{ return kt.err(e); }} }}", arg)

    bad = await attempt("await kt.client.join('r', {userId: 'eve', ctime: o, signature: 'ab'.repeat(32), role: 0})",
                        ctime)
    assert bad == {"code": 90100031, "msg": "signature invalid", "rtc": True}
    assert await page.js("() => kt.client.getConnectionState()") == "DISCONNECTED"
    bad = await attempt("await kt.client.join('r', {userId: 'eve', ctime: o.c, signature: o.s, role: '0'})",
                        {"c": ctime, "s": sig})
    assert bad == {"code": 90000005, "msg": "invalid parameter", "rtc": True}
    bad = await attempt("HRTC.createStream({audio: 'yes'})")
    assert bad["code"] == 90000005
    assert await page.js("() => HRTC.checkSystemRequirements(false)") is True

    await page.js("o => kt.join(o)", {"appId": app_id, "room": "r", "user": "eve", "ctime": ctime, "signature": sig,
                                      "role": 2})
    again = await attempt("await kt.client.join('r', {userId: 'eve', ctime: o.c, signature: o.s, role: 2})",
                          {"c": ctime, "s": sig})
    assert again == {"code": 90100204, "msg": "joined already", "rtc": True}
    player = await attempt("""const s = HRTC.createStream({audio: true, video: true});
                              await s.initialize(); await kt.client.publish(s)""")
    assert player == {"code": 90100022, "msg": "the user role have no permission to operate", "rtc": True}
    # A server error passes through with its own code: a switch to the role one already has.
    c2, s2 = sign(key, app_id, "r", "eve")
    same = await attempt("await kt.client.switchRole(2, {ctime: o.c, signature: o.s})", {"c": c2, "s": s2})
    assert same["code"] == 90100229 and same["rtc"] is True


async def test_local_stream_and_client_api_in_the_browser(kindling, browser):
    k = kindling
    app_id, key = await k.app()
    page = await open_page(browser, k.url, "local")
    out = await page.js("""async () => {
        const out = {};
        out.version = HRTC.VERSION;
        out.kinds = [...new Set((await HRTC.getDevices()).map(d => d.kind))].sort();
        const cams = await HRTC.getCameras();
        out.cameras = cams.length;
        HRTC.setLogLevel('warn');
        const s = HRTC.createStream({audio: true, video: true, userId: 'me', mirror: true});
        out.ids = [s.getType(), s.getUserId()];
        s.setVideoProfile('360p_1');
        s.setAudioProfile('high');
        const r = await s.initialize();
        out.init = [r.getCode(), r.getMediaCaptureResult().map(x => x.type).sort(),
                    !!r.getMediaCaptureResultByType('video').track];
        const states = [];
        s.on('player-state-change', e => states.push(e.type + ':' + e.state));
        await s.play('local', {muted: true, objectFit: 'contain'});
        out.elements = document.querySelectorAll('#local video, #local audio').length;
        const low = await s.addResolution('180p_1');
        out.low = [low.width, low.height, low.hasTrack];
        try { await s.addResolution('90p_1'); out.third = 'added'; } catch (e) { out.third = e.getCode(); }
        await new Promise(r => setTimeout(r, 300));
        out.widths = [s.getVideoTrack().getSettings().width, s.getVideoTrack(low.resolutionId).getSettings().width];
        await s.removeResolution(low.resolutionId);
        out.info = s.getStreamInfo();
        s.stop();
        await s.resume();
        s.setAudioVolume(50);
        await s.setAudioOutput('default');
        await s.switchDevice('video', cams[0].deviceId);
        out.switched = s.getVideoTrack().readyState;
        await s.removeTrack(s.getAudioTrack());
        out.audioRemoved = !s.hasAudio();
        await s.addAudioTrackCapture();
        out.audioBack = s.hasAudio();
        out.states = states;
        s.close();
        out.closed = [s.hasAudio(), s.hasVideo(), document.querySelectorAll('#local video').length];

        const c = HRTC.createClient({appId: 'x', domain: '127.0.0.1:9'});  // nothing listens there
        c.setTurnServer({turnServers: ['turn.example.com'], udpPort: 3478, userName: 'u', credential: 'p'});
        out.ice = c._iceServers;
        try { c.setNetworkBandwidth({maxBandwidth: 100}); } catch (e) { out.bandwidth = e.getCode(); }
        out.topN = c.enableTopThreeAudioMode(false);
        out.state = c.getConnectionState();
        return out;
    }""")
    assert out["version"].startswith("2.")
    assert out["kinds"] == ["audioinput", "audiooutput", "videoinput"] and out["cameras"] >= 1
    assert out["ids"] == ["local", "me"]
    assert out["init"] == [0, ["audio", "video"], True]
    assert out["elements"] == 2
    assert out["low"] == [320, 180, True]
    assert out["third"] == 90100001  # at most two resolutions per local stream
    assert out["widths"] == [640, 320]
    assert [(p["width"], p["height"], p["maxBitrate"]) for p in out["info"]["videoProfiles"]] == [(640, 360, 800000)]
    assert out["info"]["audioProfile"] == {"sampleRate": 48000, "channelCount": 1, "bitrate": 128000}
    assert out["switched"] == "live" and out["audioRemoved"] and out["audioBack"]
    assert "video:PLAYING" in out["states"] and "video:STOPPED" in out["states"]
    assert out["closed"] == [False, False, 0]
    assert out["ice"] == [{"urls": ["turn:turn.example.com:3478?transport=udp"], "username": "u", "credential": "p"}]
    assert out["bandwidth"] == 90000005 and out["topN"] is True and out["state"] == "DISCONNECTED"

    # setProxyServer: the signalling goes to the proxy, not to the (dead) domain.
    ctime, sig = sign(key, app_id, "r", "prox")
    state = await page.js("""async o => {
        const c = HRTC.createClient({appId: o.appId, domain: '127.0.0.1:9'});
        c.setProxyServer(location.origin);
        await c.join('r', {userId: 'prox', ctime: o.ctime, signature: o.sig, role: 2});
        const state = c.getConnectionState();
        await c.leave();
        return [state, c.getConnectionState()];
    }""", {"appId": app_id, "ctime": ctime, "sig": sig})
    assert state == ["CONNECTED", "DISCONNECTED"]


# ----------------------------------------------------------------------------- routes and the demo page


async def test_sdk_and_demo_routes_without_demo_signatures(kindling):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{kindling.url}/sdk/hrtc.js") as r:
            body = await r.text()
            assert r.status == 200 and r.content_type == "application/javascript"
            assert "createClient" in body and "root.HRTC = HRTC" in body
        async with http.get(f"{kindling.url}/sdk/hrtc.mjs") as r:
            assert r.status == 200 and r.content_type == "application/javascript"
            assert (await r.text()).rstrip().endswith("export { HRTC };")
        async with http.get(f"{kindling.url}/demo") as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert '<script src="/sdk/hrtc.js"></script>' in await r.text()
        async with http.get(f"{kindling.url}/demo/demo.js") as r:
            assert r.status == 200 and r.content_type == "application/javascript"
        async with http.get(f"{kindling.url}/demo/signature?appId=x&roomId=r&userId=u") as r:
            assert r.status == 404


async def test_demo_page_joins_publishes_and_shows_a_participant(demo_signatures, media, browser):
    k = media
    app_id, key = await k.app()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{k.url}/demo/signature", params={"appId": app_id, "roomId": "r", "userId": "u1"}) as r:
            assert r.status == 200
            got = await r.json()
        assert got["signature"] == make_signature(key, app_id, "r", "u1", got["ctime"])
        async with http.get(f"{k.url}/demo/signature", params={"appId": "nope", "roomId": "r", "userId": "u1"}) as r:
            assert r.status == 404
        async with http.get(f"{k.url}/demo/signature", params={"appId": app_id, "roomId": "a b", "userId": "u"}) as r:
            assert r.status == 400

    context = await browser.new_context()
    demo = await context.new_page()
    console: list[str] = []
    demo.on("console", lambda m: console.append(m.text))
    await demo.goto(f"{k.url}/demo?appId={app_id}&roomId=r&userId=host&dual=1&autojoin=1")

    viewer = await open_page(browser, k.url, "viewer")
    await join_page(viewer, k, app_id, key, "r", "viewer", auto_subscribe=True)
    await viewer.js("() => kt.publish({profile: '180p_1'})")
    added = await viewer.event("stream-added")
    assert added["userId"] == "host" and len(added["info"]["videoProfiles"]) == 2
    await viewer.wait("() => { const v = kt.video('host-main'); return v && v.w > 0; }")
    # The demo shows the viewer's camera in a tile of its own.
    try:
        await demo.wait_for_function(
            "() => { const v = document.querySelector('#remote-viewer-main video'); return v && v.videoWidth > 0; }",
            timeout=15000, polling=100)
    except Exception as exc:
        log = await demo.evaluate("() => document.getElementById('log').innerText")
        raise AssertionError(f"{exc}\ndemo log:\n{log}\nconsole: {console[-20:]}") from None
    assert await demo.evaluate("() => document.getElementById('state').textContent") == "CONNECTED"
    await context.close()
