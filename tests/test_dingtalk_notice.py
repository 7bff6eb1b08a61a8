"""dingtalk (work notifications) against the fake DingTalk: message types, token caching,
single-flight and refresh-once, every fault class, size limits, repeats DingTalk would drop,
send results as receipts, rate limits and account validation."""

from __future__ import annotations

import asyncio
import socket

import msgspec
import pytest

from gateway.channel import AccountInvalid, Failed, Retry, Sent
from gateway.testing import channel_fixture
from plugins.dingtalk.account import AppAccount
from plugins.dingtalk.notice import DingTalkChannel
from plugins.dingtalk.options import Button, NoticeOptions
from tests.dingtalk_support import (
    AGENT_ID,
    APPSECRET,
    Fake,
    app_ref,
    outgoing,
)

USER = "manager4220"
TOKEN_EXPIRED = {
    "errcode": 88,
    "sub_code": "40014",
    "sub_msg": "不合法的access_token",
    "errmsg": "ding talk error[subcode=40014,submsg=不合法的access_token]",
}


channel = channel_fixture(DingTalkChannel)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def send_ok(channel, dingtalk: Fake, recipient: str = USER, **fields) -> tuple[Sent, dict]:
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(recipient, **fields))
    assert isinstance(outcome, Sent), outcome
    notice = dingtalk.state.notices[int(outcome.provider_id)]
    return outcome, notice.msg


# -- message types ------------------------------------------------------------------------------


async def test_text_notice_is_queued_with_the_task_id_as_provider_id(channel, dingtalk):
    outcome, msg = await send_ok(channel, dingtalk, text="disk full")
    notice = dingtalk.state.notices[int(outcome.provider_id)]
    assert notice.agent_id == AGENT_ID and notice.userids == [USER]
    assert msg == {"msgtype": "text", "text": {"content": "disk full"}}
    assert outcome.units == 1 and outcome.answer == f"task_id {outcome.provider_id}"


async def test_markdown_and_action_cards_use_the_work_notice_field_names(channel, dingtalk):
    _, msg = await send_ok(
        channel, dingtalk, text="### db-1", options=NoticeOptions(msgtype="markdown", title="Disk")
    )
    assert msg == {"msgtype": "markdown", "markdown": {"title": "Disk", "text": "### db-1"}}
    single = NoticeOptions(
        msgtype="action_card", single_title="Open", single_url="https://console.example/42"
    )
    _, msg = await send_ok(channel, dingtalk, text="### db-1\n95%", subject="Disk", options=single)
    assert msg == {
        "msgtype": "action_card",
        "action_card": {
            "title": "Disk",
            "markdown": "### db-1\n95%",
            "single_title": "Open",
            "single_url": "https://console.example/42",
        },
    }
    buttons = NoticeOptions(
        msgtype="actionCard",  # the robot's spelling is taken too
        title="Approve?",
        btn_orientation="1",
        buttons=[Button("Yes", "https://x.example/yes"), Button("No", "https://x.example/no")],
    )
    _, msg = await send_ok(channel, dingtalk, text="deploy?", options=buttons)
    assert msg["msgtype"] == "action_card"
    assert msg["action_card"]["btn_orientation"] == "1"
    assert msg["action_card"]["btn_json_list"] == [
        {"title": "Yes", "action_url": "https://x.example/yes"},
        {"title": "No", "action_url": "https://x.example/no"},
    ]


def test_check_recipient_takes_userids_only(channel):
    for good in ("manager4220", "0447654442691174", "user_1.x"):
        assert channel.check_recipient(good) is None
    for bad in ("", "a b", "a,b", "x" * 65, "\x00", "名字"):
        assert channel.check_recipient(bad), bad


# -- tokens -------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_cached(channel, dingtalk):
    for _ in range(5):
        await send_ok(channel, dingtalk)
    assert dingtalk.state.counts["gettoken"] == 1 and channel.tokens.fetches == 1


