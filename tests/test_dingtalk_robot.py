"""dingtalk_robot against the fake DingTalk: message types, mentions, every fault class, size
limits, the declared rate limit, account checks and validation."""

from __future__ import annotations

import asyncio
import socket

import msgspec
import pytest

from gateway.channel import AccountInvalid, Failed, RateLimit, Retry, Sent
from gateway.testing import channel_fixture
from plugins.dingtalk.account import RobotAccount
from plugins.dingtalk.mentions import Mention, parse_recipient
from plugins.dingtalk.options import Button, RobotOptions
from plugins.dingtalk.robot import DingTalkRobotChannel
from tests.dingtalk_support import (
    OPEN_ROBOT_TOKEN,
    ROBOT_SECRET,
    ROBOT_TOKEN,
    Fake,
    outgoing,
    robot_ref,
)

channel = channel_fixture(DingTalkRobotChannel)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def sent_body(channel, dingtalk: Fake, recipient: str, **fields) -> dict:
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing(recipient, **fields))
    assert isinstance(outcome, Sent), outcome
    return dingtalk.state.robot_posts[-1].body


# -- recipients and mentions --------------------------------------------------------------------


def test_recipients_map_to_mentions():
    assert parse_recipient("group") == Mention("group")
    assert parse_recipient("@all") == Mention("all")
    assert parse_recipient("13800001111") == Mention("mobile", "13800001111")
    assert parse_recipient("+86 13800001111") == Mention("mobile", "13800001111")
    assert parse_recipient("+86-13800001111") == Mention("mobile", "13800001111")
    assert parse_recipient("mobile:+852-91234567") == Mention("mobile", "+852-91234567")
    assert parse_recipient("manager4220") == Mention("userid", "manager4220")
    assert parse_recipient("userid:13800001111") == Mention("userid", "13800001111")
    assert parse_recipient("0447654442691174") == Mention("userid", "0447654442691174")


def test_check_recipient_refuses_what_is_no_robot_recipient(channel):
    for good in ("group", "@all", "13800001111", "user123", "mobile:12345678"):
        assert channel.check_recipient(good) is None, good
    for bad in ("", "two words", "a,b", "x" * 65, "mobile:abc", "userid:", "\x00"):
        assert channel.check_recipient(bad), bad


async def test_text_to_a_mobile_mentions_it_and_shows_it_in_the_text(channel, dingtalk):
    message = outgoing("13800001111", text="disk full")
    outcome = await channel.send(robot_ref(dingtalk.url), message)
    assert isinstance(outcome, Sent) and outcome.units == 1
    assert outcome.provider_id == message.delivery_id
    post = dingtalk.state.robot_posts[-1]
    assert post.signed and post.access_token == ROBOT_TOKEN
    assert post.body == {
        "msgtype": "text",
        "text": {"content": "disk full @13800001111"},
        "at": {"atMobiles": ["13800001111"], "isAtAll": False},
        "msgUuid": message.delivery_id,
    }


async def test_text_to_a_userid_all_and_group(channel, dingtalk):
    body = await sent_body(channel, dingtalk, "manager4220")
    assert body["at"] == {"atUserIds": ["manager4220"], "isAtAll": False}
    assert body["text"]["content"].endswith(" @manager4220")
    body = await sent_body(channel, dingtalk, "@all")
    assert body["at"] == {"isAtAll": True}
    assert body["text"]["content"] == "disk full on db-1"
    body = await sent_body(channel, dingtalk, "group")
    assert "at" not in body


async def test_mention_already_in_the_text_or_switched_off_is_not_added(channel, dingtalk):
    body = await sent_body(channel, dingtalk, "13800001111", text="@13800001111 disk full")
    assert body["text"]["content"] == "@13800001111 disk full"
    body = await sent_body(
        channel, dingtalk, "13800001111", options=RobotOptions(mention_in_text=False)
    )
    assert body["text"]["content"] == "disk full on db-1"
    assert body["at"]["atMobiles"] == ["13800001111"]


async def test_markdown_takes_the_title_option_else_the_subject(channel, dingtalk):
    options = RobotOptions(msgtype="markdown", title="Disk alert")
    body = await sent_body(
        channel, dingtalk, "13800001111", text="### db-1\n> 95%", options=options
    )
    assert body["msgtype"] == "markdown"
    assert body["markdown"] == {"title": "Disk alert", "text": "### db-1\n> 95%\n\n@13800001111"}
    assert body["at"]["atMobiles"] == ["13800001111"]
    body = await sent_body(
        channel,
        dingtalk,
        "group",
        text="### db-1",
        subject="Subject line",
        options=RobotOptions(msgtype="markdown"),
    )
    assert body["markdown"]["title"] == "Subject line"
    body = await sent_body(
        channel,
        dingtalk,
        "group",
        text="### db-1 full\nmore",
        options=RobotOptions(msgtype="markdown"),
    )
    assert body["markdown"]["title"] == "db-1 full"


