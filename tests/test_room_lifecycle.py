"""Room lifecycle, keepalive and reconnection, kick and dismiss through the
official SDK, persistence and restart (room-rules.md R-ROOM, R-CONN, R-KICK, R-PERS).

The server under test uses a short keepalive (heartbeat 0.5 s, disconnect after
2 s of silence, removal 3 s after disconnection) so no test sleeps for long."""

import asyncio

import pytest
from huaweicloudsdkcloudrtc.v2 import RemoveRoomRequest, RemoveUsersReq, RemoveUsersRequest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from sqlalchemy import select

from control.store.models import Participant, Room
from kindling_sdk import RtcError
from tests.conftest import start_kindling
from tests.helpers import RawWS, Recorder, joined


async def rows(k, model, *where):
    await k.services.rooms.persister.flush()
    async with k.services.sessions() as s:
        return list((await s.scalars(select(model).where(*where))).all())


# ----------------------------------------------------------------------------- R-ROOM


async def test_R_ROOM_01_room_created_on_first_join(kindling):
    app_id, key = await kindling.app()
    await joined(kindling, app_id, key, "fresh", "alice")
    [room] = await rows(kindling, Room, Room.app_id == app_id)
    assert (room.room_id, room.state, room.owner_user_id) == ("fresh", "RUNNING", "alice")
    assert room.start_time is not None and room.end_time is None


