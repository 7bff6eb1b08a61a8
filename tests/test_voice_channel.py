"""The voice channel against the fake Alibaba Cloud voice service on a real socket: what
SingleCallByTts carries, checks before calling, every fault class, account validation,
recipients and the declared per-callee rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from gateway.channel import AccountInvalid, AccountRef, Failed, Outgoing, RateLimit, Retry, Sent
from gateway.testing import channel_fixture, serving
from plugins.aliyun.client import Reply
from plugins.aliyun.fake import Fault
from plugins.voice.account import VoiceAccount
from plugins.voice.channel import VoiceChannel
from plugins.voice.fake import FakeVoice, make_app
from tests.aliyun_support import AliyunChannelCases, Served, product_outgoing

KEY_ID = "LTAI5tVoiceChannel01"
SECRET = "voice-channel-secret-0123"
SHOW = "057188880000"
TTS = "TTS_100000001"
TEMPLATES = {
    TTS: "您好，${name}，${content}，请尽快处理。",
    "TTS_100000002": "您的验证码是${code}。",
}
CALLEE = "13900000000"


@pytest.fixture
async def fake() -> AsyncIterator[Served]:
    state = FakeVoice(keys={KEY_ID: SECRET}, show_numbers={SHOW}, templates=TEMPLATES)
    async with serving(make_app(state)) as url:
        yield Served(state, url)


channel = channel_fixture(VoiceChannel)


def ref(fake: Served, **overrides: Any) -> AccountRef:
    config: dict[str, Any] = dict(
        access_key_id=KEY_ID,
        access_key_secret=SECRET,
        called_show_number=SHOW,
        endpoint=fake.url,
        templates=TEMPLATES,
        timeout=2.0,
    )
    config.update(overrides)
    return AccountRef(name="voice-test", revision=1, config=msgspec.convert(config, VoiceAccount))


def outgoing(template: str | None = TTS, recipient: str = CALLEE, **kw: Any) -> Outgoing:
    return product_outgoing(recipient, template, {"name": "张三", "content": "数据库告警"}, **kw)


class TestVoiceAsEveryAliyunChannel(AliyunChannelCases):
    action = "SingleCallByTts"
    template_word = "TtsCode"
    bad_template, bad_template_code = "TTS_999999999", "isv.TTS_TEMPLATE_ILLEGAL"
    channel_name, unit, fake_name = "voice", "call", "aliyun-voice"
    secret = SECRET

    ref = staticmethod(ref)
    outgoing = staticmethod(outgoing)
    placed_attr = "calls"


async def test_send_places_a_tts_call_with_the_caller_number_and_variables(channel, fake):
    outcome = await channel.send(ref(fake, play_times=2, volume=80), outgoing())
    assert isinstance(outcome, Sent) and outcome.units == 1
    (call,) = fake.state.calls
    assert outcome.provider_id == call.call_id
    assert call.callee == CALLEE and call.caller == SHOW and call.tts_code == TTS
    assert call.text == "您好，张三，数据库告警，请尽快处理。"
    (rpc,) = fake.state.gateway.received
    assert rpc.params["TtsParam"] == '{"name":"张三","content":"数据库告警"}'
    assert rpc.params["PlayTimes"] == "2" and rpc.params["Volume"] == "80"
    assert "Speed" not in rpc.params


async def test_landline_callee_and_public_mode_without_a_caller_number(channel, fake):
    outcome = await channel.send(
        ref(fake, called_show_number=None), outgoing(recipient="01012345678")
    )
    assert isinstance(outcome, Sent)
    (rpc,) = fake.state.gateway.received
    assert "CalledShowNumber" not in rpc.params
    assert fake.state.calls[0].callee == "01012345678"


async def test_tts_param_of_250_characters_or_more_fails_before_calling(channel, fake):
    outcome = await channel.send(
        ref(fake), outgoing(variables={"name": "x", "content": "长" * 240})
    )
    assert isinstance(outcome, Failed) and "250" in outcome.reason
    assert fake.state.gateway.received == []


async def test_the_fake_refuses_a_long_tts_param_as_the_provider_does(channel, fake):
    params = {"CalledNumber": CALLEE, "TtsCode": TTS, "TtsParam": '{"name":"' + "x" * 250 + '"}'}
    reply = await channel.client.call(
        fake.url, "SingleCallByTts", "2017-05-25", params, KEY_ID, SECRET
    )
    assert isinstance(reply, Reply) and reply.code == "isv.PARAM_LENGTH_LIMIT"


async def test_second_call_to_a_callee_within_a_minute_waits_for_the_next_minute(channel, fake):
    start = (time.time() // 60) * 60 + 5
    fake.state.clock = lambda: start
    first = await channel.send(ref(fake), outgoing())
    second = await channel.send(ref(fake), outgoing())
    assert isinstance(first, Sent)
    assert isinstance(second, Retry) and second.code == "isv.BUSINESS_LIMIT_CONTROL"
    assert 0 < second.after <= 61


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("isv.TTS_TEMPLATE_ILLEGAL", Failed),
        ("isv.TEMPLATE_ILLEGAL", Failed),
        ("isv.DISPLAY_NUMBER_ILLEGAL", Failed),
        ("isv.TEMPLATE_MISSING_PARAMETERS", Failed),
        ("isv.BLACK_KEY_CONTROL_LIMIT", Failed),
        ("isv.INVALID_PARAMETERS", Failed),
        ("isv.PARAM_NOT_SUPPORT_URL", Failed),
        ("isv.MOBILE_NUMBER_ILLEGAL", Failed),
        ("isv.PARAM_LENGTH_LIMIT", Failed),
        ("isv.OUT_OF_SERVICE", Failed),
        ("isv.PRODUCT_UN_SUBSCRIPT", Failed),
        ("isv.PRODUCT_UNSUBSCRIBE", Failed),
        ("isv.ACCOUNT_NOT_EXISTS", Failed),
        ("isv.ACCOUNT_ABNORMAL", Failed),
        ("isp.RAM_PERMISSION_DENY", Failed),
        ("isp.SYSTEM_ERROR", Retry),
        ("isv.SOMETHING_NEW", Failed),
        ("isp.SOMETHING_NEW", Retry),
        ("Throttling.User", Retry),
    ],
)
async def test_every_vms_error_code_is_classified(channel, fake, code, kind):
    fake.state.gateway.inject(Fault(code=code, message=f"the provider says {code}"))
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, kind), outcome
    assert outcome.code == code and f"the provider says {code}" in outcome.reason


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("触发分钟级流控Permits:1", Retry),
        ("触发小时级流控Permits:5", Retry),
        ("触发天级流控Permits:20", Failed),
    ],
)
async def test_per_callee_flow_control_follows_its_window(channel, fake, message, kind):
    fake.state.gateway.inject(Fault(code="isv.BUSINESS_LIMIT_CONTROL", message=message))
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, kind) and message in outcome.reason


async def test_invalid_number_is_failed(channel, fake):
    fake.state.illegal_numbers.add("13911112222")
    outcome = await channel.send(ref(fake), outgoing(recipient="13911112222"))
    assert isinstance(outcome, Failed) and outcome.code == "isv.MOBILE_NUMBER_ILLEGAL"


async def test_caller_number_not_owned_is_a_config_failure(channel, fake):
    outcome = await channel.send(ref(fake, called_show_number="057100000000"), outgoing())
    assert isinstance(outcome, Failed) and outcome.code == "isv.DISPLAY_NUMBER_ILLEGAL"


async def test_validate_account_proves_the_access_key_with_a_harmless_query(channel, fake):
    await channel.validate_account(ref(fake))
    (rpc,) = fake.state.gateway.received
    assert rpc.action == "QueryCallDetailByCallId" and fake.state.calls == []


async def test_validate_account_refuses_an_account_without_the_product(channel, fake):
    fake.state.gateway.inject(Fault(code="isv.PRODUCT_UN_SUBSCRIPT", message="未开通云通信产品"))
    with pytest.raises(AccountInvalid) as raised:
        await channel.validate_account(ref(fake))
    assert "未开通云通信产品" in raised.value.reason and raised.value.field == "access_key_id"


@pytest.mark.parametrize("number", ["13900000000", "01012345678", "057112345678", "0755123456"])
def test_mobile_and_landline_numbers_are_accepted(number):
    assert VoiceChannel().check_recipient(number) is None


@pytest.mark.parametrize(
    ("number", "bare"),
    [
        ("+8613900000000", "13900000000"),
        ("0571-12345678", "057112345678"),
        ("+86 10 12345678", "01012345678"),
        ("+86 10 1234 5678", "01012345678"),
        ("(0571) 8888-9999", "057188889999"),
    ],
)
def test_country_code_spaces_and_dashes_are_normalised_to_the_bare_number(number, bare):
    channel = VoiceChannel()
    assert channel.normalize_recipient(number) == bare
    assert channel.check_recipient(bare) is None


@pytest.mark.parametrize(
    ("number", "hint"), [("12345", "mainland"), ("ops@example.com", "mainland")]
)
def test_other_forms_are_refused_with_a_hint(number, hint):
    channel = VoiceChannel()
    problem = channel.check_recipient(channel.normalize_recipient(number))
    assert problem is not None and hint in problem


def test_rate_limits_are_1_a_minute_5_an_hour_20_a_day_per_callee():
    limits = VoiceChannel().rate_limits(ref(Served(FakeVoice(), "http://x")), outgoing())
    assert sorted((x.limit, x.per_seconds) for x in limits) == [
        (1, 60.0),
        (5, 3600.0),
        (20, 86400.0),
        (1000, 1.0),
    ]
    assert RateLimit(f"aliyun-vms:{KEY_ID}:{CALLEE}:m", 1, 60.0) in limits


def test_account_repr_hides_the_secret():
    account = VoiceAccount(access_key_id=KEY_ID, access_key_secret=SECRET)
    assert SECRET not in repr(account) and KEY_ID in repr(account)
