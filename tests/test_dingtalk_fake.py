"""The fake DingTalk itself: token endpoints, recipient caps, control routes, and its mount in
``msggate fake-providers`` working with the demo accounts it prints."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from gateway.callbacks import fake_providers_app
from gateway.channel import Sent
from gateway.plugins import Plugins
from plugins.dingtalk.notice import DingTalkChannel
from plugins.dingtalk.robot import DingTalkRobotChannel
from tests.dingtalk_support import (
    AGENT_ID,
    APPKEY,
    APPSECRET,
    Fake,
    app_ref,
    outgoing,
    robot_ref,
)

ASYNCSEND = "/topapi/message/corpconversation/asyncsend_v2"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(http, method: str, url: str, **kwargs) -> tuple[int, dict]:
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.json()


async def token(http, dingtalk: Fake) -> str:
    _, answer = await call(
        http, "GET", f"{dingtalk.url}/gettoken", params={"appkey": APPKEY, "appsecret": APPSECRET}
    )
    return answer["access_token"]


async def test_gettoken_returns_the_same_token_while_it_is_valid(http, dingtalk):
    first, second = await token(http, dingtalk), await token(http, dingtalk)
    assert first == second
    status, answer = await call(
        http, "GET", f"{dingtalk.url}/gettoken", params={"appkey": APPKEY, "appsecret": "nope"}
    )
    assert status == 200 and answer == {"errcode": 40096, "errmsg": "不合法的appKey或appSecret"}
    dingtalk.state.expire_tokens()
    assert await token(http, dingtalk) != first


async def test_v1_oauth2_access_token_endpoint(http, dingtalk):
    status, answer = await call(
        http,
        "POST",
        f"{dingtalk.url}/v1.0/oauth2/accessToken",
        json={"appKey": APPKEY, "appSecret": APPSECRET},
    )
    assert status == 200 and answer["expireIn"] == 7200 and answer["accessToken"]
    status, answer = await call(
        http, "POST", f"{dingtalk.url}/v1.0/oauth2/accessToken", json={"appKey": APPKEY}
    )
    assert status == 400 and answer["code"] == "invalidClientIdOrSecret"


async def test_asyncsend_checks_token_recipients_and_the_legacy_cap(http, dingtalk):
    url = f"{dingtalk.url}{ASYNCSEND}"
    msg = {"msgtype": "text", "text": {"content": "hi"}}
    _, blank = await call(http, "POST", url, json={"agent_id": AGENT_ID, "msg": msg})
    assert (blank["errcode"], blank["sub_code"]) == (88, "40000")
    _, bad = await call(http, "POST", url, params={"access_token": "forged"}, json={})
    assert (bad["errcode"], bad["sub_code"]) == (88, "40014")
    params = {"access_token": await token(http, dingtalk)}
    _, nobody = await call(
        http, "POST", url, params=params, json={"agent_id": AGENT_ID, "msg": msg}
    )
    assert nobody["errcode"] == 88 and "userid_list" in nobody["sub_msg"]
    _, no_msg = await call(
        http, "POST", url, params=params, json={"agent_id": AGENT_ID, "userid_list": "a"}
    )
    assert no_msg["errcode"] == 88
    many = ",".join(f"u{i}" for i in range(101))
    body = {"agent_id": AGENT_ID, "userid_list": many, "msg": msg}
    _, ok = await call(http, "POST", url, params=params, json=body)
    assert ok["errcode"] == 0 and ok["task_id"]
    dingtalk.state.legacy_limits = True
    _, capped = await call(http, "POST", url, params=params, json=body)
    assert capped["errcode"] == 88 and "100" in capped["sub_msg"]


async def test_getsendresult_knows_only_the_apps_own_tasks(http, dingtalk):
    params = {"access_token": await token(http, dingtalk)}
    url = f"{dingtalk.url}/topapi/message/corpconversation/getsendresult"
    _, answer = await call(
        http, "POST", url, params=params, json={"agent_id": AGENT_ID, "task_id": 1}
    )
    assert answer["errcode"] == 88 and "task_id" in answer["sub_msg"]


async def test_control_routes_add_robots_inject_faults_and_count(http, dingtalk):
    status, _ = await call(
        http,
        "POST",
        f"{dingtalk.url}/_fake/robots",
        json={"access_token": "bench", "per_minute": 5000},
    )
    assert status == 201 and dingtalk.state.robots["bench"].per_minute == 5000
    status, _ = await call(
        http, "POST", f"{dingtalk.url}/_fake/faults", json={"route": "robot", "status": 503}
    )
    assert status == 201
    status, answer = await call(
        http, "POST", f"{dingtalk.url}/_fake/faults", json={"route": "nope"}
    )
    assert status == 400 and "unknown route" in answer["error"]
    channel = DingTalkRobotChannel()
    try:
        account = robot_ref(dingtalk.url, access_token="bench", secret=None)
        first = await channel.send(account, outgoing())
        second = await channel.send(account, outgoing())
    finally:
        await channel.close()
    assert first.code == "503" and isinstance(second, Sent)
    _, summary = await call(http, "GET", f"{dingtalk.url}/_fake/state")
    assert summary["counts"]["robot"] == 2 and summary["counts"]["robot_ok"] == 1


async def test_fake_providers_mounts_the_fake_and_its_demo_accounts_work():
    fakes = {f.name: f for f in Plugins.load().fake_providers()}
    assert "demo-robot-token" in fakes["dingtalk"].description
    runner = web.AppRunner(fake_providers_app([fakes["dingtalk"]]), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/dingtalk"
    robot, notices = DingTalkRobotChannel(), DingTalkChannel()
    try:
        robot_account = robot_ref(
            endpoint, access_token="demo-robot-token", secret="SECdemo-robot-secret"
        )
        await robot.validate_account(robot_account)
        assert isinstance(await robot.send(robot_account, outgoing("13800001111")), Sent)
        app_account = app_ref(
            endpoint, appkey="demo-appkey", appsecret="demo-appsecret", agent_id=1000001
        )
        await notices.validate_account(app_account)
        assert isinstance(await notices.send(app_account, outgoing("anyone")), Sent)
        async with aiohttp.ClientSession() as http:
            _, summary = await call(http, "GET", f"{endpoint}/_fake/state")
        assert summary["counts"]["robot_ok"] == 1 and summary["notices"] == 1
    finally:
        await robot.close()
        await notices.close()
        await runner.cleanup()
