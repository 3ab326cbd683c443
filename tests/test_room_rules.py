"""Room rules that need no media (room-rules.md), each test named after the rule
it proves: identifiers, apps, signatures, roles, capacity, users, multi-room."""

import asyncio
import time

import pytest
from huaweicloudsdkcloudrtc.v2 import DeleteAppRequest, StartAppRequest, StopAppRequest

from control.auth.signature import check_signature, make_signature
from control.errors import LEAVE_REASONS, SignallingError
from kindling_sdk import RtcError
from tests.conftest import sign
from tests.helpers import join_error, joined

INVALID = 90100201


# ----------------------------------------------------------------------------- R-ID


@pytest.mark.parametrize("room", ["r" * 65, "a b", "a+b", "a.b", "", "ü", "a/b"])
async def test_R_ID_01_room_id_charset(kindling, room):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, room, "u1")
    err = await join_error(kindling, app_id, room, "u1", ctime=ctime, signature=sig)
    assert err.code == INVALID


async def test_R_ID_01_room_id_64_chars_and_allowed_symbols(kindling):
    app_id, key = await kindling.app()
    for room in ("R" * 64, "a_b-C9"):
        client, _ = await joined(kindling, app_id, key, room, "u1")
        await client.leave()


@pytest.mark.parametrize("user", ["u" * 65, "a b", "a+b", "a.b", "", "用户"])
async def test_R_ID_02_user_id_charset(kindling, user):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "room", user)
    err = await join_error(kindling, app_id, "room", user, ctime=ctime, signature=sig)
    assert err.code == INVALID


async def test_R_ID_03_same_room_id_in_two_apps_is_two_rooms(kindling):
    app1, key1 = await kindling.app()
    app2, key2 = await kindling.app()
    a, rec_a = await joined(kindling, app1, key1, "r1", "alice")
    b, rec_b = await joined(kindling, app2, key2, "r1", "bob")
    await asyncio.sleep(0.3)
    assert rec_a.of("peer-join") == [] and rec_b.of("peer-join") == []
    assert len(kindling.services.rooms.rooms) == 2


async def test_R_ID_04_rooms_are_isolated(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "room-a", "alice")
    b, _ = await joined(kindling, app_id, key, "room-b", "bob")
    await b.change_user_name("Bobby")
    await b.leave()
    await asyncio.sleep(0.3)
    assert rec_a.events == [("connection-state-changed", {"prevState": "DISCONNECTED", "curState": "CONNECTING"}),
                            ("connection-state-changed", {"prevState": "CONNECTING", "curState": "CONNECTED"})]


async def test_R_ID_05_user_name_length(kindling):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "r", "u1")
    err = await join_error(kindling, app_id, "r", "u1", ctime=ctime, signature=sig, user_name="n" * 257)
    assert err.code == INVALID
    client, _ = await joined(kindling, app_id, key, "r", "u1", user_name="名" * 256)
    with pytest.raises(RtcError) as exc:
        await client.change_user_name("n" * 257)
    assert exc.value.code == INVALID


async def test_R_ID_05_app_id_signature_and_ctime_shapes(kindling):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "r", "u1")
    for bad in [
        dict(app=("a" * 129), ctime=ctime, signature=sig),
        dict(app=app_id, ctime=ctime, signature=sig + "0" * 449),
        dict(app=app_id, ctime=int(ctime), signature=sig),
        dict(app=app_id, ctime="12ab", signature=sig),
        dict(app=app_id, ctime="", signature=sig),
    ]:
        client = kindling.client(bad["app"])
        with pytest.raises(RtcError) as exc:
            await client.join("r", user_id="u1", ctime=bad["ctime"], signature=bad["signature"], role=0)
        assert exc.value.code == INVALID, bad


@pytest.mark.parametrize("role", ["0", True, 0.0, None, [0]])
async def test_R_ID_06_role_must_be_a_number(kindling, role):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "r", "u1")
    err = await join_error(kindling, app_id, "r", "u1", ctime=ctime, signature=sig, role=role)
    assert err.code == INVALID


@pytest.mark.parametrize("role", [0, 2])
async def test_R_ID_06_numeric_roles_join(kindling, role):
    app_id, key = await kindling.app()
    client, _ = await joined(kindling, app_id, key, "r", "u1", role=role)
    assert client.role == role