async def test_concurrent_senders_share_one_token_fetch(channel, dingtalk):
    dingtalk.state.fail_next("gettoken", delay=0.2)  # a slow fetch: every sender waits on it
    outcomes = await asyncio.gather(
        *(channel.send(app_ref(dingtalk.url), outgoing(USER, text=f"n{i}")) for i in range(10))
    )
    assert all(isinstance(o, Sent) for o in outcomes)
    assert dingtalk.state.counts["gettoken"] == 1


async def test_expired_token_is_refreshed_once_and_the_send_retried_inside_it(channel, dingtalk):
    await send_ok(channel, dingtalk)
    dingtalk.state.expire_tokens()
    outcome, _ = await send_ok(channel, dingtalk, text="after expiry")
    assert outcome.units == 1
    assert dingtalk.state.counts["gettoken"] == 2 and dingtalk.state.counts["asyncsend"] == 3


async def test_token_refused_twice_is_retried_later_not_looped(channel, dingtalk):
    dingtalk.state.fail_next("asyncsend", body=TOKEN_EXPIRED, times=2)
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(USER))
    assert isinstance(outcome, Retry) and outcome.code == "88/40014"
    assert dingtalk.state.counts["gettoken"] == 2 and dingtalk.state.counts["asyncsend"] == 2


@pytest.mark.parametrize(
    "body", [{"errcode": 42001, "errmsg": "access_token expired"}, TOKEN_EXPIRED]
)
async def test_token_expired_codes_trigger_the_refresh(channel, dingtalk, body):
    dingtalk.state.fail_next("asyncsend", body=body)
    await send_ok(channel, dingtalk)
    assert dingtalk.state.counts["gettoken"] == 2


async def test_token_is_refetched_shortly_before_it_expires(channel, dingtalk):
    dingtalk.state.apps[next(iter(dingtalk.state.apps))].token_ttl = 1.0  # cached for half of it
    await send_ok(channel, dingtalk)
    await asyncio.sleep(0.6)
    await send_ok(channel, dingtalk, text="later")
    assert dingtalk.state.counts["gettoken"] == 2 and dingtalk.state.counts["asyncsend"] == 2


# -- faults -------------------------------------------------------------------------------------


async def test_provider_5xx_is_retried(channel, dingtalk):
    dingtalk.state.fail_next("asyncsend", status=502)
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(USER))
    assert isinstance(outcome, Retry) and outcome.code == "502"


async def test_slow_answer_after_sending_is_unknown_not_resent(channel, dingtalk):
    dingtalk.state.fail_next("asyncsend", delay=0.6)
    outcome = await channel.send(app_ref(dingtalk.url, timeout=0.2), outgoing(USER))
    assert isinstance(outcome, Failed) and outcome.code == "unknown"
    await asyncio.sleep(0.6)
    assert len(dingtalk.state.notices) == 1  # it did arrive: resending would have doubled it


@pytest.mark.parametrize(
    ("errcode", "after"), [(90018, 1.0), (90006, 60.0), (90005, 60.0), (41047, 60.0)]
)
async def test_rate_limit_codes_are_retried_after_their_window(channel, dingtalk, errcode, after):
    dingtalk.state.fail_next("asyncsend", body={"errcode": errcode, "errmsg": "too many calls"})
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(USER))
    assert isinstance(outcome, Retry) and outcome.after == after
    assert outcome.code == str(errcode)


async def test_system_busy_is_retried(channel, dingtalk):
    dingtalk.state.fail_next("asyncsend", body={"errcode": -1, "errmsg": "系统繁忙"})
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(USER))
    assert isinstance(outcome, Retry) and outcome.code == "-1"


async def test_no_permission_fails_with_dingtalks_sub_code(channel, dingtalk):
    dingtalk.state.fail_next(
        "asyncsend",
        body={"errcode": 88, "sub_code": "60011", "sub_msg": "没有调用该接口的权限", "errmsg": "x"},
    )
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(USER))
    assert isinstance(outcome, Failed) and outcome.code == "88/60011"
    assert outcome.reason == "没有调用该接口的权限"


