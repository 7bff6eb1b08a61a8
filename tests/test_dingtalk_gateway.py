"""Both DingTalk channels end to end: a real gateway (``make_gateway``, real PostgreSQL, the
installed plugins) against the fake DingTalk — accounts checked when saved, messages delivered
signed, faults retried, the robot's rate limit deferring deliveries, send results as receipts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from plugins.dingtalk.notice import DingTalkChannel
from tests.dingtalk_support import (
    AGENT_ID,
    APPKEY,
    APPSECRET,
    ROBOT_SECRET,
    ROBOT_TOKEN,
    Fake,
    app_ref,
)
from tests.gateway_fixtures import unique


async def poll(gw, message_id: str, done: Callable[[dict], bool], timeout: float = 20) -> dict:
    """The message once ``done(message)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        status, message = await gw.get(f"/api/v1/messages/{message_id}")
        assert status == 200, message
        if done(message):
            return message
        assert time.monotonic() < deadline, f"not done in {timeout}s: {message}"
        await asyncio.sleep(0.05)


async def robot_account(gw, dingtalk: Fake, **config) -> str:
    name = unique("robot")
    config = {
        "access_token": ROBOT_TOKEN,
        "secret": ROBOT_SECRET,
        "endpoint": dingtalk.url,
        **config,
    }
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "dingtalk_robot", "name": name, "config": config}
    )
    assert status == 201, body
    return name


async def app_account(gw, dingtalk: Fake) -> str:
    name = unique("app")
    config = {
        "appkey": APPKEY,
        "appsecret": APPSECRET,
        "agent_id": AGENT_ID,
        "endpoint": dingtalk.url,
    }
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "dingtalk", "name": name, "config": config}
    )
    assert status == 201, body
    return name


async def test_robot_messages_are_delivered_signed_with_their_mentions(make_gateway, dingtalk):
    gw = await make_gateway()
    account = await robot_account(gw, dingtalk)
    status, shown = await gw.get(f"/api/v1/accounts/{account}")
    assert status == 200 and ROBOT_TOKEN not in str(shown) and ROBOT_SECRET not in str(shown)
    accepted = await gw.send(
        channel="dingtalk_robot",
        account=account,
        recipients=["13800001111", "manager4220", "@all"],
        subject="Disk alert",
        text="### db-1\n> 95% full",
        options={"msgtype": "markdown"},
    )
    done = await gw.wait_done(accepted["id"])
    assert {d["status"] for d in done["deliveries"]} == {"sent"}
    posts = {p.body["msgUuid"]: p for p in dingtalk.state.robot_posts}
    for delivery in done["deliveries"]:
        post = posts[delivery["id"]]  # the delivery id is the idempotency key DingTalk sees
        assert post.signed and post.body["markdown"]["title"] == "Disk alert"
    ats = sorted(str(p.body["at"]) for p in posts.values())
    assert ats == sorted(
        [
            str({"atMobiles": ["13800001111"], "isAtAll": False}),
            str({"atUserIds": ["manager4220"], "isAtAll": False}),
            str({"isAtAll": True}),
        ]
    )


async def test_robot_account_with_a_wrong_secret_is_refused_when_saved(make_gateway, dingtalk):
    gw = await make_gateway()
    config = {
        "access_token": ROBOT_TOKEN,
        "secret": "SECnot-the-secret-1234",
        "endpoint": dingtalk.url,
    }
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "dingtalk_robot", "name": unique("bad"), "config": config}
    )
    assert status == 422 and body["error"]["field"] == "config.secret"
    assert "sign not match" in body["error"]["message"]
    assert len(dingtalk.state.robot_posts) == 0


async def test_bad_robot_options_and_recipients_are_refused_on_accept(make_gateway, dingtalk):
    gw = await make_gateway()
    account = await robot_account(gw, dingtalk)
    message = {"channel": "dingtalk_robot", "account": account, "text": "t"}
    status, body = await gw.post(
        "/api/v1/messages",
        {**message, "recipients": ["group"], "options": {"msgtype": "actionCard"}},
    )
    assert status == 422 and body["error"]["field"].startswith("options")
    status, body = await gw.post("/api/v1/messages", {**message, "recipients": ["two words"]})
    assert status == 422 and body["error"]["field"] == "recipients[0]"


