"""Bad input on the REST API: every case gets its documented status and
``{error_code, error_msg}`` body with an X-Request-Id, never a 500, and leaves
nothing half-written."""

import asyncio
from datetime import timedelta

import aiohttp
import pytest
from huaweicloudsdkcloudrtc.v2 import AppReq, CreateAppRequest, ListAppsRequest, ShowAppRequest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from tests.signing import signed_request


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as s:
        yield s


def assert_error(status, body, headers, want_status, want_code):
    assert status == want_status, body
    assert set(body) == {"error_code", "error_msg"}, body
    assert body["error_code"] == want_code, body
    assert body["error_msg"]
    assert headers.get("X-Request-Id")


async def app_count(k) -> int:
    count, _ = await k.services.apps.list(k.project_id, None, 0, 100)
    return count


@pytest.mark.parametrize(
    "raw, code",
    [
        (b"{not json", "RTC.00001002"),
        (b"[1, 2]", "RTC.00001002"),
        (b'"just a string"', "RTC.00001002"),
        (b"\xff\xfe", "RTC.00001002"),
        (b"{}", "RTC.00001005"),
        (b'{"app_name": null}', "RTC.00001005"),
        (b'{"app_name": ""}', "RTC.00001003"),
        (b'{"app_name": "   "}', "RTC.00001003"),
        (b'{"app_name": 42}', "RTC.00001003"),
        (b'{"app_name": "' + b"x" * 65 + b'"}', "RTC.00001003"),
        (b'{"app_name": "ok", "colour": "red"}', "RTC.00001003"),
    ],
)
async def test_create_app_bad_bodies(kindling, http, raw, code):
    status, body, headers = await signed_request(http, kindling, "POST", "/v2/apps", body=raw)
    assert_error(status, body, headers, 400, code)
    assert await app_count(kindling) == 0


async def test_app_name_limits(kindling, http):
    status, body, _ = await signed_request(http, kindling, "POST", "/v2/apps", body={"app_name": "x" * 64})
    assert status == 201, body


async def test_duplicate_app_name(kindling):
    rtc = kindling.rtc()
    await asyncio.to_thread(rtc.create_app, CreateAppRequest(body=AppReq(app_name="dup")))
    with pytest.raises(ClientRequestException) as exc:
        await asyncio.to_thread(rtc.create_app, CreateAppRequest(body=AppReq(app_name="dup")))
    assert (exc.value.status_code, exc.value.error_code) == (400, "RTC.00001020")
    assert await app_count(kindling) == 1


async def test_app_limit_per_project(kindling, http):
    kindling.services.apps._max_apps = 3
    for i in range(3):
        status, _, _ = await signed_request(http, kindling, "POST", "/v2/apps", body={"app_name": f"a{i}"})
        assert status == 201
    status, body, headers = await signed_request(http, kindling, "POST", "/v2/apps", body={"app_name": "a3"})
    assert_error(status, body, headers, 400, "RTC.00001017")


async def test_concurrent_duplicate_creates_make_one_app(kindling, http):
    results = await asyncio.gather(
        *[signed_request(http, kindling, "POST", "/v2/apps", body={"app_name": "race"}) for _ in range(8)]
    )
    statuses = sorted(r[0] for r in results)
    assert statuses.count(201) == 1 and statuses.count(400) == 7
    assert await app_count(kindling) == 1


async def test_unknown_app_id(kindling, http):
    for method, path in [
        ("GET", "/v2/apps/0123456789abcdef01234567"),
        ("DELETE", "/v2/apps/0123456789abcdef01234567"),
        ("POST", "/v2/apps/0123456789abcdef01234567/enable"),
        ("POST", "/v2/apps/0123456789abcdef01234567/disable"),
        ("GET", "/v2/apps/a%2Fb%20c"),
    ]:
        status, body, headers = await signed_request(http, kindling, method, path)
        assert_error(status, body, headers, 404, "RTC.00001015")