async def test_token_fetch_failures(channel, dingtalk):
    dingtalk.state.fail_next("gettoken", status=500)
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(USER))
    assert isinstance(outcome, Retry) and outcome.code == "500"
    bad = app_ref(dingtalk.url, appsecret="wrong-app-secret-123456")
    outcome = await channel.send(bad, outgoing(USER))
    assert isinstance(outcome, Failed) and outcome.code == "40096"
    assert "不合法的appKey或appSecret" in outcome.reason
    assert "wrong-app-secret-123456" not in outcome.reason


async def test_wrong_agent_id_is_refused(channel, dingtalk):
    outcome = await channel.send(app_ref(dingtalk.url, agent_id=1), outgoing(USER))
    assert isinstance(outcome, Failed) and outcome.code == "88/isv.invalid-parameter"
    assert "agent_id" in outcome.reason


async def test_refused_connection_is_retried(channel):
    account = app_ref(f"http://127.0.0.1:{closed_port()}")
    outcome = await channel.send(account, outgoing(USER))
    assert isinstance(outcome, Retry) and outcome.code == "connect"
    assert APPSECRET not in outcome.reason


# -- size limits --------------------------------------------------------------------------------


async def test_text_over_the_declared_limit_or_msg_over_2048_bytes_fails_before_sending(
    channel, dingtalk
):
    assert channel.max_text_bytes == 1800
    outcome = await channel.send(app_ref(dingtalk.url), outgoing(USER, text="磁" * 601))
    assert isinstance(outcome, Failed) and outcome.code == "too_large" and "1800" in outcome.reason
    titled = NoticeOptions(msgtype="markdown", title="t" * 256)
    outcome = await channel.send(
        app_ref(dingtalk.url), outgoing(USER, text="x" * 1800, options=titled)
    )
    assert isinstance(outcome, Failed) and outcome.code == "too_large" and "2048" in outcome.reason
    await send_ok(channel, dingtalk, text="磁" * 600)  # 1 800 bytes: it fits unescaped
    assert dingtalk.state.counts["asyncsend"] == 1


def test_options_over_the_msg_limit_are_refused_at_accept():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(
            {
                "msgtype": "action_card",
                "buttons": [{"title": "b", "url": "https://y/" + "p" * 300}] * 8,
            },
            NoticeOptions,
        )
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"repeat_suffix": "sometimes"}, NoticeOptions)


async def test_fake_refuses_a_msg_over_2048_bytes(dingtalk, channel):
    import aiohttp

    token = await channel._token(app_ref(dingtalk.url).config)
    body = {
        "agent_id": AGENT_ID,
        "userid_list": USER,
        "msg": {"msgtype": "text", "text": {"content": "x" * 2100}},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{dingtalk.url}/topapi/message/corpconversation/asyncsend_v2",
            params={"access_token": token},
            json=body,
        ) as response,
    ):
        answer = await response.json()
    assert answer["errcode"] == 88 and "2048" in answer["sub_msg"]


# -- repeats DingTalk would silently drop -------------------------------------------------------


async def test_same_content_to_the_same_user_gets_a_suffix_so_it_is_not_dropped(channel, dingtalk):
    first, msg1 = await send_ok(channel, dingtalk, text="db-1 down")
    second, msg2 = await send_ok(channel, dingtalk, text="db-1 down")
    assert msg1["text"]["content"] == "db-1 down"
    assert msg2["text"]["content"].startswith("db-1 down\n\n(") and msg2 != msg1
    for sent in (first, second):
        receipts = await channel.send_result(app_ref(dingtalk.url), sent.provider_id)
        assert [(r.delivered, r.code) for r in receipts] == [(True, "unread")]
    _, other_user = await send_ok(channel, dingtalk, "user123", text="db-1 down")
    assert other_user["text"]["content"] == "db-1 down"