async def test_robot_5xx_is_retried_by_the_gateway_and_posted_once(make_gateway, dingtalk):
    gw = await make_gateway()
    account = await robot_account(gw, dingtalk)
    dingtalk.state.fail_next("robot", status=503)
    accepted = await gw.send(
        channel="dingtalk_robot", account=account, recipients=["group"], text="x"
    )
    [delivery] = (await gw.wait_done(accepted["id"]))["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 2
    assert dingtalk.state.counts["robot_ok"] == 1


async def test_robot_wrong_token_fails_with_dingtalks_code(make_gateway, dingtalk):
    gw = await make_gateway()
    account = await robot_account(gw, dingtalk)
    dingtalk.state.robots.pop(ROBOT_TOKEN)  # the robot was removed from its group
    accepted = await gw.send(
        channel="dingtalk_robot", account=account, recipients=["group"], text="x"
    )
    [delivery] = (await gw.wait_done(accepted["id"]))["deliveries"]
    assert delivery["status"] == "failed" and delivery["last_code"] == "300005"
    assert delivery["attempts"] == 1


async def test_robot_rate_limit_defers_deliveries_beyond_it(make_gateway, dingtalk):
    gw = await make_gateway()
    account = await robot_account(gw, dingtalk, per_minute=2)
    accepted = await gw.send(
        channel="dingtalk_robot",
        account=account,
        recipients=["group", "@all", "13800001111"],
        text="x",
    )

    def two_sent_one_deferred(message: dict) -> bool:
        kinds = [e["kind"] for d in message["deliveries"] for e in d["events"]]
        return kinds.count("sent") == 2 and "deferred" in kinds

    # two go now; the third waits for its slot a minute later: not an attempt, not a failure
    done = await poll(gw, accepted["id"], two_sent_one_deferred)
    assert sorted(d["status"] for d in done["deliveries"]) == ["queued", "sent", "sent"]
    [waiting] = [d for d in done["deliveries"] if d["status"] == "queued"]
    assert waiting["attempts"] == 0 and waiting["events"][-1]["kind"] == "deferred"
    assert ROBOT_TOKEN not in str(waiting["events"])  # the limit's key does not show the token
    assert dingtalk.state.counts["robot_ok"] == 2


async def test_work_notices_are_sent_and_send_results_update_delivery_status(
    make_gateway, dingtalk
):
    gw = await make_gateway()
    account = await app_account(gw, dingtalk)
    accepted = await gw.send(
        channel="dingtalk",
        account=account,
        recipients=["manager4220", "nobody42"],
        text="disk full",
        options={"msgtype": "markdown", "title": "Disk"},
    )
    done = await gw.wait_done(accepted["id"])
    by_user = {d["recipient"]: d for d in done["deliveries"]}
    assert {d["status"] for d in by_user.values()} == {"sent"}
    task_ids = {d["provider_id"] for d in by_user.values()}
    assert task_ids == {str(t) for t in dingtalk.state.notices}
    # a poller's work: getsendresult per task, applied as receipts
    channel = gw.services.plugins.channel("dingtalk")
    assert isinstance(channel, DingTalkChannel)
    ref = app_ref(dingtalk.url)  # the account's config, as the gateway hands it to the channel
    dingtalk.state.mark_read(int(by_user["manager4220"]["provider_id"]), "manager4220")
    for delivery in by_user.values():
        receipts = await channel.send_result(ref, delivery["provider_id"])
        assert await gw.services.receipts.record("dingtalk", receipts) == 1
    done = await gw.wait_done(accepted["id"], statuses=frozenset({"delivered", "undelivered"}))
    by_user = {d["recipient"]: d for d in done["deliveries"]}
    assert by_user["manager4220"]["status"] == "delivered"
    assert by_user["nobody42"]["status"] == "undelivered"
    assert by_user["nobody42"]["last_code"] == "invalid_user"


async def test_expired_token_is_refreshed_inside_one_attempt(make_gateway, dingtalk):
    gw = await make_gateway()
    account = await app_account(gw, dingtalk)
    first = await gw.send(channel="dingtalk", account=account, recipients=["user123"], text="a")
    await gw.wait_done(first["id"])
    dingtalk.state.expire_tokens()
    second = await gw.send(channel="dingtalk", account=account, recipients=["user123"], text="b")
    [delivery] = (await gw.wait_done(second["id"]))["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 1
    assert dingtalk.state.counts["gettoken"] >= 2


async def test_app_account_with_a_wrong_secret_is_refused_when_saved(make_gateway, dingtalk):
    gw = await make_gateway()
    config = {
        "appkey": APPKEY,
        "appsecret": "wrong-secret",
        "agent_id": AGENT_ID,
        "endpoint": dingtalk.url,
    }
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "dingtalk", "name": unique("bad"), "config": config}
    )
    assert status == 422 and body["error"]["field"] == "config.appsecret"
    assert "不合法的appKey或appSecret" in body["error"]["message"]
