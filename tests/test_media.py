"""Publish and subscribe end to end through a real SFU worker process: aiortc
publishers and subscribers, the worker forwarding RTP without decoding, the
subscriber decoding what arrives (proof that the media is real)."""

import asyncio

import pytest

from kindling_sdk import RtcError
from tests.conftest import sign
from tests.helpers import joined
from tests.media_fixtures import camera, frames, frames_of_size


async def test_R_SUB_03_publish_subscribe_low_layer_and_audio(media):
    k = media
    app_id, key = await k.app()
    alice, rec_a = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera())
    bob, rec_b = await joined(k, app_id, key, "r", "bob")
    added = await rec_b.wait("stream-added")
    stream = added["stream"]
    assert stream.user_id == "alice" and stream.type == "main" and stream.has_audio
    assert sorted(v["resolutionId"] for v in stream.video) == ["high", "low"]
    await bob.subscribe(stream, audio=True, video=True, resolution_ids=["low"])
    assert set(stream.video_tracks) == {"low"} and stream.audio_track is not None
    got = await frames_of_size(stream.video_tracks["low"], 320, 10)
    assert got[-1].height == 180
    audio = await frames(stream.audio_track, 20)
    assert audio[0].sample_rate == 48000


async def test_R_SUB_02_no_options_gets_audio_and_the_highest_resolution(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera())
    bob, rec_b = await joined(k, app_id, key, "r", "bob")
    stream = (await rec_b.wait("stream-added"))["stream"]
    await bob.subscribe(stream)
    assert set(stream.video_tracks) == {"high"}
    await frames_of_size(stream.video_track, 640, 5)


async def test_R_STR_03_04_06_stream_added_and_removed_on_leave(media):
    k = media
    app_id, key = await k.app()
    bob, rec_b = await joined(k, app_id, key, "r", "bob")
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera(high=None))
    assert (await rec_b.wait("stream-added"))["stream"].user_id == "alice"
    await alice.leave()
    removed = await rec_b.wait("stream-removed")
    assert removed["stream"].user_id == "alice"
    left = await rec_b.wait("peer-leave")
    names = [n for n, _ in rec_b.events]
    assert names.index("stream-removed") < names.index("peer-leave")
    assert left["reason"]["code"] == 0


async def test_R_ROLE_01_02_players_cannot_publish(media):
    k = media
    app_id, key = await k.app()
    pat, _ = await joined(k, app_id, key, "r", "pat", role=2)
    with pytest.raises(RtcError) as exc:
        await pat.publish(camera())
    assert exc.value.code == 90100022


async def test_R_STR_02_R_SUB_01_publish_twice_and_bad_subscriptions(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera(high=None))
    with pytest.raises(RtcError) as exc:
        await alice.publish(camera(high=None))
    assert exc.value.code == 90100207
    bob, rec_b = await joined(k, app_id, key, "r", "bob")
    stream = (await rec_b.wait("stream-added"))["stream"]
    with pytest.raises(RtcError) as exc:
        await bob.subscribe(stream, resolution_ids=["nope"], video=True)
    assert exc.value.code == 90100213
    with pytest.raises(RtcError) as exc:
        await bob.subscribe(stream, audio=False, video=False)
    assert exc.value.code == 90100213


async def test_R_ROLE_03_players_receive_and_two_subscribers_share_one_source(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera(high=None))
    viewers = []
    for name in ("p1", "p2"):
        c, rec = await joined(k, app_id, key, "r", name, role=2)
        stream = (await rec.wait("stream-added"))["stream"]
        await c.subscribe(stream, video=True, audio=False, resolution_ids=["low"])
        viewers.append(stream)
    await asyncio.gather(*[frames_of_size(s.video_track, 320, 5) for s in viewers])


