"""Application management driven through Huawei's official SDK
(huaweicloudsdkcloudrtc), checking the values parsed into its models."""

import asyncio
import re

import pytest
from huaweicloudsdkcloudrtc.v2 import (
    AppReq,
    CreateAppRequest,
    DeleteAppRequest,
    ListAppsRequest,
    ShowAppRequest,
    StartAppRequest,
    StopAppRequest,
)
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def call(fn, *args):
    return await asyncio.to_thread(fn, *args)


async def test_R_APP_01_04_R_PERS_01_full_app_lifecycle_through_official_sdk(kindling):
    rtc = kindling.rtc()
    created = await call(rtc.create_app, CreateAppRequest(body=AppReq(app_name="conformance")))
    assert re.fullmatch(r"[0-9a-f]{24}", created.app_id)
    assert created.x_request_id

    shown = await call(rtc.show_app, ShowAppRequest(app_id=created.app_id))
    assert shown.app_id == created.app_id
    assert shown.app_name == "conformance"
    assert shown.state.state == "ACTIVATION"
    assert TIME_RE.match(shown.state.update_time)
    assert TIME_RE.match(shown.create_time)
    assert shown.tenant_name == "tests"
    assert shown.scope in ("DOMESTIC", "OVERSEA", "GLOBAL")
    assert shown.authentication.enable is True
    assert shown.authentication.expire == 300
    assert re.fullmatch(r"[0-9a-f]{32}", shown.authentication.app_key)
    assert TIME_RE.match(shown.authentication.update_time)
    assert shown.callbacks.record_callback.url == ""
    assert shown.auto_record_mode.mode == "AUTO_RECORD_OFF"
    assert shown.x_request_id

    listed = await call(rtc.list_apps, ListAppsRequest(offset=0, limit=10))
    assert listed.count == 1
    assert [a.app_id for a in listed.apps] == [created.app_id]
    assert listed.apps[0].authentication.app_key == shown.authentication.app_key

    stopped = await call(rtc.stop_app, StopAppRequest(app_id=created.app_id))
    assert stopped.app_id == created.app_id
    assert stopped.state.state == "DEACTIVATION"
    only_active = await call(rtc.list_apps, ListAppsRequest(state="ACTIVATION"))
    assert only_active.count == 0 and only_active.apps == []
    only_inactive = await call(rtc.list_apps, ListAppsRequest(state="DEACTIVATION"))
    assert only_inactive.count == 1

    started = await call(rtc.start_app, StartAppRequest(app_id=created.app_id))
    assert started.state.state == "ACTIVATION"

    deleted = await call(rtc.delete_app, DeleteAppRequest(app_id=created.app_id))
    assert deleted.x_request_id
    with pytest.raises(ClientRequestException) as exc:
        await call(rtc.show_app, ShowAppRequest(app_id=created.app_id))
    assert exc.value.status_code == 404
    assert exc.value.error_code == "RTC.00001015"
    assert exc.value.request_id
    assert (await call(rtc.list_apps, ListAppsRequest())).count == 0


async def test_list_pagination_is_by_page_number(kindling):
    rtc = kindling.rtc()
    ids = []
    for i in range(5):
        r = await call(rtc.create_app, CreateAppRequest(body=AppReq(app_name=f"page-{i}")))
        ids.append(r.app_id)
    pages = []
    for page in range(3):
        r = await call(rtc.list_apps, ListAppsRequest(offset=page, limit=2))
        assert r.count == 5
        pages.append([a.app_id for a in r.apps])
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]


async def test_unicode_app_name_round_trips(kindling):
    rtc = kindling.rtc()
    r = await call(rtc.create_app, CreateAppRequest(body=AppReq(app_name="会议 app é")))
    shown = await call(rtc.show_app, ShowAppRequest(app_id=r.app_id))
    assert shown.app_name == "会议 app é"


async def test_credentials_without_project_id_header(kindling):
    """The SDK omits X-Project-Id when BasicCredentials has no project_id... but then
    it asks IAM for one, so we check the server side: no header is accepted."""
    import aiohttp

    from tests.signing import signed_request

    async with aiohttp.ClientSession() as http:
        status, body, headers = await signed_request(http, kindling, "GET", "/v2/apps", project=False)
    assert status == 200, body
    assert body["count"] == 0
    assert headers["X-Request-Id"]