async def test_action_card_with_one_button_or_several(channel, dingtalk):
    single = RobotOptions(
        msgtype="actionCard",
        title="Disk",
        single_title="Open",
        single_url="https://console.example/alerts/42",
    )
    body = await sent_body(channel, dingtalk, "group", text="### db-1\n95%", options=single)
    assert body["actionCard"] == {
        "title": "Disk",
        "text": "### db-1\n95%",
        "btnOrientation": "0",
        "singleTitle": "Open",
        "singleURL": "https://console.example/alerts/42",
    }
    buttons = RobotOptions(
        msgtype="actionCard",
        title="Approve?",
        btn_orientation="1",
        buttons=[Button("Yes", "https://x.example/yes"), Button("No", "https://x.example/no")],
    )
    body = await sent_body(channel, dingtalk, "group", options=buttons)
    assert body["actionCard"]["btns"] == [
        {"title": "Yes", "actionURL": "https://x.example/yes"},
        {"title": "No", "actionURL": "https://x.example/no"},
    ]
    assert body["actionCard"]["btnOrientation"] == "1" and "at" not in body


async def test_action_card_to_a_person_fails_without_posting(channel, dingtalk):
    options = RobotOptions(
        msgtype="actionCard", single_title="Open", single_url="https://x.example"
    )
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing("13800001111", options=options))
    assert isinstance(outcome, Failed) and outcome.code == "mention_unsupported"
    assert dingtalk.state.counts["robot"] == 0


def test_options_are_checked_when_a_message_is_accepted():
    def convert(options: dict) -> RobotOptions:
        return msgspec.convert(options, RobotOptions)

    assert convert({"msgtype": "markdown", "title": "t"}).title == "t"
    bad = [
        {"msgtype": "image"},
        {"msgtype": "actionCard"},
        {"msgtype": "actionCard", "single_title": "Open"},
        {
            "msgtype": "actionCard",
            "single_title": "a",
            "single_url": "https://x",
            "buttons": [{"title": "b", "url": "https://y"}],
        },
        {"msgtype": "text", "buttons": [{"title": "b", "url": "https://y"}]},
        {"msgtype": "actionCard", "single_title": "Open", "single_url": "javascript:alert(1)"},
        {"title": "x" * 257},
        {"colour": "red"},
        {
            "msgtype": "actionCard",
            "buttons": [{"title": "b", "url": "https://y/" + "p" * 2000}] * 10,
        },
    ]
    for options in bad:
        with pytest.raises(msgspec.ValidationError):
            convert(options)


# -- size limits --------------------------------------------------------------------------------


async def test_text_over_the_declared_limit_fails_before_posting_and_cjk_goes_unescaped(
    channel, dingtalk
):
    assert channel.max_text_bytes == 18_000
    ok = await channel.send(robot_ref(dingtalk.url), outgoing(text="磁" * 6000))  # 18 000 bytes
    assert isinstance(ok, Sent), ok  # escaped as \uXXXX it would be 36 000 bytes
    too_big = await channel.send(robot_ref(dingtalk.url), outgoing(text="磁" * 6001))
    assert isinstance(too_big, Failed) and too_big.code == "too_large"
    assert "18000" in too_big.reason
    assert dingtalk.state.counts["robot"] == 1


async def test_body_over_20000_bytes_after_json_escaping_fails_before_posting(channel, dingtalk):
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing(text='"' * 9990))
    assert isinstance(outcome, Failed) and outcome.code == "too_large"
    assert "20000" in outcome.reason and dingtalk.state.counts["robot"] == 0


async def test_fake_refuses_a_body_over_20000_bytes(dingtalk):
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{dingtalk.url}/robot/send?access_token={OPEN_ROBOT_TOKEN}",
            data=msgspec.json.encode({"msgtype": "text", "text": {"content": "x" * 20_000}}),
        ) as response,
    ):
        answer = await response.json()
    assert answer["errcode"] != 0 and "20000bytes" in answer["errmsg"]


