"""The ``wecom_robot`` group-robot channel against the fake WeCom on a real port."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from gateway.channel import AccountInvalid, Failed, RateLimit, Retry, Sent
from gateway.redact import fingerprint
from plugins.wecom.account import WecomRobotAccount
from plugins.wecom.fake import running_fake
from plugins.wecom.fake_state import ROBOT_KEY, FakeWecom
from plugins.wecom.options import WecomRobotOptions
from plugins.wecom.robot import WecomRobotChannel
from tests.wecom_fixtures import WRONG_KEY, RunningWecom, message

MARKDOWN = WecomRobotOptions(msgtype="markdown")


@pytest.mark.parametrize(
    ("recipient", "mentions"),
    [
        ("wangqing", {"mentioned_list": ["wangqing"]}),
        ("@all", {"mentioned_list": ["@all"]}),
        ("13800001111", {"mentioned_mobile_list": ["13800001111"]}),
        ("+8613800001111", {"mentioned_mobile_list": ["+8613800001111"]}),
        ("mobile:85291234567", {"mentioned_mobile_list": ["85291234567"]}),
        ("userid:13800001111", {"mentioned_list": ["13800001111"]}),
    ],
)
async def test_text_message_mentions_the_recipient(wecom, robot_channel, recipient, mentions):
    outcome = await robot_channel.send(wecom.robot_account(), message(recipient, subject="Disk"))
    assert isinstance(outcome, Sent) and outcome.units == 1, outcome
    [posted] = wecom.fake.robot_messages
    assert posted.msgtype == "text" and posted.content == "Disk\ndb-1 disk at 95%"
    assert posted.mentioned_list == mentions.get("mentioned_list", [])
    assert posted.mentioned_mobile_list == mentions.get("mentioned_mobile_list", [])


async def test_markdown_message_mentions_a_userid_inside_its_content(wecom, robot_channel):
    outgoing = message("wangqing", subject="Alert", text="**95%**", options=MARKDOWN)
    assert isinstance(await robot_channel.send(wecom.robot_account(), outgoing), Sent)
    [posted] = wecom.fake.robot_messages
    assert posted.msgtype == "markdown" and posted.content == "**Alert**\n**95%**\n<@wangqing>"


@pytest.mark.parametrize("recipient", ["13800001111", "@all"])
async def test_markdown_cannot_mention_a_mobile_or_all_and_says_to_use_text(
    wecom, robot_channel, recipient
):
    outcome = await robot_channel.send(wecom.robot_account(), message(recipient, options=MARKDOWN))
    assert isinstance(outcome, Failed) and "use msgtype text" in outcome.reason
    assert wecom.fake.requests == []


@pytest.mark.parametrize(
    ("options", "text", "ok"),
    [
        (None, "\u6d88" * 682 + "xx", True),  # 2048 bytes
        (None, "\u6d88" * 683, False),
        (MARKDOWN, "x" * (4096 - len("\n<@wangqing>")), True),
        (MARKDOWN, "x" * (4097 - len("\n<@wangqing>")), False),  # the mention counts too
    ],
)
async def test_size_limits_are_text_2048_and_markdown_4096_bytes(
    wecom, robot_channel, options, text, ok
):
    outcome = await robot_channel.send(
        wecom.robot_account(), message("wangqing", text=text, options=options)
    )
    if ok:
        assert isinstance(outcome, Sent), outcome
    else:
        assert isinstance(outcome, Failed) and "bytes" in outcome.reason
        assert wecom.fake.requests == []


@pytest.mark.parametrize(
    ("fault", "kind", "code", "after"),
    [
        ({"errcode": -1}, Retry, "-1", 0.0),
        ({"errcode": 45009}, Retry, "45009", 60.0),
        ({"status": 503}, Retry, "503", 0.0),
        ({"errcode": 93004}, Failed, "93004", None),
        ({"errcode": 93008}, Failed, "93008", None),
    ],
)
async def test_robot_faults_are_retried_or_failed_as_the_spec_says(
    wecom, robot_channel, fault, kind, code, after
):
    wecom.fake.fail_next("webhook", **fault)
    outcome = await robot_channel.send(wecom.robot_account(), message())
    assert isinstance(outcome, kind) and outcome.code == code, outcome
    if after is not None:
        assert outcome.after == after


async def test_robot_over_its_limit_gets_45009_retried_after_the_window(robot_channel):
    fake = FakeWecom(robot_limit=2)
    async with running_fake(fake) as running:
        account = RunningWecom(fake, running.url).robot_account()
        outcomes = [await robot_channel.send(account, message()) for _ in range(3)]
    assert [type(o) for o in outcomes] == [Sent, Sent, Retry]
    assert outcomes[2].code == "45009" and outcomes[2].after == 60.0


async def test_unknown_key_fails_with_93000_and_the_key_is_never_in_the_reason(
    wecom, robot_channel
):
    outcome = await robot_channel.send(wecom.robot_account(key=WRONG_KEY), message())
    assert isinstance(outcome, Failed) and outcome.code == "93000"
    assert "account problem" in outcome.reason and WRONG_KEY not in outcome.reason


async def test_timeout_after_posting_is_failed_unknown(wecom, robot_channel):
    wecom.fake.fail_next("webhook", delay=0.6)
    outcome = await robot_channel.send(wecom.robot_account(timeout=0.3), message())
    assert isinstance(outcome, Failed) and outcome.code == "unknown"
    await asyncio.sleep(0.4)
    assert len(wecom.fake.robot_messages) == 1


def test_rate_limit_is_20_a_minute_per_key_named_by_a_fingerprint(wecom):
    channel = WecomRobotChannel()
    [limit] = channel.rate_limits(wecom.robot_account(), message())
    assert limit == RateLimit(f"wecom_robot:{fingerprint(ROBOT_KEY)}", 20, 60.0)
    assert ROBOT_KEY not in limit.key


def test_check_recipient_takes_userids_mobiles_and_all():
    channel = WecomRobotChannel()
    for good in ("wangqing", "13800001111", "@all", "mobile:+85291234567", "userid:10086"):
        assert channel.check_recipient(good) is None, good
    for bad in ("", "two words", "mobile:abc", "userid:", "a|b"):
        assert channel.check_recipient(bad), bad


async def test_validate_account_accepts_a_working_key_without_posting(wecom, robot_channel):
    await robot_channel.validate_account(wecom.robot_account())
    assert wecom.fake.robot_messages == []
    assert [api for api, _, _ in wecom.fake.requests] == ["webhook"]


async def test_validate_account_refuses_an_unknown_key_naming_the_field(wecom, robot_channel):
    with pytest.raises(AccountInvalid) as raised:
        await robot_channel.validate_account(wecom.robot_account(key=WRONG_KEY))
    assert raised.value.field == "key" and "93000" in raised.value.reason
    assert WRONG_KEY not in raised.value.reason


async def test_validate_account_counts_a_throttled_key_as_working(wecom, robot_channel):
    wecom.fake.fail_next("webhook", errcode=45009)
    await robot_channel.validate_account(wecom.robot_account())


def test_account_takes_the_whole_webhook_url_and_keeps_only_its_key():
    url = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={ROBOT_KEY}"
    account = msgspec.convert({"key": url}, WecomRobotAccount)
    assert account.key == ROBOT_KEY and ROBOT_KEY not in repr(account)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"key": "https://example.com/hook"}, WecomRobotAccount)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"key": "not a key"}, WecomRobotAccount)
