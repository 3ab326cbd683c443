"""The eight SDK-HMAC-SHA256 test vectors of rest-api.md §2.3, verified by
control.auth.aksk exactly as the server verifies live requests."""

import hashlib

import pytest
from multidict import CIMultiDict

from control.auth import aksk

AK = "HPUAEXAMPLEAK000TEST"
SK = "ExampleSecretKey0000000000000000000000SK"
PROJECT = "0123456789abcdef0123456789abcdef"
UA = "huaweicloud-usdk-python/3.0; test-vector"
DATE = "20240102T030405Z"
SIGNED = ("content-type", "host", "user-agent", "x-project-id", "x-sdk-date")

MIX_BODY = (
    b'{"mix_param": {"room_id": "room001", "encode_template": "1280*720_15_2260", "max_idle_time": 30, '
    b'"layout_template": "custom", "layout_panes": [{"id": 1, "user_id": "user1", "video_type": '
    b'"CAMERASTREAM", "x": 0, "y": 0, "width": 0.666, "height": 0.333, "crop_mode": "KEEP_RATIO_CROP"}]}, '
    b'"record_param": {"record_rule_id": "5f5e172b9016ed5b0961a43"}}'
)

# (method, path, query, content-type, port, body, sts-hash, signature)
VECTORS = [
    (
        "POST", "/v2/apps", "", "application/json;charset=utf-8", 18080, b'{"app_name": "rtc"}',
        "c10efa609624f3cae7bacebc706190214bcc39118f72ae4e6e410f8e4bcc4f15",
        "b7e877438609d8e0782ff4b211fcc9106e05e8a9e053db0e3a54bd8720412eab",
    ),
    (
        "GET", "/v2/apps", "limit=10&offset=0&state=ACTIVATION", "application/json", 18080, b"",
        "433d6777c3946c282dafd573515447beed45a737c2281b6e82313af159e3089e",
        "97e3e6116689eff80410a0c2c9ffe0677bd9f80dd61b8622684fb61ce04979f2",
    ),
    (
        "GET", f"/v1/{PROJECT}/rtc/history/scale",
        "app=5fa682b34a974f7ad24d223b&end_date=2020-04-26&metric=MaxOnlineRoomCount"
        "&metric=SessionCount&start_date=2020-04-23",
        "application/json", 18080, b"",
        "7b2a0e9eb75152eb3b28167dfaf725c6e4d834e5b312220e1b293ab20c9cfcf1",
        "b9d3614ccf82e65be4a988cc11b2a9d26929946319461a358ccc6187aded3c65",
    ),
    (
        "GET", f"/v1/{PROJECT}/rtc/users",
        "app=app%201%2F%C3%A9&limit=5&region=BJ&region=GD&state=ONLINE",
        "application/json", 18080, b"",
        "357b61af6ccb6dae995e31ea37a2285ad22576d0597e63df452714067231f4f9",
        "7aae210244a497f12adbc4c888da9bbcbcab0ac7efcf5ecf03f313c140e41ded",
    ),
    (
        "GET", "/v2/apps/nope", "", "application/json", 18080, b"",
        "be0ec755be08efcebb9219ee0c712062de8f1f904e4cf321490a8d4e4cb4a1dd",
        "0b6f54108116e00f0658943010d9086fe25f45a0901eeb135c567630a356f86d",
    ),
    (
        "POST", "/v2/apps/a%2Fb%20c/rooms/room%201/dismiss", "", "application/json", 18081, b"",
        "197b23de2da37b1096f0623ddc1eb1ca24b7179da976115420d82133a35a0933",
        "ceb26101f3111b0eef534ffe04eb2087f4eaa09374b9815ff91b5dc218477179",
    ),
    (
        "POST", "/v2/apps/app1/rooms/r1/batch-remove-users", "", "application/json;charset=utf-8", 18081,
        b'{"user_ids": ["u1", "\\u7528\\u6237"]}',
        "c27bad93e2f4f9006db1ee06b75a0944a9519b04516504b24b4a806372e83090",
        "2ae269f1bcdc7a2fd4a6ecc0208869486b146dd7139f0558e1de9a24dc9854e7",
    ),
    (
        "POST", "/v2/apps/app1/mix-stream-jobs", "", "application/json;charset=utf-8", 18081, MIX_BODY,
        "4a893017a75054d880b328b5d6775e100ab874a6cc1c6cbf5795c244ea59197b",
        "30f27f33910ea5f4c14036537655f92cec744dc4ae09e4d2475bc3f5f4d68efd",
    ),
]


def _headers(ctype: str, port: int) -> CIMultiDict:
    return CIMultiDict(
        {
            "User-Agent": UA,
            "Content-Type": ctype,
            "X-Sdk-Date": DATE,
            "X-Project-Id": PROJECT,
            "Host": f"127.0.0.1:{port}",
        }
    )


@pytest.mark.parametrize("vector", VECTORS, ids=[f"vector{i + 1}" for i in range(len(VECTORS))])
def test_vector_string_to_sign_and_signature(vector):
    method, path, query, ctype, port, body, sts_hash, signature = vector
    headers = _headers(ctype, port)
    sts = aksk.string_to_sign(method, path, query, headers, SIGNED, body)
    assert sts.split("\n") == ["SDK-HMAC-SHA256", DATE, sts_hash]
    assert aksk.sign(SK, sts) == signature
    auth = aksk.parse_authorization(
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={';'.join(SIGNED)}, Signature={signature}"
    )
    aksk.verify(
        method=method, raw_path=path, raw_query=query, headers=headers, body=body,
        auth=auth, secret_key=SK, now=None, max_skew_s=900,
    )


def test_vector1_canonical_request_exact():
    creq = (
        "POST\n/v2/apps/\n\n"
        "content-type:application/json;charset=utf-8\nhost:127.0.0.1:18080\n"
        f"user-agent:{UA}\nx-project-id:{PROJECT}\nx-sdk-date:{DATE}\n\n"
        "content-type;host;user-agent;x-project-id;x-sdk-date\n"
        "5e73c1de6458c65854052f7f84472ca31b3f7e3227e1a40266d172563ff34b13"
    )
    assert hashlib.sha256(creq.encode()).hexdigest() == VECTORS[0][6]


def test_canonical_uri_decodes_slashes_before_split():
    assert aksk.canonical_uri("/v2/apps/a%2Fb%20c/rooms/room%201/dismiss") == (
        "/v2/apps/a/b%20c/rooms/room%201/dismiss/"
    )
    assert aksk.canonical_uri("/v2/apps/") == "/v2/apps/"


def test_tampered_body_is_rejected():
    method, path, query, ctype, port, body, _, signature = VECTORS[0]
    auth = aksk.parse_authorization(
        f"SDK-HMAC-SHA256 Access={AK}, SignedHeaders={';'.join(SIGNED)}, Signature={signature}"
    )
    with pytest.raises(aksk.SignatureError):
        aksk.verify(
            method=method, raw_path=path, raw_query=query, headers=_headers(ctype, port),
            body=b'{"app_name": "rtx"}', auth=auth, secret_key=SK, now=None, max_skew_s=900,
        )


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic abc",
        "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=zz",
        "SDK-HMAC-SHA256 Access=AK,SignedHeaders=host;x-sdk-date,Signature=" + "0" * 64,
    ],
)
def test_malformed_authorization_headers(header):
    with pytest.raises(aksk.SignatureError):
        aksk.parse_authorization(header)