async def test_other_projects_app_is_invisible(kindling):
    app_id, _ = await kindling.app("mine")
    pid, ak, sk = await kindling.new_project()
    other = kindling.rtc(ak, sk, pid)
    with pytest.raises(ClientRequestException) as exc:
        await asyncio.to_thread(other.show_app, ShowAppRequest(app_id=app_id))
    assert (exc.value.status_code, exc.value.error_code) == (404, "RTC.00001015")
    listed = await asyncio.to_thread(other.list_apps, ListAppsRequest())
    assert listed.count == 0
    # The same name is free in another project.
    created = await asyncio.to_thread(other.create_app, CreateAppRequest(body=AppReq(app_name="mine")))
    assert created.app_id != app_id


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=-1", "offset=-1", "limit=abc", "offset=1.5", "state=WHATEVER", "state=DELETED",
     "colour=red"],
)
async def test_list_apps_bad_query(kindling, http, query):
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", query=query)
    assert_error(status, body, headers, 400, "RTC.00001003")


async def test_list_apps_limit_bounds_accepted(kindling, http):
    for query in ("limit=1", "limit=100", "limit=100&offset=7"):
        status, body, _ = await signed_request(http, kindling, "GET", "/v2/apps", query=query)
        assert status == 200 and body == {"count": 0, "apps": []}


async def test_unknown_route_and_method(kindling, http):
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/nothing-here")
    assert_error(status, body, headers, 404, "RTC.00001003")
    status, body, headers = await signed_request(http, kindling, "PATCH", "/v2/apps")
    assert_error(status, body, headers, 405, "RTC.00001003")


# ----------------------------------------------------------------------- authentication


async def test_wrong_secret_key(kindling, http):
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", sk="W" * 40)
    assert_error(status, body, headers, 401, "APIGW.0301")


async def test_unknown_access_key(kindling, http):
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", ak="NOSUCHKEY0000000000")
    assert_error(status, body, headers, 401, "APIGW.0301")


async def test_revoked_access_key(kindling, http):
    pid, ak, sk = await kindling.new_project()
    status, _, _ = await signed_request(http, kindling, "GET", "/v2/apps", ak=ak, sk=sk, project=pid)
    assert status == 200
    assert await kindling.services.tenants.revoke(ak)
    kindling.services.authenticator._cache.clear()
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", ak=ak, sk=sk, project=pid)
    assert_error(status, body, headers, 401, "APIGW.0301")


@pytest.mark.parametrize("shift", [timedelta(minutes=-16), timedelta(minutes=16), timedelta(days=-400)])
async def test_stale_or_future_date(kindling, http, shift):
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", date_shift=shift)
    assert_error(status, body, headers, 401, "APIGW.0301")
    assert "skew" in body["error_msg"]


async def test_date_within_window(kindling, http):
    status, _, _ = await signed_request(http, kindling, "GET", "/v2/apps", date_shift=timedelta(minutes=-14))
    assert status == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h: h.pop("Authorization"),
        lambda h: h.pop("X-Sdk-Date"),
        lambda h: h.__setitem__("X-Sdk-Date", "2024-01-02 03:04:05"),
        lambda h: h.__setitem__("Authorization", "Basic dXNlcjpwYXNz"),
        lambda h: h.__setitem__("Authorization", h["Authorization"].replace(", ", ",")),
        lambda h: h.__setitem__("Authorization", h["Authorization"][:-1] + ("0" if h["Authorization"][-1] != "0"
                                                                           else "1")),
        lambda h: h.__setitem__("User-Agent", "someone-else"),
    ],
    ids=["no-authorization", "no-date", "bad-date", "basic-auth", "bad-separators", "flipped-signature",
         "changed-signed-header"],
)
async def test_auth_header_failures(kindling, http, tamper):
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", tamper=tamper)
    assert_error(status, body, headers, 401, "APIGW.0301")


async def test_bad_signature_on_create_writes_nothing(kindling, http):
    status, body, headers = await signed_request(
        http, kindling, "POST", "/v2/apps", body={"app_name": "one"},
        tamper=lambda h: h.__setitem__("Authorization", h["Authorization"].replace("Signature=", "Signature=0")[:-1]),
    )
    assert_error(status, body, headers, 401, "APIGW.0301")
    assert await app_count(kindling) == 0