async def test_message_without_text_fails(channel, dingtalk):
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing(text=None, html="<p>hi</p>"))
    assert isinstance(outcome, Failed) and outcome.code == "empty"


# -- faults -------------------------------------------------------------------------------------


async def test_provider_5xx_is_retried(channel, dingtalk):
    dingtalk.state.fail_next("robot", status=503)
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing())
    assert isinstance(outcome, Retry) and outcome.code == "503"


@pytest.mark.parametrize("errcode", [130101, 660026, 410100])
async def test_throttled_robot_is_retried_after_its_ten_minute_block(channel, dingtalk, errcode):
    dingtalk.state.fail_next("robot", body={"errcode": errcode, "errmsg": "send too fast"})
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing())
    assert isinstance(outcome, Retry) and outcome.code == str(errcode) and outcome.after == 600


async def test_system_busy_is_retried(channel, dingtalk):
    dingtalk.state.fail_next("robot", body={"errcode": -1, "errmsg": "系统繁忙"})
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing())
    assert isinstance(outcome, Retry) and outcome.code == "-1"


async def test_slow_answer_is_retried_and_msguuid_keeps_the_retry_from_posting_twice(
    channel, dingtalk
):
    account = robot_ref(dingtalk.url, timeout=0.2)
    message = outgoing()
    dingtalk.state.fail_next("robot", delay=0.5)  # the fake still posts it, after we gave up
    outcome = await channel.send(account, message)
    assert isinstance(outcome, Retry) and outcome.code == "timeout"
    await asyncio.sleep(0.5)
    again = await channel.send(account, message)  # the gateway's retry of the same delivery
    assert isinstance(again, Sent)
    assert dingtalk.state.counts["robot_ok"] == 1 and dingtalk.state.counts["robot_duplicate"] == 1
    assert len(dingtalk.state.robot_posts) == 1


async def test_fake_robot_window_answers_130101_after_20_posts_and_blocks(channel, dingtalk):
    account = robot_ref(dingtalk.url, per_minute=1000)  # the channel would pace; call it directly
    outcomes = [await channel.send(account, outgoing()) for _ in range(21)]
    assert all(isinstance(o, Sent) for o in outcomes[:20])
    assert isinstance(outcomes[20], Retry) and outcomes[20].code == "130101"
    dingtalk.state.skew = 61.0  # the minute has passed, the 10-minute block has not
    assert isinstance(await channel.send(account, outgoing()), Retry)
    dingtalk.state.skew = 601.0
    assert isinstance(await channel.send(account, outgoing()), Sent)


async def test_unknown_token_fails_with_dingtalks_code(channel, dingtalk):
    outcome = await channel.send(robot_ref(dingtalk.url, access_token="no-such-robot"), outgoing())
    assert isinstance(outcome, Failed) and outcome.code == "300005"
    assert "no-such-robot" not in outcome.reason


async def test_keyword_robot_refuses_text_without_a_keyword(channel, dingtalk):
    dingtalk.state.add_robot("keyword-robot", keywords=("监控报警", "alert"))
    account = robot_ref(dingtalk.url, access_token="keyword-robot", secret=None)
    refused = await channel.send(account, outgoing(text="disk full"))
    assert isinstance(refused, Failed) and refused.code == "310000"
    assert "keyword" in refused.reason
    assert isinstance(await channel.send(account, outgoing(text="alert: disk full")), Sent)


async def test_ip_allow_list_refuses_other_hosts(channel, dingtalk):
    dingtalk.state.add_robot("ip-robot", allow_ips=("10.0.0.0/8",))
    refused = await channel.send(
        robot_ref(dingtalk.url, access_token="ip-robot", secret=None), outgoing()
    )
    assert isinstance(refused, Failed) and "allow-list" in refused.reason
    dingtalk.state.add_robot("ip-robot-2", allow_ips=("127.0.0.1",))
    account = robot_ref(dingtalk.url, access_token="ip-robot-2", secret=None)
    assert isinstance(await channel.send(account, outgoing()), Sent)


async def test_one_refused_timestamp_is_retried_with_a_fresh_one(channel, dingtalk):
    dingtalk.state.fail_next("robot", body={"errcode": 310000, "errmsg": "invalid timestamp"})
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing())
    assert isinstance(outcome, Sent) and dingtalk.state.counts["robot"] == 2


async def test_signed_robot_without_the_secret_in_the_account_fails_clearly(channel, dingtalk):
    outcome = await channel.send(robot_ref(dingtalk.url, secret=None), outgoing())
    assert isinstance(outcome, Failed) and "secret" in outcome.reason
    assert dingtalk.state.counts["robot"] == 1  # no retry: a new timestamp cannot help


