"""The ``wecom`` application-message channel against the fake WeCom on a real port."""

from __future__ import annotations

import asyncio
import socket

import msgspec
import pytest

from gateway.channel import AccountInvalid, Failed, RateLimit, Retry, Sent
from plugins.wecom.channel import WecomChannel
from plugins.wecom.fake import running_fake
from plugins.wecom.fake_state import AGENT_ID, CORP_ID, CORP_SECRET, FakeWecom
from plugins.wecom.options import WecomOptions
from tests.wecom_fixtures import WRONG_SECRET, RunningWecom, message


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- message types -----------------------------------------------------------------------------


async def test_text_message_is_sent_to_one_userid_with_an_integer_agentid(wecom, app_channel):
    outcome = await app_channel.send(wecom.app_account(), message("zhangsan", subject="Disk"))
    assert isinstance(outcome, Sent), outcome
    [received] = wecom.fake.messages
    assert received.body == {
        "touser": "zhangsan",
        "msgtype": "text",
        "agentid": AGENT_ID,
        "text": {"content": "Disk\ndb-1 disk at 95%"},
    }
    assert outcome.provider_id == received.msgid and outcome.units == 1
    assert outcome.answer == f"errcode 0 ok msgid {received.msgid}"


async def test_markdown_message_puts_the_subject_in_bold(wecom, app_channel):
    options = WecomOptions(msgtype="markdown")
    outgoing = message("lisi", subject="Alert", text='<font color="warning">95%</font>')
    outcome = await app_channel.send(
        wecom.app_account(), msgspec.structs.replace(outgoing, options=options)
    )
    assert isinstance(outcome, Sent), outcome
    [received] = wecom.fake.messages
    assert received.body["markdown"] == {"content": '**Alert**\n<font color="warning">95%</font>'}


async def test_textcard_takes_title_url_and_button_from_options_and_text_as_description(
    wecom, app_channel
):
    options = WecomOptions(
        msgtype="textcard", title="Disk alert", url="https://console.example/42", btntxt="Open"
    )
    outcome = await app_channel.send(
        wecom.app_account(), message("zhangsan", subject="ignored", options=options)
    )
    assert isinstance(outcome, Sent), outcome
    [received] = wecom.fake.messages
    assert received.body["textcard"] == {
        "title": "Disk alert",
        "description": "db-1 disk at 95%",
        "url": "https://console.example/42",
        "btntxt": "Open",
    }
    assert received.truncated == []


async def test_textcard_title_defaults_to_the_subject(wecom, app_channel):
    options = WecomOptions(msgtype="textcard", url="https://console.example/42")
    outcome = await app_channel.send(
        wecom.app_account(), message(subject="From subject", options=options)
    )
    assert isinstance(outcome, Sent)
    assert wecom.fake.messages[0].body["textcard"]["title"] == "From subject"
    outcome = await app_channel.send(wecom.app_account(), message(options=options))
    assert isinstance(outcome, Failed) and "title" in outcome.reason


async def test_confidential_text_sets_safe(wecom, app_channel):
    outgoing = message(options=WecomOptions(safe=True))
    assert isinstance(await app_channel.send(wecom.app_account(), outgoing), Sent)
    assert wecom.fake.messages[0].body["safe"] == 1


@pytest.mark.parametrize(
    ("recipient", "field", "value"),
    [("party:1", "toparty", "1"), ("tag:1", "totag", "1"), ("@all", "touser", "@all")],
)
async def test_party_tag_and_all_recipients_map_to_their_wecom_fields(
    wecom, app_channel, recipient, field, value
):
    outcome = await app_channel.send(wecom.app_account(), message(recipient))
    assert isinstance(outcome, Sent), outcome
    [received] = wecom.fake.messages
    assert received.body[field] == value
    assert {"touser", "toparty", "totag"} & received.body.keys() == {field}


# -- recipients that fail ------------------------------------------------------------------------


@pytest.mark.parametrize("recipient", ["ghost", "party:99", "tag:42"])
async def test_unknown_recipient_fails_with_81013_and_wecoms_message(wecom, app_channel, recipient):
    outcome = await app_channel.send(wecom.app_account(), message(recipient))
    assert isinstance(outcome, Failed) and outcome.code == "81013"
    assert "user & party & tag all invalid" in outcome.reason


