"""WeCom end to end: accounts and messages through the gateway's HTTP API to the fake WeCom.

The gateway loads the wecom plugin through its entry point, exactly as in production; the
accounts point their ``endpoint`` at the fake on a real port.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from plugins.wecom.fake_state import AGENT_ID, CORP_ID, CORP_SECRET, ROBOT_KEY
from tests.gateway_fixtures import RunningGateway, unique
from tests.wecom_fixtures import WRONG_KEY, WRONG_SECRET, RunningWecom


async def _app_account(gw: RunningGateway, wecom: RunningWecom, **overrides) -> str:
    name = unique("wecom")
    config = {"corpid": CORP_ID, "corpsecret": CORP_SECRET, "agentid": AGENT_ID}
    config |= {"endpoint": wecom.url, **overrides}
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "wecom", "name": name, "config": config}
    )
    assert status == 201, body
    return name


async def _robot_account(gw: RunningGateway, wecom: RunningWecom, key: str = ROBOT_KEY) -> str:
    name = unique("robot")
    status, body = await gw.post(
        "/api/v1/accounts",
        {"channel": "wecom_robot", "name": name, "config": {"key": key, "endpoint": wecom.url}},
    )
    assert status == 201, body
    return name


@pytest.fixture
async def gw(make_gateway) -> RunningGateway:
    return await make_gateway()


async def test_app_message_ends_per_recipient_with_one_request_each(gw, wecom):
    account = await _app_account(gw, wecom)
    accepted = await gw.send(
        channel="wecom",
        account=account,
        recipients=["zhangsan", "party:1", "ghost", "tag:9"],
        subject="Disk alert",
        text="db-1 at 95%",
    )
    done = await gw.wait_done(accepted["id"])
    by = {d["recipient"]: d for d in done["deliveries"]}
    sent = [m for m in wecom.fake.messages]
    assert by["zhangsan"]["status"] == "sent" and by["party:1"]["status"] == "sent"
    assert {by["zhangsan"]["provider_id"], by["party:1"]["provider_id"]} == {m.msgid for m in sent}
    for stranger in ("ghost", "tag:9"):
        assert by[stranger]["status"] == "failed" and by[stranger]["last_code"] == "81013"
        assert "user & party & tag all invalid" in by[stranger]["last_error"]
        assert by[stranger]["attempts"] == 1  # permanent: not retried
    targets = sorted(m.touser + [f"party:{p}" for p in m.toparty] for m in sent)
    assert targets == [["party:1"], ["zhangsan"]]
    assert all(m.body["text"]["content"] == "Disk alert\ndb-1 at 95%" for m in sent)
    assert wecom.fake.gettoken_calls == 2  # validating the account, then the sends' cached one


async def test_textcard_options_reach_wecom_and_bad_ones_are_refused_at_accept(gw, wecom):
    account = await _app_account(gw, wecom)
    status, body = await gw.post(
        "/api/v1/messages",
        {
            "channel": "wecom",
            "account": account,
            "recipients": ["zhangsan"],
            "text": "t",
            "options": {"msgtype": "textcard"},
        },
    )
    assert status == 422 and body["error"]["field"] == "options.url", body
    status, body = await gw.post(
        "/api/v1/messages",
        {"channel": "wecom", "account": account, "recipients": ["a|b"], "text": "t"},
    )
    assert status == 422 and body["error"]["field"] == "recipients[0]", body
    accepted = await gw.send(
        channel="wecom",
        account=account,
        recipients=["lisi"],
        subject="Disk alert",
        text="db-1 at 95%",
        options={"msgtype": "textcard", "url": "https://console.example/42", "btntxt": "Open"},
    )
    done = await gw.wait_done(accepted["id"])
    assert done["deliveries"][0]["status"] == "sent"
    [received] = wecom.fake.messages
    assert received.body["textcard"]["title"] == "Disk alert"
    assert received.body["textcard"]["btntxt"] == "Open"


async def test_accounts_are_checked_against_wecom_when_saved_and_secrets_never_shown(gw, wecom):
    for channel, config, field in (
        (
            "wecom",
            {
                "corpid": CORP_ID,
                "corpsecret": WRONG_SECRET,
                "agentid": AGENT_ID,
                "endpoint": wecom.url,
            },
            "config.corpsecret",
        ),
        (
            "wecom",
            {
                "corpid": CORP_ID,
                "corpsecret": CORP_SECRET,
                "agentid": AGENT_ID + 1,
                "endpoint": wecom.url,
            },
            "config.agentid",
        ),
        ("wecom_robot", {"key": WRONG_KEY, "endpoint": wecom.url}, "config.key"),
    ):
        status, body = await gw.post(
            "/api/v1/accounts", {"channel": channel, "name": unique("bad"), "config": config}
        )
        assert status == 422 and body["error"]["field"] == field, body
        assert WRONG_SECRET not in str(body) and WRONG_KEY not in str(body)
    name = await _app_account(gw, wecom)
    status, body = await gw.get(f"/api/v1/accounts/{name}")
    assert status == 200 and CORP_SECRET not in str(body), body
    assert body["config"]["agentid"] == AGENT_ID


async def test_busy_wecom_and_a_revoked_token_are_retried_until_sent(gw, wecom):
    account = await _app_account(gw, wecom)
    wecom.fake.revoke_tokens()  # the token validation fetched is refused: refresh inside send
    wecom.fake.fail_next("message", errcode=-1)
    accepted = await gw.send(channel="wecom", account=account, recipients=["wangwu"], text="hi")
    done = await gw.wait_done(accepted["id"])
    [delivery] = done["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 2, delivery
    kinds = [e["kind"] for e in delivery["events"]]
    assert "retrying" in kinds and kinds[-1] == "sent"
    assert len(wecom.fake.messages) == 1


async def test_robot_messages_mention_each_recipient_once(gw, wecom):
    account = await _robot_account(gw, wecom)
    accepted = await gw.send(
        channel="wecom_robot",
        account=account,
        recipients=["wangqing", "13800001111", "@all"],
        text="deploy finished",
        options={"msgtype": "text"},
    )
    done = await gw.wait_done(accepted["id"])
    assert {d["status"] for d in done["deliveries"]} == {"sent"}
    posted = wecom.fake.robot_messages
    assert sorted(m.mentioned_list + m.mentioned_mobile_list for m in posted) == [
        ["13800001111"],
        ["@all"],
        ["wangqing"],
    ]


async def test_robot_is_paced_to_20_a_minute_so_wecom_never_throttles_it(gw, wecom):
    account = await _robot_account(gw, wecom)
    recipients = [f"user{i:02d}" for i in range(22)]
    accepted = await gw.send(
        channel="wecom_robot", account=account, recipients=recipients, text="flood"
    )
    deadline = time.monotonic() + 15
    while True:
        _, body = await gw.get(f"/api/v1/messages/{accepted['id']}")
        statuses = [d["status"] for d in body["deliveries"]]
        if statuses.count("sent") == 20 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # the two left over must still be waiting for their slots
    _, body = await gw.get(f"/api/v1/messages/{accepted['id']}")
    waiting = [d for d in body["deliveries"] if d["status"] != "sent"]
    assert len(wecom.fake.robot_messages) == 20 and len(waiting) == 2, body
    for d in waiting:
        assert d["status"] == "queued" and d["attempts"] == 0, d
        [deferred] = [e for e in d["events"] if e["kind"] == "deferred"]
        assert deferred["detail"]["rate_limit"].startswith("wecom_robot:")
        assert ROBOT_KEY not in str(deferred)