async def test_unsigned_robot_needs_no_secret(channel, dingtalk):
    account = robot_ref(dingtalk.url, access_token=OPEN_ROBOT_TOKEN, secret=None)
    assert isinstance(await channel.send(account, outgoing()), Sent)
    assert dingtalk.state.robot_posts[-1].signed is False


async def test_answers_that_are_not_dingtalks_json(channel, dingtalk):
    dingtalk.state.fail_next("robot", status=200, body=["not", "an", "object"])
    outcome = await channel.send(robot_ref(dingtalk.url), outgoing())
    assert isinstance(outcome, Retry)
    wrong_path = robot_ref(dingtalk.url + "/nowhere")
    outcome = await channel.send(wrong_path, outgoing())
    assert isinstance(outcome, Retry | Failed) and outcome.code == "404"


async def test_refused_connection_is_retried_without_the_token_in_the_reason(channel):
    account = robot_ref(f"http://127.0.0.1:{closed_port()}")
    outcome = await channel.send(account, outgoing())
    assert isinstance(outcome, Retry) and outcome.code == "connect"
    assert ROBOT_TOKEN not in outcome.reason and ROBOT_SECRET not in outcome.reason


# -- rate limit ---------------------------------------------------------------------------------


def test_declares_the_robots_20_a_minute_without_its_token(channel):
    account = robot_ref("https://oapi.dingtalk.com")
    [limit] = channel.rate_limits(account, outgoing())
    assert limit == RateLimit(limit.key, 20, 60.0)
    assert limit.key.startswith("dingtalk_robot:") and ROBOT_TOKEN not in limit.key
    other = robot_ref("https://oapi.dingtalk.com", access_token="another-robot")
    assert channel.rate_limits(other, outgoing())[0].key != limit.key
    raised = robot_ref("https://oapi.dingtalk.com", per_minute=600)
    assert channel.rate_limits(raised, outgoing())[0].limit == 600


# -- accounts -----------------------------------------------------------------------------------


def test_account_config_is_checked_and_hides_its_secrets():
    account = robot_ref("https://oapi.dingtalk.com/").config
    assert account.endpoint == "https://oapi.dingtalk.com"
    assert ROBOT_TOKEN not in repr(account) and ROBOT_SECRET not in str(account)
    assert RobotAccount.secret_fields == {"access_token", "secret"}
    bad = [
        {"access_token": "t", "secret": "not-a-dingtalk-secret"},
        {"access_token": "https://oapi.dingtalk.com/robot/send?access_token=abc"},
        {"access_token": "has space"},
        {"access_token": "t", "endpoint": "ftp://x"},
        {"access_token": "t", "per_minute": 0},
        {"access_token": "t", "unknown": 1},
    ]
    for config in bad:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(config, RobotAccount)


async def test_validate_account_proves_token_and_secret_without_posting(channel, dingtalk):
    await channel.validate_account(robot_ref(dingtalk.url))
    await channel.validate_account(
        robot_ref(dingtalk.url, access_token=OPEN_ROBOT_TOKEN, secret=None)
    )
    assert len(dingtalk.state.robot_posts) == 0
    cases = {
        "access_token": robot_ref(dingtalk.url, access_token="no-such-robot"),
        "secret": robot_ref(dingtalk.url, secret="SECwrong-secret-abcdef"),
    }
    for field, account in cases.items():
        with pytest.raises(AccountInvalid) as raised:
            await channel.validate_account(account)
        assert raised.value.field == field, raised.value.reason
    with pytest.raises(AccountInvalid) as raised:
        await channel.validate_account(robot_ref(dingtalk.url, secret=None))
    assert raised.value.field == "secret" and "SEC" in raised.value.reason
    assert len(dingtalk.state.robot_posts) == 0


async def test_validate_account_takes_a_keyword_robot(channel, dingtalk):
    dingtalk.state.add_robot("keyword-robot", keywords=("alert",))
    await channel.validate_account(
        robot_ref(dingtalk.url, access_token="keyword-robot", secret=None)
    )


async def test_validate_account_names_the_endpoint_when_nothing_answers(channel):
    with pytest.raises(AccountInvalid) as raised:
        await channel.validate_account(robot_ref(f"http://127.0.0.1:{closed_port()}"))
    assert raised.value.field == "endpoint"
    assert ROBOT_TOKEN not in raised.value.reason