async def test_R_ROLE_05_switch_role_to_player_unpublishes(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    bob, rec_b = await joined(k, app_id, key, "r", "bob")
    await alice.publish(camera(high=None))
    await rec_b.wait("stream-added")
    ctime, sig = sign(key, app_id, "r", "alice")
    await alice.switch_role(2, signature=sig, ctime=ctime)
    assert (await rec_b.wait("stream-removed"))["stream"].user_id == "alice"


async def test_R_MUTE_01_02_mute_events(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    stream = camera(high=None)
    await alice.publish(stream)
    bob, _ = await joined(k, app_id, key, "r", "bob")
    got = []
    for name in ("mute-audio", "unmute-audio", "mute-video", "unmute-video"):
        bob.on(name, lambda d, name=name: got.append((name, d)))
    await alice.mute(stream, "audio", True)
    await alice.mute(stream, "audio", False)
    await alice.mute(stream, "video", True)
    await alice.mute(stream, "video", False)
    for _ in range(50):
        if len(got) == 4:
            break
        await asyncio.sleep(0.05)
    assert [n for n, _ in got] == ["mute-audio", "unmute-audio", "mute-video", "unmute-video"]
    assert got[0][1] == {"roomId": "r", "userId": "alice", "status": 2, "reason": 1}
    assert got[1][1] == {"roomId": "r", "userId": "alice", "status": 1, "reason": 2}



async def test_rooms_are_placed_on_the_least_loaded_worker_and_recorded(media):
    from sqlalchemy import select

    from control.store.models import Room as RoomRow
    from control.store.models import Worker as WorkerRow
    from tests.media_fixtures import start_worker

    k = media
    k.workers.append(start_worker(k.settings.port, "w2"))
    assert await k.services.workers.wait_for_workers(2, 20)
    app_id, key = await k.app()
    placed = []
    for room in ("r1", "r2"):
        c, _ = await joined(k, app_id, key, room, "alice" if room == "r1" else "bob")
        await c.publish(camera(high=None))
        placed.append(k.services.rooms.rooms[(app_id, room)].worker_id)
    assert sorted(placed) == ["w1", "w2"]
    await k.services.rooms.persister.flush()
    await asyncio.sleep(0.2)
    async with k.services.sessions() as s:
        rows = {r.room_id: r.worker_id for r in (await s.scalars(select(RoomRow))).all()}
        workers = {w.worker_id: w.state for w in (await s.scalars(select(WorkerRow))).all()}
    assert rows == {"r1": placed[0], "r2": placed[1]}
    assert workers == {"w1": "ALIVE", "w2": "ALIVE"}


async def test_worker_failure_moves_the_room_and_clients_republish(media):
    from tests.media_fixtures import start_worker

    k = media
    k.workers.append(start_worker(k.settings.port, "w2"))
    assert await k.services.workers.wait_for_workers(2, 20)
    app_id, key = await k.app()
    alice, rec_a = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera(high=None))
    bob, rec_b = await joined(k, app_id, key, "r", "bob")
    stream = (await rec_b.wait("stream-added"))["stream"]
    await bob.subscribe(stream, resolution_ids=["low"], video=True, audio=False)
    await frames_of_size(stream.video_track, 320, 3)
    room = k.services.rooms.rooms[(app_id, "r")]
    first = room.worker_id
    victim = next(p for p in k.workers if f"--worker-id {first}" in " ".join(p.args))
    victim.kill()
    await rec_b.wait("media-reset", timeout=10)
    assert (await rec_b.wait("stream-removed"))["stream"].user_id == "alice"
    # alice's SDK republishes by itself; bob sees the stream again and resubscribes.
    again = (await rec_b.wait("stream-added", lambda d: d["stream"] is not stream, timeout=15))["stream"]
    assert room.worker_id not in (None, first)
    await bob.subscribe(again, resolution_ids=["low"], video=True, audio=False)
    await frames_of_size(again.video_track, 320, 3)


async def test_R_STR_09_h264_when_the_deployment_forwards_h264(kindling):
    from tests.media_fixtures import start_worker, stop_workers

    k = kindling
    k.settings.worker_secret = "test-worker-secret"
    workers = [start_worker(k.settings.port, "h264", KINDLING_VIDEO_CODEC="h264")]
    try:
        assert await k.services.workers.wait_for_workers(1, 20)
        app_id, key = await k.app()
        alice = k.client(app_id, video_codec="h264")
        from tests.conftest import sign

        ctime, sig = sign(key, app_id, "r", "alice")
        await alice.join("r", user_id="alice", ctime=ctime, signature=sig, role=0)
        await alice.publish(camera(high=None, audio=False))
        bob, rec = await joined(k, app_id, key, "r", "bob", role=2)
        stream = (await rec.wait("stream-added"))["stream"]
        await bob.subscribe(stream, video=True, audio=False)
        got = await frames_of_size(stream.video_track, 320, 5)
        assert got[-1].height == 180
        # A VP8-only publisher is refused with the SDP code on this deployment.
        carol = k.client(app_id)
        ctime, sig = sign(key, app_id, "r", "carol")
        await carol.join("r", user_id="carol", ctime=ctime, signature=sig, role=0)
        with pytest.raises(RtcError) as exc:
            await carol.publish(camera(high=None, audio=False))
        assert exc.value.code == 90100023
    finally:
        await stop_workers(workers)


async def test_R_STR_05_republish_sends_stream_updated_and_keeps_subscriptions(media):
    from tests.media_fixtures import PatternTrack

    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    stream = camera(high=None)
    await alice.publish(stream)
    bob, rec = await joined(k, app_id, key, "r", "bob", role=2)
    remote = (await rec.wait("stream-added"))["stream"]
    await bob.subscribe(remote, video=True, audio=False, resolution_ids=["low"])
    track = remote.video_tracks["low"]
    await frames_of_size(track, 320, 3)
    stream.add_resolution("high", PatternTrack(640, 360), 640, 360, 30, 800)
    await alice.republish(stream)
    updated = (await rec.wait("stream-updated"))["stream"]
    assert sorted(v["resolutionId"] for v in updated.video) == ["high", "low"]
    assert updated.stream_id == remote.stream_id
    # The existing subscription carries on: frames keep arriving well after the switch
    # to the new publisher connection (the queue of old frames is long drained by then).
    import time as _time

    start = _time.monotonic()
    count = 0
    while _time.monotonic() - start < 2.5:
        frame = await asyncio.wait_for(track.recv(), 3)
        assert frame.width == 320
        count += 1
    assert count > 40


async def test_sdk_statistics(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera())
    bob, rec = await joined(k, app_id, key, "r", "bob")
    stream = (await rec.wait("stream-added"))["stream"]
    await bob.subscribe(stream, audio=True, video=True, resolution_ids=["low", "high"])
    await frames_of_size(stream.video_tracks["low"], 320, 10)
    await frames(stream.audio_track, 10)
    transport = await alice.get_transport_stats()
    assert transport["bytesSent"] > 1000 and set(transport) == {"bytesSent", "bytesReceived", "rtt"}
    local = await alice.get_local_video_stats()
    assert len(local["alice"]["mainStream"]) == 2 and all(r["packetsSent"] > 0 for r in local["alice"]["mainStream"])
    assert (await alice.get_local_audio_stats())["alice"]["packetsSent"] > 0
    video = await bob.get_remote_video_stats()
    assert sorted(r["resolutionId"] for r in video["alice"]["mainStream"]) == ["high", "low"]
    assert all(r["packetsReceived"] > 0 for r in video["alice"]["mainStream"])
    audio = await bob.get_remote_audio_stats()
    assert audio["alice"]["packetsReceived"] > 0


async def test_R_MUTE_03_late_joiners_learn_the_mute_state(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    stream = camera(high=None)
    await alice.publish(stream)
    await alice.mute(stream, "video", True)
    late, rec = await joined(k, app_id, key, "r", "late")
    added = (await rec.wait("stream-added"))["stream"]
    assert added.video_muted is True and added.audio_muted is False


async def test_R_STR_01_publish_needs_a_joined_session(kindling):
    from tests.helpers import RawWS

    raw = await RawWS.open(kindling)
    try:
        r = await raw.call(1, "publish", {"type": "main", "audio": True, "audioMid": "0", "video": [],
                                           "sdp": "v=0\r\n"})
        assert r["ok"] is False and r["error"]["code"] == 90100001
    finally:
        await raw.close()


async def test_metrics_show_workers_and_process_usage(media):
    import aiohttp

    k = media
    for _ in range(30):
        if k.services.workers.live()[0].load:
            break
        await asyncio.sleep(0.2)
    async with aiohttp.ClientSession() as http, http.get(f"{k.url}/metrics") as r:
        text = await r.text()
    assert "kindling_workers_alive 1.0" in text
    assert 'kindling_worker_cpu_seconds_total{worker="w1"}' in text
    assert "process_cpu_seconds_total" in text and "process_resident_memory_bytes" in text


async def test_nack_retransmissions_repair_a_lossy_downlink(media):
    k = media
    app_id, key = await k.app()
    alice, _ = await joined(k, app_id, key, "r", "alice")
    await alice.publish(camera(high=None, audio=False))
    bob, rec = await joined(k, app_id, key, "r", "bob", role=2)
    stream = (await rec.wait("stream-added"))["stream"]
    await bob.subscribe(stream, video=True, audio=False)
    await frames_of_size(stream.video_track, 320, 3)
    room = k.services.rooms.rooms[(app_id, "r")]
    worker = k.services.workers.workers[room.worker_id]
    await worker.call("debug-drop", {"roomUid": room.uid, "sessionId": room.members["bob"].session_id,
                                     "ratio": 0.2})
    before = (await bob.get_remote_stats("video"))[0]
    await frames(stream.video_track, 150)  # still decoding while 20 % of what the SFU sends is lost
    after = (await bob.get_remote_stats("video"))[0]
    received = after["packetsReceived"] - before["packetsReceived"]
    lost = after["packetsLost"] - before["packetsLost"]
    assert received > 100
    # Without retransmission about 20 % would be missing; the SFU's packet cache answers
    # the NACKs, so what stays lost is what was dropped again on the way back.
    assert lost / (received + lost) < 0.08, (lost, received)
