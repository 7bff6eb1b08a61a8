"""The WeLink channel against the fake WeLink API: cards, tokens, limits, every fault class."""

from __future__ import annotations

import asyncio
import json
import socket

import msgspec
import pytest

from gateway.channel import AccountInvalid, AccountRef, Failed, RateLimit, Retry, Sent
from gateway.plugins import contract_problem
from plugins.welink import plugin
from plugins.welink.account import WeLinkAccount
from plugins.welink.channel import WeLinkChannel
from plugins.welink.options import WeLinkOptions
from tests.welink_fixtures import CLIENT_ID, WRONG_SECRET, RunningWeLink, card


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the channel and its account -------------------------------------------------------------


def test_plugin_provides_the_welink_channel_meeting_the_contract():
    [channel] = plugin.msggate_channels()
    assert channel.name == "welink" and contract_problem(channel) is None
    assert channel.account_type.secret_fields == frozenset({"client_secret"})
    assert [f.name for f in plugin.msggate_fake_providers()] == ["welink"]


def test_account_checks_endpoint_and_owner_size_naming_the_field():
    with pytest.raises(AccountInvalid) as raised:
        WeLinkAccount(client_id="a", client_secret="b", endpoint="ftp://x")
    assert raised.value.field == "endpoint"
    with pytest.raises(msgspec.ValidationError) as invalid:  # how the accounts API decodes it
        msgspec.convert(
            {"client_id": "a", "client_secret": "b", "msg_owner": "运维告警通知中心"}, WeLinkAccount
        )
    assert invalid.value.__cause__.field == "msg_owner"
    assert "24 bytes" in str(invalid.value)


def test_account_repr_never_shows_the_secret():
    account = WeLinkAccount(client_id="a", client_secret="very-secret-value")
    assert "very-secret-value" not in repr(account)


def test_recipients_are_welink_user_ids():
    channel = WeLinkChannel()
    assert channel.check_recipient("john@welink") is None
    assert channel.check_recipient("z00123456") is None
    for bad in ("", "two users", "a,b", "x" * 129, "tab\there"):
        assert channel.check_recipient(bad), bad


def test_options_enforce_welink_byte_limits_naming_the_field():
    assert msgspec.convert({"title": "标" * 42}, WeLinkOptions).title  # 126 bytes: fits
    too_long = {"title": "标" * 43, "owner": "运维告警通知中心", "text_en": "x" * 513}
    for field, value in too_long.items():
        with pytest.raises(msgspec.ValidationError, match=rf"at `\$\.{field}`"):
            msgspec.convert({field: value}, WeLinkOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"device": "tv"}, WeLinkOptions)


def test_rate_limits_are_declared_per_app_and_per_endpoint(welink_channel):
    account = AccountRef("w", 1, WeLinkAccount(client_id="app-1", client_secret="s"))
    limits = welink_channel.rate_limits(account, card())
    assert [(limit.limit, limit.per_seconds) for limit in limits] == [
        (40, 1.0),
        (1500, 60.0),
        (3000, 20.0),
    ]
    assert all(isinstance(limit, RateLimit) and "app-1" in limit.key for limit in limits[:2])
    assert all("s" not in limit.key.split(":") for limit in limits)  # no secret in a key


# --- sending cards ---------------------------------------------------------------------------


async def test_card_reaches_welink_with_title_text_and_sender(
    welink: RunningWeLink, welink_channel
):
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Sent) and outcome.units == 1
    [received] = welink.fake.cards
    assert outcome.provider_id == received.item_id
    assert received.client_id == CLIENT_ID
    assert received.body == {
        "msgOwner": "通知",
        "msgRange": "0",
        "toUserList": ["john@welink"],
        "msgTitle": "Disk alert",
        "msgContent": "db-1 disk at 95%",
        "receiveDeviceType": "2",
    }


