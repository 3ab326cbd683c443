"""Bad input on the signalling socket: every case is answered with its documented
code, the server stays up for everyone else, and nobody is left half-joined."""

import pytest

from tests.conftest import sign
from tests.helpers import RawWS, joined


@pytest.fixture
async def raw(kindling):
    r = await RawWS.open(kindling)
    yield r
    await r.close()


def join_data(app_id, key, room="r", user="alice", **over):
    ctime, sig = sign(key, app_id, room, user)
    data = {"appId": app_id, "roomId": room, "userId": user, "role": 0, "ctime": ctime, "signature": sig}
    data.update(over)
    return data


@pytest.mark.parametrize(
    "frame, expect_id",
    [
        ("{not json", None),
        ("[]", None),
        ('"hello"', None),
        ("null", None),
        ('{"type": "heartbeat"}', None),
        ('{"id": true, "type": "heartbeat"}', None),
        ('{"id": {"x": 1}, "type": "heartbeat"}', None),
        ('{"id": 7, "type": "dance"}', 7),
        ('{"id": 8, "type": "heartbeat", "data": []}', 8),
        ('{"id": 9, "type": "heartbeat", "extra": 1}', 9),
        ('{"id": 10, "type": "heartbeat", "data": {"x": 1}}', 10),
    ],
)
async def test_malformed_frames_get_90100201(kindling, raw, frame, expect_id):
    await raw.send(frame)
    r = await raw.response()
    assert r["id"] == expect_id
    assert r["ok"] is False
    assert r["error"]["code"] == 90100201
    assert r["error"]["message"] == "request parameter is invalid"
    assert (await raw.call(99, "heartbeat"))["ok"]  # the connection is still usable


@pytest.mark.parametrize(
    "override",
    [
        {"role": "0"},
        {"role": None},
        {"roomId": 5},
        {"userId": ["a"]},
        {"ctime": 1700000000},
        {"signature": None},
        {"appId": ""},
        {"options": "yes"},
        {"options": {"topN": "yes"}},
        {"options": {"unknown": True}},
        {"colour": "red"},
    ],
)
async def test_mistyped_join_fields(kindling, raw, override):
    app_id, key = await kindling.app()
    r = await raw.call(1, "join", join_data(app_id, key, **override))
    assert r["ok"] is False and r["error"]["code"] == 90100201, r
    assert kindling.services.rooms.rooms == {}  # nothing half-joined


async def test_missing_join_fields(kindling, raw):
    app_id, key = await kindling.app()
    for field in ("roomId", "userId", "role", "ctime", "signature", "appId"):
        data = join_data(app_id, key)
        del data[field]
        r = await raw.call(field, "join", data)
        assert r["error"]["code"] == 90100201, field
    assert kindling.services.rooms.rooms == {}


async def test_requests_before_join_are_illegal_operations(kindling, raw):
    for rtype, data in [("leave", {}), ("changeUserName", {"userName": "x"}),
                        ("renewSignature", {"ctime": "1", "signature": "x"})]:
        r = await raw.call(1, rtype, data)
        assert r["ok"] is False and r["error"]["code"] in (90100001, 90100031), (rtype, r)
    r = await raw.call(2, "leave")
    assert r["error"]["code"] == 90100001


async def test_oversized_frame(kindling, raw):
    pad = "x" * (kindling.settings.ws_max_message_bytes + 10)
    big = '{"id": 1, "type": "heartbeat", "data": {"pad": "' + pad + '"}}'
    await raw.send(big)
    r = await raw.response()
    assert r["ok"] is False and r["error"]["code"] == 90100201
    assert "larger" in r["error"]["detail"]
    assert (await raw.call(2, "heartbeat"))["ok"]


async def test_grossly_oversized_frame_closes_only_that_socket(kindling, raw):
    app_id, key = await kindling.app()
    other, rec = await joined(kindling, app_id, key, "r", "bob")
    await raw.send("x" * (kindling.settings.ws_max_message_bytes * 4 + 100))
    msg = await raw.ws.receive(timeout=5)
    assert msg.type.name in ("CLOSE", "CLOSED", "ERROR")
    assert await other.change_user_name("still fine")


async def test_binary_frames_are_refused(kindling, raw):
    await raw.ws.send_bytes(b"\x00\x01")
    r = await raw.response()
    assert r["ok"] is False and r["error"]["code"] == 90100201


async def test_bad_input_does_not_disturb_a_room(kindling, raw):
    app_id, key = await kindling.app()
    a, rec_a = await joined(kindling, app_id, key, "r", "alice")
    for frame in ("{", '{"id": 1, "type": "join", "data": {"role": "0"}}', "[]" * 1000):
        await raw.send(frame)
        await raw.response()
    r = await raw.call(5, "join", join_data(app_id, key, user="bob"))
    assert r["ok"], r
    assert (await rec_a.wait("peer-join"))["userId"] == "bob"
    assert set(kindling.services.rooms.rooms[(app_id, "r")].members) == {"alice", "bob"}