@pytest.mark.parametrize("role", [1, 3, -1, 100])
async def test_R_ID_07_other_role_values_rejected(kindling, role):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "r", "u1")
    err = await join_error(kindling, app_id, "r", "u1", ctime=ctime, signature=sig, role=role)
    assert err.code == INVALID


async def test_R_ID_08_user_name_may_equal_user_id(kindling):
    app_id, key = await kindling.app()
    a, rec = await joined(kindling, app_id, key, "r", "alice")
    await joined(kindling, app_id, key, "r", "bob", user_name="bob")
    assert (await rec.wait("peer-join")) == {"userId": "bob", "userName": "bob"}


# ----------------------------------------------------------------------------- R-APP


async def test_R_APP_02_disabled_app_refuses_new_joins_keeps_sessions(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "running", "alice")
    await asyncio.to_thread(kindling.rtc().stop_app, StopAppRequest(app_id=app_id))
    for room in ("new-room", "running"):
        ctime, sig = sign(key, app_id, room, "bob")
        err = await join_error(kindling, app_id, room, "bob", ctime=ctime, signature=sig)
        assert err.code == 90100203
        assert err.server_code == "RTC.31000004"
    # The session already in the room goes on working.
    assert await a.change_user_name("still here")
    await asyncio.to_thread(kindling.rtc().start_app, StartAppRequest(app_id=app_id))
    await joined(kindling, app_id, key, "running", "bob")
    await rec_a.wait("peer-join", lambda d: d["userId"] == "bob")


async def test_R_APP_03_unknown_app_is_refused(kindling):
    ctime, sig = sign("whatever", "nosuchapp", "r", "u1")
    err = await join_error(kindling, "nosuchapp", "r", "u1", ctime=ctime, signature=sig)
    assert err.code == 90100203


async def test_R_APP_03_deleting_an_app_dismisses_its_rooms(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    await asyncio.to_thread(kindling.rtc().delete_app, DeleteAppRequest(app_id=app_id))
    banned = await rec_a.wait("client-banned")
    assert banned == {"userId": "alice", "reason": LEAVE_REASONS[10]}
    ctime, sig = sign(key, app_id, "r", "bob")
    err = await join_error(kindling, app_id, "r", "bob", ctime=ctime, signature=sig)
    assert err.code == 90100203
    assert kindling.services.rooms.rooms == {}


# ----------------------------------------------------------------------------- R-AUTH


def test_R_AUTH_01_signature_test_vector():
    assert make_signature("k", "A", "r1", "u1", "1700000000") == (
        "d34b304dd68c72ef33398193e08109a49a35a29924dc0f8cde5fcb867dfbbfb0"
    )
    now = 1700000000 - 3600
    assert check_signature(app_key="k", app_id="A", room_id="r1", user_id="u1", ctime="1700000000",
                           signature="d34b304dd68c72ef33398193e08109a49a35a29924dc0f8cde5fcb867dfbbfb0", now=now)
    with pytest.raises(SignallingError) as exc:
        check_signature(app_key="k", app_id="A", room_id="r1", user_id="u1", ctime="1700000000",
                        signature="4677cb1b45cb9433836581bef3bc06febd28b708352580af7f04995c5b999b13", now=now)
    assert exc.value.error.code == 90100031


async def test_R_AUTH_01_no_separator_signature_rejected_live(kindling):
    import hashlib
    import hmac

    app_id, key = await kindling.app()
    ctime = str(int(time.time()) + 600)
    legacy = hmac.new(key.encode(), f"{app_id}r1u1{ctime}".encode(), hashlib.sha256).hexdigest()
    err = await join_error(kindling, app_id, "r1", "u1", ctime=ctime, signature=legacy)
    assert err.code == 90100031


async def test_R_AUTH_03_expired_ctime(kindling):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "r", "u1", valid_for=-1)
    err = await join_error(kindling, app_id, "r", "u1", ctime=ctime, signature=sig)
    assert (err.code, err.msg) == (90100030, "signature expired")
    await joined(kindling, app_id, key, "r", "u1")  # now + 3600 is accepted