async def test_project_header_mismatch_is_forbidden(kindling, http):
    pid, _, _ = await kindling.new_project()
    status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", project=pid)
    assert_error(status, body, headers, 403, "APIGW.0302")


async def test_official_sdk_with_wrong_secret(kindling):
    rtc = kindling.rtc(sk="X" * 40)
    with pytest.raises(ClientRequestException) as exc:
        await asyncio.to_thread(rtc.list_apps, ListAppsRequest())
    assert exc.value.status_code == 401
    assert exc.value.error_code == "APIGW.0301"


async def test_admin_token(kindling, http):
    from control.config import ApiToken

    kindling.services.authenticator._tokens = [ApiToken("bound-token", kindling.project_id), ApiToken("admin", None)]
    async with http.get(f"{kindling.url}/v2/apps", headers={"X-Auth-Token": "bound-token"}) as r:
        assert r.status == 200
    async with http.get(f"{kindling.url}/v2/apps",
                        headers={"X-Auth-Token": "admin", "X-Project-Id": kindling.project_id}) as r:
        assert r.status == 200
    async with http.get(f"{kindling.url}/v2/apps", headers={"X-Auth-Token": "admin"}) as r:
        body = await r.json()
        assert r.status == 400 and body["error_code"] == "RTC.00001001"
    async with http.get(f"{kindling.url}/v2/apps", headers={"X-Auth-Token": "nope"}) as r:
        body = await r.json()
        assert r.status == 401 and body["error_code"] == "APIGW.0301"


# ----------------------------------------------------------------------- throttling


async def test_app_management_throttled_at_60_per_minute_per_project(kindling, http):
    statuses = []
    for _ in range(62):
        status, body, _ = await signed_request(http, kindling, "GET", "/v2/apps")
        statuses.append(status)
    assert statuses[:60] == [200] * 60
    assert statuses[60:] == [429, 429]
    assert body["error_code"] == "APIGW.0308"
    # Another project has its own allowance.
    pid, ak, sk = await kindling.new_project()
    status, _, _ = await signed_request(http, kindling, "GET", "/v2/apps", ak=ak, sk=sk, project=pid)
    assert status == 200


async def test_R_KICK_06_room_management_category_is_separate(kindling, http):
    app_id, _ = await kindling.app()
    for _ in range(60):
        await signed_request(http, kindling, "GET", "/v2/apps")
    status, _, _ = await signed_request(http, kindling, "GET", "/v2/apps")
    assert status == 429
    status, body, _ = await signed_request(
        http, kindling, "POST", f"/v2/apps/{app_id}/rooms/r1/batch-remove-users", body={"user_ids": ["u1"]}
    )
    assert status == 202, body


# ----------------------------------------------------------------------- health and metrics


async def test_healthz_and_metrics(kindling, http):
    async with http.get(f"{kindling.url}/healthz") as r:
        assert r.status == 200
        assert (await r.json())["database"] == "ok"
        assert r.headers["X-Request-Id"]
    await signed_request(http, kindling, "GET", "/v2/apps")
    await signed_request(http, kindling, "GET", "/v2/apps/none")
    async with http.get(f"{kindling.url}/metrics") as r:
        text = await r.text()
    assert 'kindling_http_requests_total{method="GET",route="/v2/apps",status="200"} 1.0' in text
    assert 'route="/v2/apps/{app_id}",status="404"' in text
    assert "kindling_http_request_duration_seconds_bucket" in text
    assert "kindling_db_pool_size" in text


async def test_healthz_reports_database_down(kindling, http):
    from sqlalchemy.ext.asyncio import create_async_engine

    good = kindling.services.engine
    kindling.services.engine = create_async_engine(
        "postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_pre_ping=False
    )
    try:
        async with http.get(f"{kindling.url}/healthz") as r:
            assert r.status == 503
            assert (await r.json())["status"] == "unavailable"
    finally:
        await kindling.services.engine.dispose()
        kindling.services.engine = good
