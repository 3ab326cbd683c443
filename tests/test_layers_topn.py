"""Layers per subscriber, in-place switching, downlink adaptation, top-N audio,
presentation and stream-state events, with real aiortc peers and a real worker
(issue 5)."""

import asyncio
import time

import pytest

from kindling_sdk import LocalStream, RtcError
from tests.helpers import joined
from tests.media_fixtures import PatternTrack, PausableTrack, ToneTrack, camera, frames, frames_of_size, rms


def three_layers() -> LocalStream:
    stream = LocalStream(audio=None)
    stream.add_resolution("720p", PatternTrack(640, 360), 640, 360, 30, 900)
    stream.add_resolution("360p", PatternTrack(320, 180), 320, 180, 30, 400)
    stream.add_resolution("180p", PatternTrack(160, 96), 160, 96, 30, 150)
    return stream


async def publisher_and_viewer(k, stream, viewer="bob", role=2, **kw):
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(stream)
    bob, rec = await joined(k, app_id, key, "r", viewer, role=role, **kw)
    remote = (await rec.wait("stream-added"))["stream"]
    return app_id, key, alice, bob, rec, remote


async def test_R_STR_07_R_SUB_03_three_subscribers_get_the_layers_they_ask_for(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(three_layers())
    checks = []
    for user, res, width in (("v1", "720p", 640), ("v2", "360p", 320), ("v3", "180p", 160)):
        c, rec = await joined(k, app_id, key, "r", user, role=2)
        remote = (await rec.wait("stream-added"))["stream"]
        await c.subscribe(remote, video=True, audio=False, resolution_ids=[res])
        checks.append(frames_of_size(remote.video_tracks[res], width, 5))
    results = await asyncio.gather(*checks)
    assert [r[-1].width for r in results] == [640, 320, 160]


async def test_R_SUB_04_mid_call_switch_keeps_decoding_without_a_stall(media):
    k = media
    _, _, alice, bob, rec, remote = await publisher_and_viewer(k, three_layers())
    await bob.batch_subscribe([{"userId": "alice", "resolutionIds": ["180p"]}])
    track = remote.video_tracks["180p"]
    await frames_of_size(track, 160, 5)
    switched_at = time.monotonic()
    await bob.batch_subscribe([{"userId": "alice", "resolutionIds": ["720p"]}])
    # Same slot, same track: the switch happens in place on a keyframe.
    assert remote.video_tracks["720p"] is track
    gaps, widths, last = [], [], time.monotonic()
    while time.monotonic() - switched_at < 4:
        f = await asyncio.wait_for(track.recv(), 5)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        widths.append(f.width)
    assert widths[-1] == 640
    assert 640 in widths and set(widths) <= {160, 640}
    assert max(gaps) < 1.0, f"stall of {max(gaps):.2f}s during the switch"


async def test_R_SUB_05_07_batch_subscribe_replaces_video_and_keeps_audio(media):
    k = media
    app_id, key = await k.app()
    for user in ("a", "b", "c"):
        c, _ = await joined(k, app_id, key, "r", user)
        await c.publish(camera(high=None))
    viewer, rec = await joined(k, app_id, key, "r", "viewer", role=2)
    for _ in range(30):
        if len(rec.of("stream-added")) == 3:
            break
        await asyncio.sleep(0.1)
    streams = {d["stream"].user_id: d["stream"] for d in rec.of("stream-added")}
    await viewer.subscribe(streams["a"], audio=True, video=True)
    await viewer.subscribe(streams["b"], audio=False, video=True)
    await viewer.batch_subscribe([{"userId": "b"}, {"userId": "c"}])
    member = k.services.rooms.rooms[(app_id, "r")].members["viewer"]
    assert member.subscriptions[("a", "main")] == (True, ())  # A: audio kept, video gone
    assert member.subscriptions[("b", "main")][1] == ("low",)
    assert member.subscriptions[("c", "main")][1] == ("low",)
    assert len(rec.of("stream-subscribed")) >= 4
    await frames_of_size(streams["c"].video_tracks["low"], 320, 3)


async def test_R_SUB_06_throttled_downlink_steps_down_and_recovers(media):
    k = media
    app_id, key, alice, bob, rec, remote = await publisher_and_viewer(k, three_layers())
    await bob.batch_subscribe([{"userId": "alice", "resolutionIds": ["720p"], "minResolution": "LD"}])
    track = remote.video_tracks["720p"]
    await frames_of_size(track, 640, 5)
    room = k.services.rooms.rooms[(app_id, "r")]
    worker = k.services.workers.workers[room.worker_id]
    session = room.members["bob"].session_id
    await worker.call("debug-drop", {"roomUid": room.uid, "sessionId": session, "ratio": 0.25})
    await frames_of_size(track, 160, 3, timeout=30)  # stepped down layer by layer to the lowest
    await worker.call("debug-drop", {"roomUid": room.uid, "sessionId": session, "ratio": 0.0})
    await frames_of_size(track, 640, 3, timeout=40)  # and restored once the loss is gone


async def test_R_CAP_05_network_bandwidth_cap_limits_layers(media):
    k = media
    app_id, key, alice, bob, rec, remote = await publisher_and_viewer(k, three_layers())
    await bob.batch_subscribe([{"userId": "alice", "resolutionIds": ["720p"]}])
    track = remote.video_tracks["720p"]
    await frames_of_size(track, 640, 3)
    await bob.set_network_bandwidth(3072)  # kbit/s: above 900, so nothing changes
    await frames_of_size(track, 640, 3)
    with pytest.raises(RtcError) as exc:
        await bob.set_network_bandwidth(100)
    assert exc.value.code == 90100201


async def test_R_AUD_01_02_03_top_n_listener_hears_the_three_loudest(media):
    k = media
    app_id, key = await k.app()
    amplitudes = {"p1": 0.02, "p2": 0.5, "p3": 0.1, "p4": 0.8, "p5": 0.3}
    tones = {}
    for user, amp in amplitudes.items():
        c, _ = await joined(k, app_id, key, "r", user)
        tones[user] = ToneTrack(amp)
        await c.publish(LocalStream(audio=tones[user]))
    listener, rec = await joined(k, app_id, key, "r", "listener", role=2, top_n=True)
    got = await rec.wait("volume-indicator", lambda d: len(d) >= 3, timeout=10)
    assert {"user_id", "volume"} <= set(got[0])

    async def heard() -> list[float]:
        levels = []
        for track in listener.top_n_audio_tracks:
            await frames(track, 10)  # drain what was queued before
            levels.append(round(rms(await frames(track, 25)), 2))
        return sorted(levels, reverse=True)

    def matches(expected: list[float], levels: list[float]) -> bool:
        # Opus and resampling scale every tone alike: compare loudness ratios.
        return levels[0] > 0.1 and all(
            abs(e / expected[0] - h / levels[0]) < 0.08 for e, h in zip(expected, levels, strict=True))

    async def settle(expected: list[float]) -> list[float]:
        deadline = time.monotonic() + 15
        levels: list[float] = []
        while time.monotonic() < deadline:
            levels = await heard()
            if matches(expected, levels):
                return levels
        return levels

    levels = await settle([0.8, 0.5, 0.3])
    assert matches([0.8, 0.5, 0.3], levels), levels
    tones["p1"].amplitude = 0.95  # the quiet speaker gets loud
    levels = await settle([0.95, 0.8, 0.5])
    assert matches([0.95, 0.8, 0.5], levels), levels
    top = await rec.wait("volume-indicator", lambda d: d and d[0]["user_id"] == "p1", timeout=10)
    assert top[0]["volume"] > top[-1]["volume"]


async def test_R_AUD_04_top_n_listener_never_hears_itself_and_cannot_pick_audio(media):
    k = media
    app_id, key = await k.app()
    loud, rec_l = await joined(k, app_id, key, "r", "loud", top_n=True)
    await loud.publish(LocalStream(audio=ToneTrack(0.9)))
    other, rec_o = await joined(k, app_id, key, "r", "other")
    await other.publish(LocalStream(audio=ToneTrack(0.2)))
    await asyncio.sleep(2)
    room = k.services.rooms.rooms[(app_id, "r")]
    worker = k.services.workers.workers[room.worker_id]
    assert worker.alive
    remote = (await rec_l.wait("stream-added"))["stream"]
    with pytest.raises(RtcError) as exc:
        await loud.subscribe(remote, audio=True, video=False)
    assert exc.value.code == 90100247
    levels = []
    for t in loud.top_n_audio_tracks:
        try:
            levels.append(round(rms(await frames(t, 25, timeout=3)), 2))
        except (TimeoutError, AssertionError):
            levels.append(0.0)  # an idle slot: nobody else is speaking
    # Only "other" (0.2 amplitude) is heard, never its own 0.9 tone.
    assert sorted(levels)[-1] > 0.02 and max(levels) < 0.25, levels
    assert sum(1 for v in levels if v > 0) == 1, levels


async def test_R_PRES_01_02_03_R_CAP_03_second_presentation_is_refused(media):
    k = media
    app_id, key = await k.app()
    a, _ = await joined(k, app_id, key, "r", "alice")
    b, rec_b = await joined(k, app_id, key, "r", "bob")
    screen = LocalStream(type="auxiliary")
    screen.add_resolution("720p", PatternTrack(640, 360), 1280, 720, 15, 1200)
    await a.publish(screen)
    shared = (await rec_b.wait("stream-added"))["stream"]
    assert shared.get_type() == "auxiliary"
    second = LocalStream(type="auxiliary")
    second.add_resolution("720p", PatternTrack(640, 360), 1280, 720, 15, 1200)
    with pytest.raises(RtcError) as exc:
        await b.publish(second)
    assert (exc.value.code, exc.value.server_code) == (90100250, "RTC.34000007")
    await b.publish(camera(high=None))  # a camera stream is unaffected
    await a.unpublish(screen)  # R-PRES-02: the slot is free again
    await b.publish(second)


async def test_R_DET_01_stream_interrupted_and_recovered(media):
    k = media
    track = PausableTrack(320, 180)
    stream = LocalStream()
    stream.add_resolution("low", track, 320, 180, 30, 200)
    _, _, alice, bob, rec, remote = await publisher_and_viewer(k, stream)
    events = []
    bob.on("stream-interrupted", lambda d: events.append(("interrupted", d)))
    bob.on("stream-recovered", lambda d: events.append(("recovered", d)))
    await bob.subscribe(remote, video=True, audio=False)
    bob.enable_stream_state_detection(True, 1)
    await frames_of_size(remote.video_track, 320, 3)
    track.running.clear()
    for _ in range(60):
        if events:
            break
        await asyncio.sleep(0.1)
    assert events == [("interrupted", [{"userId": "alice", "isScreen": False}])]
    track.running.set()
    for _ in range(60):
        if len(events) == 2:
            break
        await asyncio.sleep(0.1)
    assert events[1] == ("recovered", [{"userId": "alice", "isScreen": False}])


async def test_R_DET_02_network_quality_and_rtc_stats_events(media):
    k = media
    _, _, alice, bob, rec, remote = await publisher_and_viewer(k, camera(high=None), role=0)
    got = {"nq": [], "stats": []}
    bob.on("network-quality", lambda d: got["nq"].append(d))
    bob.on("rtc-stats", lambda d: got["stats"].append(d))
    await bob.subscribe(remote)
    bob.enable_rtc_stats(True, 500)
    await frames(remote.video_track, 20)
    await asyncio.sleep(2.5)
    assert got["nq"] and set(got["nq"][-1]) == {"uplinkNetworkQuality", "downlinkNetworkQuality"}
    assert 0 <= got["nq"][-1]["downlinkNetworkQuality"] <= 6
    assert got["stats"]
    row = got["stats"][-1][0]
    assert {"userName", "isRemote", "streamType", "mediaType", "bitrate", "frameRate", "rtt", "jitter",
            "pktLossRate"} <= set(row)


async def test_unwatched_layers_are_paused_at_the_publisher(media):
    k = media
    stream = three_layers()
    app_id, key, alice, bob, rec, remote = await publisher_and_viewer(k, stream)
    for _ in range(50):  # nobody watches yet: every layer is paused
        if not any(g.active for g in stream.gates.values()):
            break
        await asyncio.sleep(0.1)
    assert {rid: g.active for rid, g in stream.gates.items()} == {"720p": False, "360p": False, "180p": False}
    await bob.batch_subscribe([{"userId": "alice", "resolutionIds": ["360p"]}])
    await frames_of_size(remote.video_tracks["360p"], 320, 5)
    assert {rid: g.active for rid, g in stream.gates.items()} == {"720p": False, "360p": True, "180p": False}
    await bob.batch_subscribe([{"userId": "alice", "resolutionIds": ["720p"]}])
    await frames_of_size(remote.video_tracks["720p"], 640, 5)
    for _ in range(50):
        if not stream.gates["360p"].active:
            break
        await asyncio.sleep(0.1)
    assert {rid: g.active for rid, g in stream.gates.items()} == {"720p": True, "360p": False, "180p": False}