@pytest.mark.parametrize(
    ("recipient", "code"),
    [("Ghost", "invaliduser"), ("party:99", "invalidparty"), ("tag:42", "invalidtag")],
)
async def test_recipient_listed_invalid_with_errcode_0_fails_just_that_delivery(
    app_channel, recipient, code
):
    fake = FakeWecom(legacy_invalid=True)  # WeCom answering errcode 0 + invaliduser
    async with running_fake(fake) as running:
        wecom = RunningWecom(fake, running.url)
        outcome = await app_channel.send(wecom.app_account(), message(recipient))
        assert isinstance(outcome, Failed) and outcome.code == code, outcome
        assert repr(recipient.split(":")[-1]) in outcome.reason
        assert isinstance(await app_channel.send(wecom.app_account(), message()), Sent)


def test_check_recipient_accepts_userids_parties_tags_and_all_and_explains_the_rest():
    channel = WecomChannel()
    for good in ("zhangsan", "Zhang.San@corp", "10086", "party:2", "tag:7", "@all"):
        assert channel.check_recipient(good) is None, good
    for bad in ("", "a|b", "party:x", "tag:", "-lead", "张三", "x" * 65):
        assert channel.check_recipient(bad), bad


# -- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "code", "after"),
    [
        ({"errcode": -1}, "-1", 0.0),
        ({"errcode": 45009}, "45009", 60.0),
        ({"errcode": 45033}, "45033", 1.0),
        ({"status": 502}, "502", 0.0),
    ],
)
async def test_busy_rate_limited_and_5xx_answers_are_retried(
    wecom, app_channel, fault, code, after
):
    wecom.fake.fail_next("message", **fault)
    outcome = await app_channel.send(wecom.app_account(), message())
    assert isinstance(outcome, Retry) and outcome.code == code and outcome.after == after
    assert isinstance(await app_channel.send(wecom.app_account(), message()), Sent)


@pytest.mark.parametrize(
    ("errcode", "hint"),
    [(60020, "trusted IPs"), (50003, "disabled"), (48002, "may not call")],
)
async def test_account_problems_fail_with_wecoms_code_and_a_hint(wecom, app_channel, errcode, hint):
    wecom.fake.fail_next("message", errcode=errcode)
    outcome = await app_channel.send(wecom.app_account(), message())
    assert isinstance(outcome, Failed) and outcome.code == str(errcode)
    assert "account problem" in outcome.reason and hint in outcome.reason


async def test_timeout_after_sending_is_failed_unknown_not_resent(wecom, app_channel):
    account = wecom.app_account(timeout=0.3)
    await app_channel.client.token(msgspec.convert(account.config, type(account.config)))
    wecom.fake.fail_next("message", delay=0.6)
    outcome = await app_channel.send(account, message())
    assert isinstance(outcome, Failed) and outcome.code == "unknown", outcome
    await asyncio.sleep(0.4)
    assert len(wecom.fake.messages) == 1  # WeCom did act on it: a resend would duplicate


async def test_unreachable_endpoint_is_retried(app_channel, wecom):
    account = wecom.app_account(endpoint=f"http://127.0.0.1:{closed_port()}")
    outcome = await app_channel.send(account, message())
    assert isinstance(outcome, Retry) and outcome.code == "connect"


async def test_slow_gettoken_is_retried_since_fetching_a_token_is_idempotent(wecom, app_channel):
    wecom.fake.fail_next("gettoken", delay=0.6)
    outcome = await app_channel.send(wecom.app_account(timeout=0.3), message())
    assert isinstance(outcome, Retry) and outcome.code == "timeout"
    assert wecom.fake.messages == []


@pytest.mark.parametrize(("fault", "kind"), [({"errcode": -1}, Retry), ({"status": 500}, Retry)])
async def test_gettoken_trouble_is_the_sends_outcome(wecom, app_channel, fault, kind):
    wecom.fake.fail_next("gettoken", **fault)
    assert isinstance(await app_channel.send(wecom.app_account(), message()), kind)
    assert isinstance(await app_channel.send(wecom.app_account(), message()), Sent)


async def test_wrong_secret_fails_with_40001_and_no_secret_in_the_reason(wecom, app_channel):
    outcome = await app_channel.send(wecom.app_account(corpsecret=WRONG_SECRET), message())
    assert isinstance(outcome, Failed) and outcome.code == "40001"
    assert WRONG_SECRET not in outcome.reason and CORP_SECRET not in outcome.reason