def test_R_AUTH_04_maximum_validity_boundary():
    now = 1_800_000_000
    for ahead, ok in ((43199, True), (43200, False), (86400, False)):
        ctime = str(now + ahead)
        sig = make_signature("k", "A", "r", "u", ctime)
        if ok:
            check_signature(app_key="k", app_id="A", room_id="r", user_id="u", ctime=ctime, signature=sig, now=now)
        else:
            with pytest.raises(SignallingError) as exc:
                check_signature(app_key="k", app_id="A", room_id="r", user_id="u", ctime=ctime, signature=sig,
                                now=now)
            assert exc.value.error.code == 90100031


async def test_R_AUTH_04_08_maximum_validity_live(kindling):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "r", "u1", valid_for=43210)
    err = await join_error(kindling, app_id, "r", "u1", ctime=ctime, signature=sig)
    assert err.code == 90100031
    ctime, sig = sign(key, app_id, "r", "u1", valid_for=43190)
    c = kindling.client(app_id)
    await c.join("r", user_id="u1", ctime=ctime, signature=sig, role=0)


async def test_R_AUTH_05_R_ERR_02_wrong_signature_and_case(kindling):
    app_id, key = await kindling.app()
    ctime, sig = sign(key, app_id, "r", "u1")
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    err = await join_error(kindling, app_id, "r", "u1", ctime=ctime, signature=flipped)
    assert (err.code, err.msg, err.server_code) == (90100031, "signature invalid", "RTC.31000004")
    # Signed for another user or room: invalid too.
    err = await join_error(kindling, app_id, "r", "u2", ctime=ctime, signature=sig)
    assert err.code == 90100031
    c = kindling.client(app_id)
    await c.join("r", user_id="u1", ctime=ctime, signature=sig.upper(), role=0)  # OQ-34