async def test_card_options_set_links_device_owner_pop_up_and_english(
    welink: RunningWeLink, welink_channel
):
    options = WeLinkOptions(
        title="磁盘告警",
        title_en="Disk alert",
        text_en="disk at 95%",
        url="https://console.example/alerts/42",
        desktop_url="https://pc.example/alerts/42",
        owner="监控",
        device="mobile",
        force_tips=True,
    )
    outcome = await welink_channel.send(
        welink.account(), card(text="磁盘使用率 95%", options=options)
    )
    assert isinstance(outcome, Sent), outcome
    body = welink.fake.cards[0].body
    assert json.loads(body["msgTitle"]) == {"CN": "磁盘告警", "EN": "Disk alert"}
    assert json.loads(body["msgContent"]) == {"CN": "磁盘使用率 95%", "EN": "disk at 95%"}
    assert body["urlType"] == "html" and body["urlPath"] == "https://console.example/alerts/42"
    assert body["desktopUrlPath"] == "https://pc.example/alerts/42"
    assert body["msgOwner"] == "监控" and body["receiveDeviceType"] == "1"
    assert body["isForceTips"] == 1


async def test_card_without_subject_is_titled_with_the_sender_label(
    welink: RunningWeLink, welink_channel
):
    outcome = await welink_channel.send(welink.account(msg_owner="考勤"), card(subject=None))
    assert isinstance(outcome, Sent)
    assert welink.fake.cards[0].body["msgTitle"] == "考勤"


async def test_public_account_is_used_and_an_unknown_one_is_a_config_failure(
    welink: RunningWeLink, welink_channel
):
    welink.fake.public_accounts.add("pub-1")
    outcome = await welink_channel.send(welink.account(public_acc_id="pub-1"), card())
    assert isinstance(outcome, Sent) and welink.fake.cards[0].body["publicAccID"] == "pub-1"
    outcome = await welink_channel.send(welink.account(public_acc_id="pub-2"), card())
    assert isinstance(outcome, Failed) and outcome.code == "51010"


async def test_text_over_512_bytes_fails_before_calling_welink(
    welink: RunningWeLink, welink_channel
):
    outcome = await welink_channel.send(welink.account(), card(text="告" * 171))  # 513 bytes
    assert isinstance(outcome, Failed) and outcome.code == "size"
    assert "513 bytes" in outcome.reason and "512" in outcome.reason
    outcome = await welink_channel.send(welink.account(), card(subject="标" * 43))
    assert isinstance(outcome, Failed) and outcome.code == "size" and "129 bytes" in outcome.reason
    assert welink.fake.card_requests == 0
    outcome = await welink_channel.send(welink.account(), card(text="告" * 170))  # 510 bytes
    assert isinstance(outcome, Sent)


async def test_message_without_text_fails_with_a_reason(welink: RunningWeLink, welink_channel):
    outcome = await welink_channel.send(welink.account(), card(text=None, variables={"a": 1}))
    assert isinstance(outcome, Failed) and "needs text" in outcome.reason


# --- tokens ----------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused(welink: RunningWeLink, welink_channel):
    for _ in range(3):
        assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
    assert welink.fake.token_requests == 1 and len(welink.fake.cards) == 3


async def test_concurrent_senders_share_one_token_fetch(welink: RunningWeLink, welink_channel):
    welink.fake.fail_next("tickets", delay=0.2)  # a slow fetch: every sender waits on it
    outcomes = await asyncio.gather(
        *(welink_channel.send(welink.account(), card(f"u{i}")) for i in range(20))
    )
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    assert welink.fake.token_requests == 1


async def test_token_is_refreshed_when_its_dynamic_lifetime_runs_out(
    welink: RunningWeLink, welink_channel
):
    welink.fake.expires_in = 2  # cached for max(2 - 300, 2 / 2) = 1 s
    assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
    assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
    assert welink.fake.token_requests == 1
    await asyncio.sleep(1.1)
    assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
    assert welink.fake.token_requests == 2