# -- tokens ----------------------------------------------------------------------------------------


async def test_token_is_cached_across_sends(wecom, app_channel):
    for _ in range(3):
        assert isinstance(await app_channel.send(wecom.app_account(), message()), Sent)
    assert wecom.fake.gettoken_calls == 1 and app_channel.client.tokens.fetches == 1


async def test_concurrent_senders_share_one_token_fetch(wecom, app_channel):
    wecom.fake.fail_next("gettoken", delay=0.2)  # so all of them wait on the same fetch
    outcomes = await asyncio.gather(
        *(app_channel.send(wecom.app_account(), message()) for _ in range(10))
    )
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    assert wecom.fake.gettoken_calls == 1 and len(wecom.fake.messages) == 10


async def test_token_is_refetched_shortly_before_it_expires(app_channel):
    fake = FakeWecom(token_lifetime=2)  # cached for max(2 - 300, 2 / 2) = 1 s
    async with running_fake(fake) as running:
        wecom = RunningWecom(fake, running.url)
        assert isinstance(await app_channel.send(wecom.app_account(), message()), Sent)
        await asyncio.sleep(1.1)
        fake.expire_tokens()  # WeCom would hand out the old one for a second more
        assert isinstance(await app_channel.send(wecom.app_account(), message()), Sent)
    assert fake.gettoken_calls == 2


@pytest.mark.parametrize("hook", ["revoke_tokens", "expire_tokens"])
async def test_refused_token_is_refreshed_once_and_the_send_goes_through(wecom, app_channel, hook):
    assert isinstance(await app_channel.send(wecom.app_account(), message()), Sent)
    getattr(wecom.fake, hook)()  # 40014 / 42001 on the next send
    outcome = await app_channel.send(wecom.app_account(), message())
    assert isinstance(outcome, Sent), outcome
    assert wecom.fake.gettoken_calls == 2 and len(wecom.fake.messages) == 2
    sends = [q for api, q, _ in wecom.fake.requests if api == "message"]
    assert len(sends) == 3


async def test_token_refused_again_after_the_refresh_is_retried_later_not_looped(
    wecom, app_channel
):
    wecom.fake.fail_next("message", errcode=40014, times=3)
    outcome = await app_channel.send(wecom.app_account(), message())
    assert isinstance(outcome, Retry) and outcome.code == "40014"
    assert wecom.fake.gettoken_calls == 2
    assert len([r for r in wecom.fake.requests if r[0] == "message"]) == 2


async def test_edited_secret_gets_its_own_token(wecom, app_channel):
    wecom.fake.add_app("ww-other", "other-secret-0123456789", AGENT_ID, ["zhangsan"])
    await app_channel.send(wecom.app_account(), message())
    other = wecom.app_account(revision=2, corpid="ww-other", corpsecret="other-secret-0123456789")
    assert isinstance(await app_channel.send(other, message()), Sent)
    assert wecom.fake.gettoken_calls == 2


# -- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fields", "what"),
    [
        (None, {"text": "\u6d88" * 683}, "text content"),
        (None, {"text": "x" * 2040, "subject": "a subject"}, "text content"),
        (WecomOptions(msgtype="markdown"), {"text": "x" * 2049}, "markdown content"),
        (
            WecomOptions(msgtype="textcard", url="https://x.example"),
            {"text": "x" * 513, "subject": "t"},
            "description",
        ),
        (
            WecomOptions(msgtype="textcard", url="https://x.example"),
            {"subject": "\u6d88" * 43},
            "title",
        ),
    ],
)
async def test_too_big_content_fails_before_calling_wecom(
    wecom, app_channel, options, fields, what
):
    outcome = await app_channel.send(wecom.app_account(), message(options=options, **fields))
    assert isinstance(outcome, Failed) and outcome.code == "invalid"
    assert what in outcome.reason and "bytes" in outcome.reason
    assert [r for r in wecom.fake.requests if r[0] == "message"] == []


async def test_text_of_exactly_2048_bytes_is_sent_whole(wecom, app_channel):
    text = "\u6d88" * 682 + "xx"
    assert isinstance(await app_channel.send(wecom.app_account(), message(text=text)), Sent)
    assert wecom.fake.messages[0].body["text"]["content"] == text