async def test_R_ROOM_02_owner_leaving_keeps_the_room(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice")
    await joined(kindling, app_id, key, "r", "bob")
    await a.leave()
    [room] = await rows(kindling, Room, Room.app_id == app_id)
    assert room.state == "RUNNING" and room.owner_user_id == "alice"


async def test_R_ROOM_03_R_PERS_02_room_closed_when_the_last_user_leaves(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice")
    b, _ = await joined(kindling, app_id, key, "r", "bob")
    await a.leave()
    await b.leave()
    [room] = await rows(kindling, Room, Room.app_id == app_id)
    assert room.state == "CLOSED" and room.end_time is not None and room.end_time >= room.start_time
    assert (app_id, "r") not in kindling.services.rooms.rooms


async def test_R_ROOM_04_keepalive_removal_with_reason_7(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    b, _ = await joined(kindling, app_id, key, "r", "bob", reconnect=False)
    await rec_a.wait("peer-join")
    await b.drop_network()
    await asyncio.sleep(1.5)  # within the keepalive window: still a member
    assert rec_a.of("peer-leave") == []
    assert "bob" in kindling.services.rooms.rooms[(app_id, "r")].members
    left = await rec_a.wait("peer-leave", timeout=5)
    assert left["userId"] == "bob"
    assert left["reason"] == {"code": 7, "msg": "Reconnection times out."}
    [p] = await rows(kindling, Participant, Participant.user_id == "bob")
    assert (p.state, p.leave_reason) == ("OFFLINE", 7)


async def test_R_ROOM_05_room_of_disconnected_users_closes_after_keepalive(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice", reconnect=False)
    b, _ = await joined(kindling, app_id, key, "r", "bob", reconnect=False)
    await a.drop_network()
    await b.drop_network()
    for _ in range(60):
        if (app_id, "r") not in kindling.services.rooms.rooms:
            break
        await asyncio.sleep(0.1)
    [room] = await rows(kindling, Room, Room.app_id == app_id)
    assert room.state == "CLOSED"


async def test_R_ROOM_06_a_closed_room_id_makes_a_new_instance(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice")
    await a.leave()
    await joined(kindling, app_id, key, "r", "bob")
    rooms = await rows(kindling, Room, Room.app_id == app_id)
    assert sorted((r.state, r.owner_user_id) for r in rooms) == [("CLOSED", "alice"), ("RUNNING", "bob")]


async def test_R_ROOM_07_single_user_room_stays_open_with_heartbeats(kindling):
    app_id, key = await kindling.app()
    a, rec = await joined(kindling, app_id, key, "r", "alice")
    await asyncio.sleep(kindling.settings.disconnect_after_s + kindling.settings.keepalive_s + 0.5)
    assert a.get_connection_state() == "CONNECTED"
    assert "alice" in kindling.services.rooms.rooms[(app_id, "r")].members
    assert [e for e in rec.events if e[0] != "connection-state-changed"] == []


# ----------------------------------------------------------------------------- R-CONN


async def test_R_CONN_01_silent_socket_is_dropped(kindling):
    raw = await RawWS.open(kindling)
    try:
        msg = await raw.ws.receive(timeout=kindling.settings.disconnect_after_s + 2)
        assert msg.type.name in ("CLOSE", "CLOSED", "CLOSING")
    finally:
        await raw.close()


async def test_R_CONN_02_configuration_is_delivered_on_connect(kindling):
    raw = await RawWS.open(kindling)
    try:
        assert raw.config["heartbeatInterval"] == kindling.settings.heartbeat_interval_s
        assert raw.config["keepalive"] == kindling.settings.keepalive_s
        assert raw.config["maxMessageBytes"] == kindling.settings.ws_max_message_bytes
    finally:
        await raw.close()


async def test_R_CONN_03_reconnect_resumes_without_peer_events(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    b, rec_b = await joined(kindling, app_id, key, "r", "bob")
    await rec_a.wait("peer-join")
    session = b.session_id
    await b.drop_network()
    await rec_b.wait("connection-state-changed", lambda d: d["curState"] == "RECONNECTING")
    await rec_b.wait("connection-state-changed",
                     lambda d: d["prevState"] == "RECONNECTING" and d["curState"] == "CONNECTED")
    assert b.session_id == session
    await asyncio.sleep(0.3)
    assert rec_a.of("peer-leave") == [] and len(rec_a.of("peer-join")) == 1
    # The resumed session works as before.
    assert await b.change_user_name("Bob again")
    await rec_a.wait("remote-user-name-changed")


async def test_R_CONN_03_events_missed_while_away_are_delivered(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice", reconnect=False)
    await a.drop_network()
    for _ in range(50):
        if kindling.services.rooms.rooms[(app_id, "r")].members["alice"].conn is None:
            break
        await asyncio.sleep(0.05)
    await joined(kindling, app_id, key, "r", "carol")
    raw = await RawWS.open(kindling)
    try:
        resumed = await raw.call(1, "resume", {"resumeToken": a._session["resumeToken"]})
        assert resumed["ok"], resumed
        msg = await raw.next_message()
        assert (msg["event"], msg["data"]["userId"]) == ("peer-join", "carol")
    finally:
        await raw.close()


async def test_R_CONN_04_resume_after_the_window_fails(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice", reconnect=False)
    await joined(kindling, app_id, key, "r", "bob")
    token = a._session["resumeToken"]
    await a.drop_network()
    await asyncio.sleep(kindling.settings.keepalive_s + 1)
    raw = await RawWS.open(kindling)
    try:
        r = await raw.call(1, "resume", {"resumeToken": token})
        assert r["ok"] is False and r["error"]["code"] == 90100013
        r = await raw.call(2, "resume", {"resumeToken": "made-up"})
        assert r["ok"] is False and r["error"]["code"] == 90100227
    finally:
        await raw.close()


async def test_R_CONN_04_client_gives_up_with_90100013(kindling):
    app_id, key = await kindling.app()
    a, rec = await joined(kindling, app_id, key, "r", "alice")
    a._session["keepalive"] = 1.0
    await kindling.runner.cleanup()  # the server goes away for longer than the window
    err = await rec.wait("Error", timeout=10)
    assert err["errorCode"] == "90100013"
    assert a.get_connection_state() == "DISCONNECTED"
    kindling.services, kindling.runner = await start_kindling(kindling.settings, kindling.database_url)


async def test_R_CONN_05_request_flood_is_throttled(kindling):
    kindling.settings.ws_rate_per_s = 5
    kindling.settings.ws_burst = 10
    raw = await RawWS.open(kindling)
    try:
        for i in range(30):
            await raw.send({"id": i, "type": "heartbeat", "data": {}})
        replies = [await raw.response() for _ in range(30)]
    finally:
        await raw.close()
    assert [r["id"] for r in replies] == list(range(30))
    assert all(r["ok"] for r in replies[:10])
    throttled = [r for r in replies if not r["ok"]]
    assert len(throttled) >= 15
    assert {r["error"]["code"] for r in throttled} == {90100108}
    # The server is still up for everyone else.
    app_id, key = await kindling.app()
    await joined(kindling, app_id, key, "r", "alice")


async def test_R_CONN_06_every_request_is_answered_once(kindling):
    raw = await RawWS.open(kindling)
    try:
        await raw.send({"id": "a", "type": "heartbeat"})
        await raw.send({"id": "b", "type": "leave"})
        await raw.send({"id": "c", "type": "nope"})
        ids = [(await raw.response())["id"] for _ in range(3)]
        assert ids == ["a", "b", "c"]
        with pytest.raises(TimeoutError):
            await raw.response(timeout=0.5)
    finally:
        await raw.close()


# ----------------------------------------------------------------------------- R-KICK


async def test_R_KICK_01_02_03_remove_users_through_the_official_sdk(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    b, rec_b = await joined(kindling, app_id, key, "r", "bob", user_name="Bob")
    token = b._session["resumeToken"]
    await rec_a.wait("peer-join")
    req = RemoveUsersRequest(app_id=app_id, room_id="r", body=RemoveUsersReq(user_ids=["bob", "nobody"]))
    resp = await asyncio.to_thread(kindling.rtc().remove_users, req)
    assert resp.x_request_id
    assert await rec_b.wait("client-banned") == {"userId": "bob", "reason": "The user is removed."}
    await rec_b.wait("connection-state-changed", lambda d: d["curState"] == "DISCONNECTED")
    left = await rec_a.wait("peer-leave")
    assert left == {"userId": "bob", "userName": "Bob", "reason": {"code": 9, "msg": "The user is removed."}}
    raw = await RawWS.open(kindling)
    try:
        r = await raw.call(1, "resume", {"resumeToken": token})
        assert r["error"]["code"] == 90100225
    finally:
        await raw.close()
    await joined(kindling, app_id, key, "r", "bob")  # OQ-22: a kick is not a ban


async def test_R_KICK_01_unknown_room_is_a_no_op(kindling):
    app_id, _ = await kindling.app()
    req = RemoveUsersRequest(app_id=app_id, room_id="nowhere", body=RemoveUsersReq(user_ids=["x"]))
    await asyncio.to_thread(kindling.rtc().remove_users, req)


async def test_R_KICK_04_dismiss_through_the_official_sdk(kindling):
    app_id, key = await kindling.app()
    clients = [await joined(kindling, app_id, key, "r", u) for u in ("alice", "bob", "carol")]
    token = clients[0][0]._session["resumeToken"]
    await asyncio.to_thread(kindling.rtc().remove_room, RemoveRoomRequest(app_id=app_id, room_id="r"))
    for client, rec in clients:
        assert await rec.wait("client-banned") == {"userId": client.user_id, "reason": "The room is dismissed."}
        codes = {d["userId"]: d["reason"]["code"] for d in rec.of("peer-leave")}
        assert codes == {u: 10 for u in ("alice", "bob", "carol") if u != client.user_id}
        await rec.wait("connection-state-changed", lambda d: d["curState"] == "DISCONNECTED")
    [room] = await rows(kindling, Room, Room.app_id == app_id)
    assert (room.state, room.close_reason) == ("CLOSED", "DISMISSED")
    reasons = {p.user_id: p.leave_reason for p in await rows(kindling, Participant, Participant.app_id == app_id)}
    assert reasons == {"alice": 10, "bob": 10, "carol": 10}
    raw = await RawWS.open(kindling)
    try:
        assert (await raw.call(1, "resume", {"resumeToken": token}))["error"]["code"] == 90100224
    finally:
        await raw.close()
    with pytest.raises(ClientRequestException) as exc:
        await asyncio.to_thread(kindling.rtc().remove_room, RemoveRoomRequest(app_id=app_id, room_id="r"))
    assert (exc.value.status_code, exc.value.error_code) == (404, "RTC.00001003")


async def test_R_KICK_remove_users_bad_bodies(kindling):
    import aiohttp

    from tests.signing import signed_request

    app_id, _ = await kindling.app()
    path = f"/v2/apps/{app_id}/rooms/r/batch-remove-users"
    async with aiohttp.ClientSession() as http:
        for body, code in [(b"{", "RTC.00001002"), ({}, "RTC.00001005"), ({"user_ids": "u1"}, "RTC.00001003"),
                           ({"user_ids": []}, "RTC.00001003"), ({"user_ids": [1]}, "RTC.00001003"),
                           ({"user_ids": ["u"], "x": 1}, "RTC.00001003")]:
            status, resp, _ = await signed_request(http, kindling, "POST", path, body=body)
            assert (status, resp["error_code"]) == (400, code), body
        status, resp, _ = await signed_request(http, kindling, "POST", f"/v2/apps/{app_id}/rooms/a.b/dismiss")
        assert status == 400
        status, resp, _ = await signed_request(http, kindling, "POST", "/v2/apps/nope/rooms/r/dismiss")
        assert (status, resp["error_code"]) == (404, "RTC.00001015")


# ----------------------------------------------------------------------------- R-PERS and restart


async def test_R_PERS_03_sessions_are_recorded(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice", user_name="Alice")
    await a.change_user_name("Alicia")
    [p] = await rows(kindling, Participant, Participant.user_id == "alice")
    assert (p.state, p.role, p.user_name, p.room_id, p.left_at) == ("ONLINE", 0, "Alicia", "r", None)
    await a.leave()
    [p] = await rows(kindling, Participant, Participant.user_id == "alice")
    assert (p.state, p.leave_reason) == ("OFFLINE", 0) and p.left_at >= p.joined_at


async def test_restart_keeps_the_room_and_reconnecting_clients_resume(kindling):
    app_id, key = await kindling.app()
    kindling.settings.keepalive_s = 6.0
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    b, rec_b = await joined(kindling, app_id, key, "r", "bob", reconnect=False)
    await rec_a.wait("peer-join")
    session_a = a.session_id

    await kindling.runner.cleanup()  # graceful stop: everything is flushed
    await asyncio.sleep(0.5)
    kindling.services, kindling.runner = await start_kindling(kindling.settings, kindling.database_url)

    room = kindling.services.rooms.rooms[(app_id, "r")]
    assert set(room.members) == {"alice", "bob"}
    await rec_a.wait("connection-state-changed",
                     lambda d: d["prevState"] == "RECONNECTING" and d["curState"] == "CONNECTED", timeout=10)
    assert a.session_id == session_a
    assert rec_a.of("peer-leave") == []
    # bob never came back: he expires as if the server had stayed up.
    left = await rec_a.wait("peer-leave", timeout=10)
    assert left["userId"] == "bob" and left["reason"]["code"] == 7
    assert await a.change_user_name("after restart")


async def test_restart_closes_rooms_whose_users_never_return(kindling):
    app_id, key = await kindling.app()
    kindling.settings.keepalive_s = 1.0
    a, _ = await joined(kindling, app_id, key, "r", "alice", reconnect=False)
    await kindling.runner.cleanup()
    await a.close()
    await asyncio.sleep(1.2)
    kindling.services, kindling.runner = await start_kindling(kindling.settings, kindling.database_url)
    for _ in range(40):
        if not kindling.services.rooms.rooms:
            break
        await asyncio.sleep(0.1)
    [room] = await rows(kindling, Room, Room.app_id == app_id)
    assert room.state == "CLOSED"
    [p] = await rows(kindling, Participant, Participant.user_id == "alice")
    assert p.leave_reason == 7


async def test_recorder_helper_sees_state_changes(kindling):
    app_id, _ = await kindling.app()
    c = kindling.client(app_id)
    rec = Recorder(c)
    with pytest.raises(RtcError):
        await c.join("r", user_id="u", ctime="1", signature="x", role=0)
    states = [d["curState"] for d in rec.of("connection-state-changed")]
    assert states == ["CONNECTING", "CONNECTED", "DISCONNECTED"]