@pytest.mark.parametrize("how", ["expire", "revoke"])
async def test_refused_token_is_refetched_once_and_the_send_succeeds(
    welink: RunningWeLink, welink_channel, how
):
    assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
    welink.fake.expire_tokens() if how == "expire" else welink.fake.revoke_tokens()
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Sent), outcome
    assert welink.fake.token_requests == 2 and len(welink.fake.cards) == 2


@pytest.mark.parametrize("code", ["1000", "47101", "47103"])
async def test_token_refused_twice_is_retried_later_after_one_refetch(
    welink: RunningWeLink, welink_channel, code
):
    welink.fake.fail_next("card", code, "access_token is invalid", times=2)
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Retry) and outcome.code == code
    assert welink.fake.token_requests == 2 and welink.fake.card_requests == 2


async def test_api_not_granted_refetches_once_then_fails_until_granted(
    welink: RunningWeLink, welink_channel
):
    app = welink.fake.apps[CLIENT_ID]
    app.grants.clear()
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Failed) and outcome.code == "501"
    assert "第三方接口无权限" in outcome.reason and welink.fake.token_requests == 2
    app.grants.add("card/common")  # granted now, but the cached token predates the grant
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Sent), outcome
    assert welink.fake.token_requests == 3


async def test_edited_secret_does_not_reuse_the_old_token(welink: RunningWeLink, welink_channel):
    assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
    outcome = await welink_channel.send(welink.account(client_secret=WRONG_SECRET), card())
    assert isinstance(outcome, Failed) and outcome.code == "411007"
    assert welink.fake.token_requests == 2 and len(welink.fake.cards) == 1


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "after"),
    [
        ("48503", "frequency over limit: 40 per second", 1.0),
        ("48503", "frequency over limit: 1500 per minute", 60.0),
    ],
)
async def test_rate_limit_answer_is_retried_after_welinks_window(
    welink: RunningWeLink, welink_channel, code, message, after
):
    welink.fake.fail_next("card", code, message)
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Retry) and outcome.code == code and outcome.after == after


@pytest.mark.parametrize("code", ["500", "43999", "55004", "51002"])
async def test_system_errors_are_retried(welink: RunningWeLink, welink_channel, code):
    welink.fake.fail_next("card", code, "system error")
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Retry) and outcome.code == code
    assert f"WeLink {code}: system error" in outcome.reason


@pytest.mark.parametrize(
    "code", ["51018", "51019", "51042", "43011", "47003", "47004", "47008", "55005", "55006"]
)
async def test_message_errors_fail_permanently_with_welinks_code(
    welink: RunningWeLink, welink_channel, code
):
    welink.fake.fail_next("card", code, "不能给非粉丝用户推送消息")
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Failed) and outcome.code == code
    assert outcome.reason == f"WeLink {code}: 不能给非粉丝用户推送消息"


@pytest.mark.parametrize("code", ["401", "403", "47000", "55002", "51003"])
async def test_permission_errors_fail_as_account_problems(
    welink: RunningWeLink, welink_channel, code
):
    welink.fake.fail_next("card", code, "forbidden")
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Failed) and outcome.code == code
    assert "check the WeLink account" in outcome.reason


async def test_undocumented_code_fails_rather_than_risking_duplicates(
    welink: RunningWeLink, welink_channel
):
    welink.fake.fail_next("card", "99999", "something new")
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Failed) and outcome.code == "99999"


async def test_error_answered_with_an_http_error_status_is_classified_by_its_body(
    welink: RunningWeLink, welink_channel
):
    welink.fake.error_status = 400
    outcome = await welink_channel.send(welink.account(), card(recipient="a" * 10))
    assert isinstance(outcome, Sent)
    welink.fake.fail_next("card", "43011", "msgTitle is required")
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Failed) and outcome.code == "43011"
    assert outcome.reason.endswith("(HTTP 400)")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_http_5xx_is_retried(welink: RunningWeLink, welink_channel, status):
    welink.fake.fail_next("card", http_status=status)
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Retry) and outcome.code == str(status)


