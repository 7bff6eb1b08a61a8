"""The fake WeCom checks requests the way WeCom does (spec §1.6), over raw HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.plugins import Plugins
from plugins.wecom.fake import running_fake
from plugins.wecom.fake_state import AGENT_ID, CORP_ID, CORP_SECRET, ROBOT_KEY, FakeWecom
from tests.wecom_fixtures import RunningWecom


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(http: aiohttp.ClientSession, url: str, **params: Any) -> dict:
    async with http.get(url, params=params) as response:
        assert response.status == 200
        return await response.json()


async def _post(http: aiohttp.ClientSession, url: str, body: Any, **params: Any) -> dict:
    async with http.post(url, params=params, json=body) as response:
        assert response.status == 200
        return await response.json()


async def _token(http: aiohttp.ClientSession, wecom: RunningWecom) -> str:
    answer = await _get(
        http, f"{wecom.url}/cgi-bin/gettoken", corpid=CORP_ID, corpsecret=CORP_SECRET
    )
    return answer["access_token"]


def _text(touser: str = "zhangsan", content: str = "hi", **extra: Any) -> dict:
    body = {"touser": touser, "msgtype": "text", "agentid": AGENT_ID}
    return body | {"text": {"content": content}} | extra


# -- gettoken ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"corpsecret": CORP_SECRET}, 41002),
        ({"corpid": CORP_ID}, 41004),
        ({"corpid": "ww-unknown", "corpsecret": CORP_SECRET}, 40013),
        ({"corpid": CORP_ID, "corpsecret": "not-the-secret"}, 40001),
    ],
)
async def test_gettoken_refuses_missing_or_wrong_credentials_with_wecom_errcodes(
    wecom, http, params, errcode
):
    answer = await _get(http, f"{wecom.url}/cgi-bin/gettoken", **params)
    assert answer["errcode"] == errcode and "access_token" not in answer
    assert (
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        in (answer["errmsg"])
    )


async def test_gettoken_returns_the_same_token_inside_its_validity_and_a_new_one_after(http):
    now = [1000.0]
    fake = FakeWecom(token_lifetime=60, clock=lambda: now[0])
    async with running_fake(fake) as running:
        target = RunningWecom(fake, running.url)
        first, again = await _token(http, target), await _token(http, target)
        assert first == again and len(first) >= 32
        now[0] += 61
        assert await _token(http, target) != first
    assert fake.gettoken_calls == 3


# -- tokens on message/send --------------------------------------------------------------------


async def test_send_without_a_token_is_41001_and_with_an_unknown_one_40014(wecom, http):
    url = f"{wecom.url}/cgi-bin/message/send"
    assert (await _post(http, url, _text()))["errcode"] == 41001
    assert (await _post(http, url, _text(), access_token="forged"))["errcode"] == 40014


async def test_revoked_token_gets_40014_and_expired_token_42001(wecom, http):
    url = f"{wecom.url}/cgi-bin/message/send"
    token = await _token(http, wecom)
    wecom.fake.revoke_tokens()
    assert (await _post(http, url, _text(), access_token=token))["errcode"] == 40014
    token = await _token(http, wecom)
    wecom.fake.expire_tokens()
    assert (await _post(http, url, _text(), access_token=token))["errcode"] == 42001
    assert (await _post(http, url, _text(), access_token=await _token(http, wecom)))["errcode"] == 0


# -- message/send checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "errcode"),
    [
        ({"agentid": str(AGENT_ID)}, 40056),  # a string: WeCom wants an integer
        ({"agentid": AGENT_ID + 1}, 40056),  # not the token's application
        ({"agentid": None}, 41011),
        ({"msgtype": "voice"}, 40008),
        ({"text": {"content": ""}}, 44004),
        ({"text": {"content": "x" * 2049}}, 45002),
        ({"touser": ""}, 82001),
        ({"touser": "ghost|nobody"}, 81013),
        ({"toparty": "|".join(str(i) for i in range(101))}, 82002),
        ({"totag": "|".join(str(i) for i in range(101))}, 82003),
        ({"safe": 2}, 40058),
    ],
)
async def test_message_send_refuses_what_wecom_refuses(wecom, http, change, errcode):
    body = {k: v for k, v in (_text() | change).items() if v is not None}
    token = await _token(http, wecom)
    answer = await _post(http, f"{wecom.url}/cgi-bin/message/send", body, access_token=token)
    assert answer["errcode"] == errcode, answer
    assert wecom.fake.messages == []


async def test_message_send_requires_a_json_content_type(wecom, http):
    token = await _token(http, wecom)
    async with http.post(
        f"{wecom.url}/cgi-bin/message/send",
        params={"access_token": token},
        data=b'{"touser": "zhangsan"}',
        headers={"Content-Type": "text/plain"},
    ) as response:
        assert (await response.json())["errcode"] == 47001


async def test_text_of_2048_utf8_bytes_is_taken_and_cjk_counts_three_bytes(wecom, http):
    token = await _token(http, wecom)
    url = f"{wecom.url}/cgi-bin/message/send"
    ok = await _post(http, url, _text(content="\u6d88" * 682 + "xx"), access_token=token)
    over = await _post(http, url, _text(content="\u6d88" * 683), access_token=token)
    assert ok["errcode"] == 0 and over["errcode"] == 45002


async def test_partial_failure_lists_invalid_recipients_lower_cased_and_sends_to_the_rest(
    wecom, http
):
    token = await _token(http, wecom)
    body = _text(touser="ZhangSan|Ghost", toparty="1|99", totag="7")
    answer = await _post(http, f"{wecom.url}/cgi-bin/message/send", body, access_token=token)
    assert answer["errcode"] == 0 and answer["msgid"]
    assert (answer["invaliduser"], answer["invalidparty"], answer["invalidtag"]) == (
        "ghost",
        "99",
        "7",
    )
    [received] = wecom.fake.messages
    assert received.delivered_to == ["zhangsan"] and received.msgid == answer["msgid"]


async def test_textcard_needs_title_description_url_and_long_fields_are_truncated(wecom, http):
    token = await _token(http, wecom)
    url = f"{wecom.url}/cgi-bin/message/send"
    card = {"title": "t", "description": "d", "url": "https://console.example/a"}

    def body(**fields: Any) -> dict:
        return {
            "touser": "zhangsan",
            "msgtype": "textcard",
            "agentid": AGENT_ID,
            "textcard": {**card, **fields},
        }

    for missing, errcode in (("title", 41016), ("description", 41033), ("url", 41010)):
        answer = await _post(http, url, body(**{missing: ""}), access_token=token)
        assert answer["errcode"] == errcode
    assert (await _post(http, url, body(url="ftp://x"), access_token=token))["errcode"] == 45034
    long_card = body(title="T" * 200, description="D" * 600, btntxt="More info")
    answer = await _post(http, url, long_card, access_token=token)
    assert answer["errcode"] == 0
    [received] = wecom.fake.messages
    assert received.truncated == ["title", "description", "btntxt"]
    assert len(received.body["textcard"]["title"]) == 128


async def test_messages_past_the_per_member_limit_are_dropped_silently(http):
    fake = FakeWecom(member_limit=2)
    async with running_fake(fake) as running:
        target = RunningWecom(fake, running.url)
        token = await _token(http, target)
        url = f"{target.url}/cgi-bin/message/send"
        answers = [await _post(http, url, _text(), access_token=token) for _ in range(3)]
    assert [a["errcode"] for a in answers] == [0, 0, 0]  # WeCom does not say
    assert [m.delivered_to for m in fake.messages] == [["zhangsan"], ["zhangsan"], []]
    assert fake.messages[2].dropped == ["zhangsan"]


async def test_agent_get_reads_only_the_tokens_own_application(wecom, http):
    token = await _token(http, wecom)
    url = f"{wecom.url}/cgi-bin/agent/get"
    answer = await _get(http, url, access_token=token, agentid=str(AGENT_ID))
    assert answer["errcode"] == 0 and answer["agentid"] == AGENT_ID and answer["close"] == 0
    assert {"userid": "zhangsan"} in answer["allow_userinfos"]["user"]
    other = await _get(http, url, access_token=token, agentid=str(AGENT_ID + 1))
    assert other["errcode"] == 40056


# -- robot ---------------------------------------------------------------------------------------


async def test_robot_unknown_key_is_93000_and_size_limits_are_40058(wecom, http):
    url = f"{wecom.url}/cgi-bin/webhook/send"
    text = {"msgtype": "text", "text": {"content": "hi"}}
    assert (await _post(http, url, text, key="nope"))["errcode"] == 93000
    long_text = {"msgtype": "text", "text": {"content": "x" * 2049}}
    assert (await _post(http, url, long_text, key=ROBOT_KEY))["errcode"] == 40058
    markdown = {"msgtype": "markdown", "markdown": {"content": "x" * 4096}}
    assert (await _post(http, url, markdown, key=ROBOT_KEY))["errcode"] == 0
    too_long = {"msgtype": "markdown", "markdown": {"content": "x" * 4097}}
    answer = await _post(http, url, too_long, key=ROBOT_KEY)
    assert answer["errcode"] == 40058 and "exceed max length 4096" in answer["errmsg"]
    assert (await _post(http, url, {"msgtype": "news"}, key=ROBOT_KEY))["errcode"] == 40008
    assert len(wecom.fake.robot_messages) == 1


async def test_robot_sliding_window_answers_45009_past_the_limit_until_it_slides(http):
    fake = FakeWecom(robot_limit=3, robot_window=0.5)
    async with running_fake(fake) as running:
        url = f"{running.url}/cgi-bin/webhook/send"
        text = {"msgtype": "text", "text": {"content": "hi"}}
        codes = [(await _post(http, url, text, key=ROBOT_KEY))["errcode"] for _ in range(4)]
        assert codes == [0, 0, 0, 45009]
        await asyncio.sleep(0.55)
        assert (await _post(http, url, text, key=ROBOT_KEY))["errcode"] == 0
    assert len(fake.robot_messages) == 4


# -- faults --------------------------------------------------------------------------------------


async def test_injected_faults_answer_busy_5xx_or_slowly_and_then_normally(wecom, http):
    fake = wecom.fake
    fake.fail_next("gettoken", errcode=-1)
    fake.fail_next("gettoken", status=503)
    fake.fail_next("gettoken", delay=0.3)
    url = f"{wecom.url}/cgi-bin/gettoken"
    assert (await _get(http, url, corpid=CORP_ID, corpsecret=CORP_SECRET))["errcode"] == -1
    async with http.get(url, params={"corpid": CORP_ID, "corpsecret": CORP_SECRET}) as response:
        assert response.status == 503
    started = time.monotonic()
    assert (await _get(http, url, corpid=CORP_ID, corpsecret=CORP_SECRET))["errcode"] == 0
    assert time.monotonic() - started >= 0.3
    assert fake.faults == []


async def test_recipient_faults_hold_for_every_send_to_that_recipient(wecom, http):
    wecom.fake.fail_recipient("busy-user", errcode=45009)
    token = await _token(http, wecom)
    url = f"{wecom.url}/cgi-bin/message/send"
    for _ in range(2):
        assert (await _post(http, url, _text("busy-user"), access_token=token))["errcode"] == 45009
    assert (await _post(http, url, _text(), access_token=token))["errcode"] == 0


async def test_requests_are_recorded_without_secrets(wecom, http):
    await _token(http, wecom)
    [(api, query, _)] = wecom.fake.requests
    assert api == "gettoken" and query == {"corpid": CORP_ID, "corpsecret": "***"}


def test_fake_is_offered_to_msggate_fake_providers_with_its_fixtures():
    [fake] = [f for f in Plugins.load().fake_providers() if f.name == "wecom"]
    assert CORP_ID in fake.description and ROBOT_KEY in fake.description