async def test_without_the_suffix_dingtalk_drops_the_repeat_silently(channel, dingtalk):
    never = NoticeOptions(repeat_suffix="never")
    await send_ok(channel, dingtalk, text="db-1 down", options=never)
    repeat, _ = await send_ok(channel, dingtalk, text="db-1 down", options=never)  # still errcode 0
    [receipt] = await channel.send_result(app_ref(dingtalk.url), repeat.provider_id)
    assert receipt.delivered is False and receipt.code == "143106"
    assert receipt.provider_id == repeat.provider_id and receipt.recipient == USER


async def test_always_suffixes_even_the_first(channel, dingtalk):
    _, msg = await send_ok(
        channel, dingtalk, text="hi", options=NoticeOptions(repeat_suffix="always")
    )
    assert msg["text"]["content"].startswith("hi\n\n(")


async def test_concurrent_identical_notices_leave_only_one_unsuffixed(channel, dingtalk):
    outcomes = await asyncio.gather(
        *(channel.send(app_ref(dingtalk.url), outgoing(USER, text="same")) for _ in range(4))
    )
    assert all(isinstance(o, Sent) for o in outcomes)
    contents = [n.msg["text"]["content"] for n in dingtalk.state.notices.values()]
    assert contents.count("same") == 1 and len(set(contents)) == 4


async def test_a_refused_send_gives_its_claim_back(channel, dingtalk):
    dingtalk.state.fail_next("asyncsend", body={"errcode": 90018, "errmsg": "too fast"})
    assert isinstance(await channel.send(app_ref(dingtalk.url), outgoing(USER, text="x")), Retry)
    _, msg = await send_ok(channel, dingtalk, text="x")
    assert msg["text"]["content"] == "x"


async def test_unknown_userid_is_accepted_then_reported_invalid(channel, dingtalk):
    outcome, _ = await send_ok(channel, dingtalk, "nobody42")
    [receipt] = await channel.send_result(app_ref(dingtalk.url), outcome.provider_id)
    assert receipt.delivered is False and receipt.code == "invalid_user"
    dingtalk.state.mark_read(
        int((await send_ok(channel, dingtalk, "user123"))[0].provider_id), "user123"
    )
    [read] = await channel.send_result(app_ref(dingtalk.url), max(dingtalk.state.notices))
    assert read.delivered is True and read.code == "read"


# -- rate limits and accounts -------------------------------------------------------------------


def test_declares_dingtalks_per_app_and_per_user_limits(channel):
    account = app_ref("https://oapi.dingtalk.com")
    limits = {(r.limit, r.per_seconds): r.key for r in channel.rate_limits(account, outgoing(USER))}
    assert set(limits) == {(40, 1.0), (1500, 60.0), (500, 86_400.0)}
    assert limits[(500, 86_400.0)].endswith(f":user:{USER}")
    assert all(APPSECRET not in key for key in limits.values())


def test_account_config_is_checked_and_hides_its_secret():
    config = app_ref("https://oapi.dingtalk.com/").config
    assert config.endpoint == "https://oapi.dingtalk.com" and APPSECRET not in repr(config)
    assert AppAccount.secret_fields == {"appsecret"}
    for bad in (
        {"appkey": "k", "appsecret": "s", "agent_id": "12"},
        {"appkey": "k", "appsecret": "s", "agent_id": 0},
        {"appkey": "k k", "appsecret": "s", "agent_id": 1},
        {"appkey": "k", "appsecret": "s", "agent_id": 1, "endpoint": "oapi.dingtalk.com"},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, AppAccount)


async def test_validate_account_fetches_a_token_and_gives_dingtalks_reason(channel, dingtalk):
    await channel.validate_account(app_ref(dingtalk.url))
    with pytest.raises(AccountInvalid) as raised:
        await channel.validate_account(app_ref(dingtalk.url, appsecret="wrong-app-secret-123456"))
    assert "不合法的appKey或appSecret" in raised.value.reason
    assert raised.value.field == "appsecret"
    with pytest.raises(AccountInvalid) as raised:
        await channel.validate_account(app_ref(f"http://127.0.0.1:{closed_port()}"))
    assert raised.value.field == "endpoint"