async def test_message_without_text_fails_clearly(wecom, app_channel):
    outcome = await app_channel.send(wecom.app_account(), message(text=None, variables={"a": 1}))
    assert isinstance(outcome, Failed) and "need text" in outcome.reason


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"msgtype": "textcard"}, "url"),
        ({"msgtype": "textcard", "url": "javascript:alert(1)"}, "url"),
        ({"msgtype": "textcard", "url": "https://x", "btntxt": "Click me"}, "btntxt"),
        ({"msgtype": "textcard", "url": "https://x", "title": "\u6d88" * 43}, "title"),
        ({"msgtype": "text", "title": "t"}, "title"),
        ({"msgtype": "markdown", "safe": True}, "safe"),
    ],
)
def test_bad_options_are_refused_at_accept_naming_the_field(options, field):
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.convert(options, WecomOptions)
    assert str(raised.value).endswith(f"- at `$.{field}`")


# -- rate limits -------------------------------------------------------------------------------


def test_per_member_limits_are_declared_since_wecom_drops_the_excess_silently(wecom):
    channel = WecomChannel()
    limits = channel.rate_limits(wecom.app_account(), message("ZhangSan"))
    key = f"wecom:{CORP_ID}:{AGENT_ID}:zhangsan"
    assert limits == [RateLimit(f"{key}:minute", 30, 60.0), RateLimit(f"{key}:hour", 1000, 3600.0)]


# -- validate_account --------------------------------------------------------------------------


async def test_validate_account_fetches_a_token_and_reads_the_application(wecom, app_channel):
    await app_channel.validate_account(wecom.app_account())
    assert wecom.fake.gettoken_calls == 1
    assert [api for api, _, _ in wecom.fake.requests] == ["gettoken", "agent"]


@pytest.mark.parametrize(
    ("overrides", "field", "errcode"),
    [
        ({"corpid": "ww-unknown"}, "corpid", "40013"),
        ({"corpsecret": WRONG_SECRET}, "corpsecret", "40001"),
        ({"agentid": AGENT_ID + 1}, "agentid", "40056"),
    ],
)
async def test_validate_account_names_the_wrong_field_with_wecoms_reason(
    wecom, app_channel, overrides, field, errcode
):
    with pytest.raises(AccountInvalid) as raised:
        await app_channel.validate_account(wecom.app_account(**overrides))
    assert raised.value.field == field and f"errcode {errcode}" in raised.value.reason
    assert WRONG_SECRET not in raised.value.reason


async def test_validate_account_reports_an_untrusted_ip(wecom, app_channel):
    wecom.fake.fail_next("agent", errcode=60020)
    with pytest.raises(AccountInvalid) as raised:
        await app_channel.validate_account(wecom.app_account())
    assert "trusted IPs" in raised.value.reason


async def test_validate_account_reports_a_disabled_application(wecom, app_channel):
    wecom.fake.app().disabled = True
    with pytest.raises(AccountInvalid) as raised:
        await app_channel.validate_account(wecom.app_account())
    assert raised.value.field == "agentid" and "disabled" in raised.value.reason


async def test_validate_account_reports_an_unreachable_endpoint(app_channel):
    account = RunningWecom(FakeWecom(), f"http://127.0.0.1:{closed_port()}").app_account()
    with pytest.raises(AccountInvalid) as raised:
        await app_channel.validate_account(account)
    assert raised.value.field == "endpoint" and "cannot reach WeCom" in raised.value.reason


def test_account_config_is_checked_and_its_repr_hides_the_secret():
    from plugins.wecom.account import WecomAccount

    good = {"corpid": "ww1", "corpsecret": "s3cret-value", "agentid": 1000002}
    account = msgspec.convert(good | {"endpoint": "http://fake:9400/wecom/"}, WecomAccount)
    assert account.endpoint == "http://fake:9400/wecom" and "s3cret" not in repr(account)
    for bad, where in (
        ({"agentid": "1000002"}, "agentid"),
        ({"endpoint": "qyapi.weixin.qq.com"}, "endpoint"),
        ({"corpid": "ww 1"}, "corpid"),
    ):
        with pytest.raises(msgspec.ValidationError) as raised:
            msgspec.convert(good | bad, WecomAccount)
        cause = raised.value.__cause__
        assert (cause is not None and cause.field == where) or where in str(raised.value)
