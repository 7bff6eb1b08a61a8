"""The fake WeLink API refuses what WeLink refuses, so a client passing against it is right."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from gateway.callbacks import fake_providers_app
from gateway.plugins import Plugins
from gateway.testing import serving
from plugins.welink.fake import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from tests.welink_fixtures import CLIENT_ID, CLIENT_SECRET, RunningWeLink

CARD = {
    "msgOwner": "考勤",
    "toUserList": ["john@welink"],
    "msgTitle": "出差电子流",
    "msgContent": "张三提交了一个去上海的出差申请",
}


async def call(url: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url + path, json=body, **kwargs) as response,
    ):
        return response.status, await response.json()


async def token(welink: RunningWeLink) -> str:
    status, body = await call(
        welink.url,
        "/api/auth/v2/tickets",
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert status == 200 and body["code"] == "0", body
    return body["access_token"]


async def send(welink: RunningWeLink, body: dict, auth: str | None = None) -> dict:
    headers = {"x-wlk-Authorization": auth or await token(welink)}
    _, answer = await call(welink.url, "/api/messages/v2/card/common", body, headers=headers)
    return answer


async def test_token_answer_has_a_string_code_and_the_configured_lifetime(
    welink: RunningWeLink,
):
    welink.fake.expires_in = 1800
    status, body = await call(
        welink.url,
        "/api/auth/v2/tickets",
        {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert status == 200 and body["code"] == "0" and body["expires_in"] == 1800
    assert len(body["access_token"]) == 36


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_id": CLIENT_ID, "client_secret": "wrong"},
        {"client_id": "unknown", "client_secret": CLIENT_SECRET},
        {"client_id": CLIENT_ID},
        {},
    ],
)
async def test_token_is_refused_for_wrong_or_missing_credentials(
    welink: RunningWeLink, credentials
):
    _, body = await call(welink.url, "/api/auth/v2/tickets", credentials)
    assert body["code"] == "411007"


@pytest.mark.parametrize(
    ("auth", "code"),
    [("", "1000"), ("not-a-token", "47101"), ("5e2584ad-c6ca-4cf9-8513-8216e4759905", "1000")],
)
async def test_card_needs_a_valid_token(welink: RunningWeLink, auth, code):
    headers = {"x-wlk-Authorization": auth} if auth else {}
    _, body = await call(welink.url, "/api/messages/v2/card/common", CARD, headers=headers)
    assert body["code"] == code and welink.fake.cards == []


async def test_expired_token_is_refused_with_47103(welink: RunningWeLink):
    auth = await token(welink)
    welink.fake.expire_tokens()
    assert (await send(welink, CARD, auth))["code"] == "47103"


async def test_new_grant_needs_a_new_token(welink: RunningWeLink):
    welink.fake.apps[CLIENT_ID].grants.clear()
    old = await token(welink)
    assert (await send(welink, CARD, old))["code"] == "501"
    welink.fake.apps[CLIENT_ID].grants.add("card/common")
    assert (await send(welink, CARD, old))["code"] == "501"
    assert (await send(welink, CARD))["code"] == "0"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"msgOwner": "考勤考勤考勤考勤"}, "43011"),  # 24 bytes > 18
        ({"msgTitle": "x" * 129}, "43011"),
        ({"msgContent": "告" * 171}, "43011"),  # 513 bytes
        ({"msgTitle": None}, "43011"),
        ({"toUserList": []}, "51042"),
        ({"toUserList": [f"u{i}" for i in range(1001)]}, "51018"),
        ({"msgRange": "1"}, "51042"),  # by department, without departmentList
        ({"msgRange": "7"}, "43011"),
        ({"urlType": "app"}, "43011"),
        ({"receiveDeviceType": "3"}, "43011"),
        ({"publicAccID": "nobody"}, "51010"),
    ],
)
async def test_card_fields_are_checked_as_documented(welink: RunningWeLink, change, code):
    body = {**CARD, **change}
    assert (await send(welink, {k: v for k, v in body.items() if v is not None}))["code"] == code
    assert welink.fake.cards == []


async def test_card_limits_are_bytes_and_numeric_msg_range_is_accepted(welink: RunningWeLink):
    body = {**CARD, "msgContent": "告" * 170, "msgTitle": "x" * 128, "msgRange": 0}
    answer = await send(welink, body)
    assert answer["code"] == "0" and answer["itemId"] == welink.fake.cards[0].item_id


async def test_card_body_must_be_json(welink: RunningWeLink):
    headers = {"x-wlk-Authorization": await token(welink), "Content-Type": "text/plain"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            welink.url + "/api/messages/v2/card/common", data=b"{}", headers=headers
        ) as response,
    ):
        assert (await response.json())["code"] == "43011"


async def test_per_app_rate_limit_answers_48503(welink: RunningWeLink):
    welink.fake.per_second = 3
    auth = await token(welink)
    codes = [(await send(welink, CARD, auth))["code"] for _ in range(5)]
    assert codes == ["0", "0", "0", "48503", "48503"]


async def test_fake_is_served_by_the_fake_providers_command_with_a_demo_app():
    fakes = Plugins.load().fake_providers()
    assert "welink" in [f.name for f in fakes]
    async with serving(fake_providers_app(fakes)) as url:
        _, body = await call(
            url + "/welink",
            "/api/auth/v2/tickets",
            {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
        )
    assert body["code"] == "0"


async def test_faults_can_be_queued_and_cards_read_over_http_for_demos(welink: RunningWeLink):
    status, body = await call(
        welink.url, "/_fake/faults", {"where": "card", "code": "48503", "message": "busy"}
    )
    assert status == 200 and body["queued"]["card"] == 1
    assert (await send(welink, CARD))["code"] == "48503"
    assert (await send(welink, CARD))["code"] == "0"
    async with aiohttp.ClientSession() as http, http.get(welink.url + "/_fake/cards") as response:
        cards = (await response.json())["cards"]
    assert [c["msgTitle"] for c in cards] == ["出差电子流"]
    status, body = await call(welink.url, "/_fake/faults", {"nonsense": 1})
    assert status == 400