async def test_R_AUTH_06_switch_role_needs_a_signature_for_this_room(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r1", "alice")
    ctime, other_room_sig = sign(key, app_id, "r2", "alice")
    with pytest.raises(RtcError) as exc:
        await a.switch_role(2, signature=other_room_sig, ctime=ctime)
    assert exc.value.code == 90100031
    member = kindling.services.rooms.rooms[(app_id, "r1")].members["alice"]
    assert member.role == 0
    ctime, sig = sign(key, app_id, "r1", "alice")
    await a.switch_role(2, signature=sig, ctime=ctime)
    assert member.role == 2


async def test_R_AUTH_07_signature_expiry_event_and_renewal(kindling):
    app_id, key = await kindling.app()
    a, rec = await joined(kindling, app_id, key, "r", "alice")
    member = kindling.services.rooms.rooms[(app_id, "r")].members["alice"]
    member.sig_expiry = int(time.time()) + 1  # as if it had joined with a short-lived signature
    expired = await rec.wait("signature-expired", timeout=4)
    assert expired == {"errorCode": "90100030", "errorMsg": "signature expired"}
    assert len(rec.of("signature-expired")) == 1
    ctime, sig = sign(key, app_id, "r", "alice")
    with pytest.raises(RtcError) as exc:
        await a.renew_signature(ctime, sig[::-1])
    assert exc.value.code == 90100031
    assert await a.renew_signature(ctime, sig) is True
    assert member.sig_expiry == int(ctime)
    # Still in the room after expiry (OQ-10: notify, do not remove).
    assert kindling.services.rooms.rooms[(app_id, "r")].members["alice"] is member


# ----------------------------------------------------------------------------- R-ROLE


async def test_R_ROLE_04_switch_role(kindling):
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice")
    ctime, sig = sign(key, app_id, "r", "alice")
    with pytest.raises(RtcError) as exc:
        await a.switch_role(0, signature=sig, ctime=ctime)
    assert (exc.value.code, exc.value.msg) == (90100229, "role is unchanged")
    await a.switch_role(2, signature=sig, ctime=ctime)
    await a.switch_role(0, signature=sig, ctime=ctime)
    with pytest.raises(RtcError) as exc:
        await a.switch_role(1, signature=sig, ctime=ctime)
    assert exc.value.code == INVALID


async def test_R_ROLE_06_switch_to_joiner_respects_the_sender_limit(kindling):
    kindling.settings.max_senders_per_room = 1
    app_id, key = await kindling.app()
    await joined(kindling, app_id, key, "r", "alice", role=0)
    b, _ = await joined(kindling, app_id, key, "r", "bob", role=2)
    ctime, sig = sign(key, app_id, "r", "bob")
    with pytest.raises(RtcError) as exc:
        await b.switch_role(0, signature=sig, ctime=ctime)
    assert exc.value.code == 90100246


async def test_R_ROLE_07_role_change_sends_no_event(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    b, _ = await joined(kindling, app_id, key, "r", "bob")
    await rec_a.wait("peer-join")
    before = list(rec_a.events)
    ctime, sig = sign(key, app_id, "r", "bob")
    await b.switch_role(2, signature=sig, ctime=ctime)
    await asyncio.sleep(0.3)
    assert rec_a.events == before


# ----------------------------------------------------------------------------- R-CAP


async def test_R_CAP_01_sender_limit_refuses_joiners_not_players(kindling):
    kindling.settings.max_senders_per_room = 3
    app_id, key = await kindling.app()
    for i in range(3):
        await joined(kindling, app_id, key, "r", f"j{i}")
    ctime, sig = sign(key, app_id, "r", "j3")
    err = await join_error(kindling, app_id, "r", "j3", ctime=ctime, signature=sig)
    assert (err.code, err.msg, err.server_code) == (
        90100246, "the number of anchors has reached the maximum", "RTC.34000001")
    for i in range(5):
        await joined(kindling, app_id, key, "r", f"p{i}", role=2)
    assert len(kindling.services.rooms.rooms[(app_id, "r")].members) == 8


async def test_R_CAP_01_leaving_frees_a_sender_slot(kindling):
    kindling.settings.max_senders_per_room = 1
    app_id, key = await kindling.app()
    a, _ = await joined(kindling, app_id, key, "r", "alice")
    ctime, sig = sign(key, app_id, "r", "bob")
    assert (await join_error(kindling, app_id, "r", "bob", ctime=ctime, signature=sig)).code == 90100246
    ctime_a, sig_a = sign(key, app_id, "r", "alice")
    await a.switch_role(2, signature=sig_a, ctime=ctime_a)  # OQ-37: the slot is freed at once
    await joined(kindling, app_id, key, "r", "bob")


# ----------------------------------------------------------------------------- R-USER


async def test_R_USER_01_peer_join(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    await joined(kindling, app_id, key, "r", "bob", user_name="Bob")
    assert await rec_a.wait("peer-join") == {"userId": "bob", "userName": "Bob"}


async def test_R_USER_02_newcomer_learns_who_is_there(kindling):
    app_id, key = await kindling.app()
    await joined(kindling, app_id, key, "r", "alice", user_name="Alice")
    await joined(kindling, app_id, key, "r", "pat", role=2)
    c, rec_c = await joined(kindling, app_id, key, "r", "carol")
    await rec_c.wait("peer-join", lambda d: d["userId"] == "pat")
    assert sorted(d["userId"] for d in rec_c.of("peer-join")) == ["alice", "pat"]


async def test_R_USER_03_leave_sends_peer_leave_reason_0(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    b, _ = await joined(kindling, app_id, key, "r", "bob", user_name="Bob")
    await b.leave()
    left = await rec_a.wait("peer-leave")
    assert left == {"userId": "bob", "userName": "Bob", "reason": {"code": 0, "msg": "The user exits the room."}}
    assert b.get_connection_state() == "DISCONNECTED"


async def test_R_USER_04_joining_twice_on_one_session(kindling):
    from tests.helpers import RawWS

    app_id, key = await kindling.app()
    raw = await RawWS.open(kindling)
    try:
        ctime, sig = sign(key, app_id, "r", "alice")
        join = {"appId": app_id, "roomId": "r", "userId": "alice", "role": 0, "ctime": ctime, "signature": sig}
        assert (await raw.call(1, "join", join))["ok"]
        again = await raw.call(2, "join", join)
        assert again["ok"] is False
        assert again["error"]["code"] == 90100204
        assert again["error"]["serverCode"] == "RTC.32000033"
    finally:
        await raw.close()


async def test_R_USER_05_R_KICK_07_same_user_elsewhere_bans_the_old_client(kindling):
    app_id, key = await kindling.app()
    watcher, rec_w = await joined(kindling, app_id, key, "r", "watcher")
    old, rec_old = await joined(kindling, app_id, key, "r", "alice", user_name="Alice")
    await rec_w.wait("peer-join", lambda d: d["userId"] == "alice")
    new, rec_new = await joined(kindling, app_id, key, "r", "alice", user_name="Alice 2")
    banned = await rec_old.wait("client-banned")
    assert banned == {"userId": "alice", "reason": "The user is banned from the room."}
    await rec_old.wait("connection-state-changed", lambda d: d["curState"] == "DISCONNECTED")
    # OQ-08: peers see a seamless replacement.
    renamed = await rec_w.wait("remote-user-name-changed")
    assert renamed == {"roomId": "r", "userId": "alice", "userName": "Alice 2"}
    await asyncio.sleep(0.3)
    assert rec_w.of("peer-leave") == []
    assert len(rec_w.of("peer-join")) == 1
    room = kindling.services.rooms.rooms[(app_id, "r")]
    assert room.members["alice"].session_id == new.session_id
    assert old.get_connection_state() == "DISCONNECTED"


async def test_R_USER_06_change_user_name(kindling):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    b, _ = await joined(kindling, app_id, key, "r", "bob")
    assert await b.change_user_name("Robert") is True
    assert await rec_a.wait("remote-user-name-changed") == {"roomId": "r", "userId": "bob", "userName": "Robert"}
    await b.leave()
    left = await rec_a.wait("peer-leave")
    assert left["userName"] == "Robert"


# ----------------------------------------------------------------------------- R-MULTI


async def test_R_MULTI_01_R_CAP_04_at_most_four_rooms(kindling):
    app_id, key = await kindling.app()
    for i in range(4):
        await joined(kindling, app_id, key, f"room{i}", "alice", role=2)
    ctime, sig = sign(key, app_id, "room4", "alice")
    err = await join_error(kindling, app_id, "room4", "alice", ctime=ctime, signature=sig, role=2)
    assert (err.code, err.server_code) == (90100203, "RTC.32000032")


async def test_R_MULTI_02_same_user_in_several_rooms_is_not_banned(kindling):
    app_id, key = await kindling.app()
    a1, rec1 = await joined(kindling, app_id, key, "r1", "alice", role=2)
    a2, _ = await joined(kindling, app_id, key, "r2", "alice", role=2)
    await asyncio.sleep(0.3)
    assert rec1.of("client-banned") == []
    assert a1.get_connection_state() == "CONNECTED"


async def test_R_MULTI_03_only_one_room_as_joiner(kindling):
    app_id, key = await kindling.app()
    a1, _ = await joined(kindling, app_id, key, "r1", "alice", role=0)
    ctime, sig = sign(key, app_id, "r2", "alice")
    err = await join_error(kindling, app_id, "r2", "alice", ctime=ctime, signature=sig, role=0)
    assert (err.code, err.server_code) == (90100022, "RTC.32000028")
    a2, _ = await joined(kindling, app_id, key, "r2", "alice", role=2)
    with pytest.raises(RtcError) as exc:
        await a2.switch_role(0, signature=sig, ctime=ctime)
    assert exc.value.code == 90100022
    c1, s1 = sign(key, app_id, "r1", "alice")
    await a1.switch_role(2, signature=s1, ctime=c1)
    await a2.switch_role(0, signature=sig, ctime=ctime)


def test_R_KICK_08_leave_reason_table():
    assert LEAVE_REASONS == {
        0: "The user exits the room.",
        1: "A server exception occurs.",
        2: "The SFU service is faulty.",
        3: "The service is unavailable (503).",
        4: "An internal error occurs.",
        5: "The user is banned from the room.",
        6: "The signature has expired.",
        7: "Reconnection times out.",
        8: "Network check. No error code is required for the UI.",
        9: "The user is removed.",
        10: "The room is dismissed.",
    }


async def test_R_ROOM_08_no_fixed_room_cap(kindling):
    app_id, key = await kindling.app()

    async def one(i: int):
        c, _ = await joined(kindling, app_id, key, f"room{i}", f"user{i}", role=2)
        return c

    await asyncio.gather(*[one(i) for i in range(150)])
    assert len([k for k in kindling.services.rooms.rooms if k[0] == app_id]) == 150