async def test_slow_send_is_unknown_not_resent(welink: RunningWeLink, welink_channel):
    welink.fake.fail_next("card", delay=1.0)
    outcome = await welink_channel.send(welink.account(timeout=0.3), card())
    assert isinstance(outcome, Failed) and outcome.code == "unknown"
    await asyncio.sleep(0.8)
    assert len(welink.fake.cards) == 1  # it did reach WeLink: a resend would duplicate it


async def test_slow_token_fetch_is_retried(welink: RunningWeLink, welink_channel):
    welink.fake.fail_next("tickets", delay=1.0)
    outcome = await welink_channel.send(welink.account(timeout=0.3), card())
    assert isinstance(outcome, Retry) and outcome.code == "timeout"
    assert welink.fake.card_requests == 0


@pytest.mark.parametrize("code", ["41500", "41502"])
async def test_token_service_failure_is_retried(welink: RunningWeLink, welink_channel, code):
    welink.fake.fail_next("tickets", code, "get access_token failed")
    outcome = await welink_channel.send(welink.account(), card())
    assert isinstance(outcome, Retry) and outcome.code == code
    assert outcome.reason.startswith("WeLink token refused")


async def test_wrong_secret_fails_the_send_without_a_card(welink: RunningWeLink, welink_channel):
    outcome = await welink_channel.send(welink.account(client_secret=WRONG_SECRET), card())
    assert isinstance(outcome, Failed) and outcome.code == "411007"
    assert WRONG_SECRET not in outcome.reason and welink.fake.card_requests == 0


async def test_unreachable_welink_is_retried(welink_channel):
    account = AccountRef(
        "w",
        1,
        WeLinkAccount(
            client_id="a", client_secret="b", endpoint=f"http://127.0.0.1:{closed_port()}"
        ),
    )
    outcome = await welink_channel.send(account, card())
    assert isinstance(outcome, Retry) and outcome.code == "connect"


async def test_welinks_own_rate_limit_is_retried_after_a_second(
    welink: RunningWeLink, welink_channel
):
    outcomes = await asyncio.gather(
        *(welink_channel.send(welink.account(), card(f"u{i}")) for i in range(45))
    )
    sent = [o for o in outcomes if isinstance(o, Sent)]
    limited = [o for o in outcomes if isinstance(o, Retry)]
    assert len(sent) == 40 and len(limited) == 5
    assert {(o.code, o.after) for o in limited} == {("48503", 1.0)}


# --- validate_account ------------------------------------------------------------------------


async def test_validate_account_fetches_a_token(welink: RunningWeLink, welink_channel):
    await welink_channel.validate_account(welink.account())
    assert welink.fake.token_requests == 1


async def test_validate_account_refuses_a_wrong_secret_with_welinks_reason(
    welink: RunningWeLink, welink_channel
):
    with pytest.raises(AccountInvalid) as raised:
        await welink_channel.validate_account(welink.account(client_secret=WRONG_SECRET))
    assert raised.value.field == "client_secret"
    assert "411007" in raised.value.reason and "incorrect" in raised.value.reason
    assert WRONG_SECRET not in raised.value.reason


async def test_validate_account_names_the_endpoint_when_unreachable(welink_channel):
    account = AccountRef(
        "w",
        1,
        WeLinkAccount(
            client_id="a", client_secret="b", endpoint=f"http://127.0.0.1:{closed_port()}"
        ),
    )
    with pytest.raises(AccountInvalid) as raised:
        await welink_channel.validate_account(account)
    assert raised.value.field == "endpoint" and "cannot connect" in raised.value.reason


async def test_close_then_send_again_opens_a_new_session(welink: RunningWeLink, welink_channel):
    assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
    await welink_channel.close()
    assert isinstance(await welink_channel.send(welink.account(), card()), Sent)
