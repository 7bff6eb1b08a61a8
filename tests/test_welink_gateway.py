"""WeLink end to end: accounts and messages through a running gateway to the fake WeLink API."""

from __future__ import annotations

import json

from gateway.plugins import Plugins
from plugins.welink import plugin as welink_plugin
from plugins.welink.channel import WeLinkChannel
from tests.gateway_fixtures import RunningGateway, unique
from tests.welink_fixtures import CLIENT_ID, CLIENT_SECRET, WRONG_SECRET, RunningWeLink


async def welink_gateway(make_gateway, welink: RunningWeLink) -> tuple[RunningGateway, str]:
    """A gateway with the welink plugin (as its entry point loads it) and an account on the fake."""
    plugins = Plugins.load(extra=[("welink", welink_plugin)], entry_points=False)
    gw = await make_gateway(plugins=plugins)
    account = unique("welink")
    status, body = await gw.post(
        "/api/v1/accounts",
        {
            "channel": "welink",
            "name": account,
            "config": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "endpoint": welink.url,
                "msg_owner": "运维",
            },
        },
    )
    assert status == 201, body
    assert body["config"]["client_secret"] != CLIENT_SECRET  # masked, never returned
    return gw, account


def test_the_welink_entry_point_provides_the_channel():
    assert isinstance(Plugins.load().channel("welink"), WeLinkChannel)


async def test_account_with_a_wrong_secret_is_refused_with_welinks_reason(
    make_gateway, welink: RunningWeLink
):
    plugins = Plugins.load(extra=[("welink", welink_plugin)], entry_points=False)
    gw = await make_gateway(plugins=plugins, dispatch=False)
    status, body = await gw.post(
        "/api/v1/accounts",
        {
            "channel": "welink",
            "name": unique("welink"),
            "config": {
                "client_id": CLIENT_ID,
                "client_secret": WRONG_SECRET,
                "endpoint": welink.url,
            },
        },
    )
    assert status == 422, body
    assert body["error"]["field"] == "config.client_secret"
    assert "411007" in body["error"]["message"] and WRONG_SECRET not in json.dumps(body)


async def test_message_is_delivered_as_a_card_with_its_options(make_gateway, welink: RunningWeLink):
    gw, account = await welink_gateway(make_gateway, welink)
    accepted = await gw.send(
        channel="welink",
        account=account,
        recipients=["john@welink", "jane@welink"],
        subject="磁盘告警",
        text="db-1 磁盘使用率 95%",
        options={"url": "https://console.example/alerts/42", "force_tips": True},
    )
    done = await gw.wait_done(accepted["id"])
    assert {d["status"] for d in done["deliveries"]} == {"sent"}
    by_user = {c.body["toUserList"][0]: c for c in welink.fake.cards}
    assert set(by_user) == {"john@welink", "jane@welink"}
    for delivery in done["deliveries"]:
        received = by_user[delivery["recipient"]]
        assert delivery["provider_id"] == received.item_id and delivery["units"] == 1
        assert received.body["msgTitle"] == "磁盘告警" and received.body["msgOwner"] == "运维"
        assert received.body["urlPath"] == "https://console.example/alerts/42"
        assert received.body["isForceTips"] == 1
    assert welink.fake.token_requests == 2  # one to validate the account, one for both sends


async def test_bad_options_and_recipients_are_refused_at_accept(
    make_gateway, welink: RunningWeLink
):
    gw, account = await welink_gateway(make_gateway, welink)
    message = {"channel": "welink", "account": account, "recipients": ["john@welink"]}
    status, body = await gw.post(
        "/api/v1/messages", {**message, "text": "t", "options": {"title": "标" * 43}}
    )
    assert status == 422 and body["error"]["field"] == "options.title", body
    assert "129 bytes" in body["error"]["message"]
    status, body = await gw.post(
        "/api/v1/messages", {**message, "text": "t", "options": {"colour": "red"}}
    )
    assert status == 422 and body["error"]["field"].startswith("options"), body
    status, body = await gw.post(
        "/api/v1/messages", {**message, "recipients": ["two users"], "text": "t"}
    )
    assert status == 422 and body["error"]["field"] == "recipients[0]", body


async def test_rate_limited_card_is_retried_after_the_window_and_sent(
    make_gateway, welink: RunningWeLink
):
    gw, account = await welink_gateway(make_gateway, welink)
    welink.fake.fail_next("card", "48503", "frequency over limit: 40 per second")
    accepted = await gw.send(channel="welink", account=account, recipients=["a@welink"], text="x")
    done = await gw.wait_done(accepted["id"])
    [delivery] = done["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 2
    retry = next(e for e in delivery["events"] if e["kind"] == "retrying")
    assert retry["detail"]["code"] == "48503"


async def test_expired_token_is_refreshed_within_the_same_attempt(
    make_gateway, welink: RunningWeLink
):
    gw, account = await welink_gateway(make_gateway, welink)
    welink.fake.expire_tokens()  # the token the account check fetched is no longer good
    accepted = await gw.send(channel="welink", account=account, recipients=["a@welink"], text="x")
    [delivery] = (await gw.wait_done(accepted["id"]))["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 1


async def test_permanent_and_size_failures_keep_welinks_code_and_reason(
    make_gateway, welink: RunningWeLink
):
    gw, account = await welink_gateway(make_gateway, welink)
    welink.fake.fail_next("card", "51019", "不能给非粉丝用户推送消息")
    first = await gw.send(channel="welink", account=account, recipients=["a@welink"], text="x")
    [delivery] = (await gw.wait_done(first["id"]))["deliveries"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["last_code"] == "51019"
    assert delivery["last_error"] == "WeLink 51019: 不能给非粉丝用户推送消息"
    status, body = await gw.post(
        "/api/v1/messages",
        {"channel": "welink", "account": account, "recipients": ["a@welink"], "text": "告" * 200},
    )
    assert status == 422 and body["error"]["field"] == "text", body  # max_text_bytes = 512
    assert "600 bytes" in body["error"]["message"]
    long_title = await gw.send(
        channel="welink", account=account, recipients=["a@welink"], subject="标" * 43, text="x"
    )
    [delivery] = (await gw.wait_done(long_title["id"]))["deliveries"]
    assert delivery["status"] == "failed" and delivery["last_code"] == "size"
    assert "129 bytes" in delivery["last_error"]
