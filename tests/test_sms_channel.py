"""The sms channel against the fake Alibaba Cloud SMS on a real socket: what SendSms carries,
billed units, checks before sending, every fault class of §4.4/§5.3, account validation
through GetSmsSign, recipients, and the declared per-number rate limits."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from gateway.channel import AccountInvalid, AccountRef, Failed, Outgoing, RateLimit, Retry, Sent
from gateway.testing import channel_fixture, serving
from plugins.aliyun.fake import Fault
from plugins.sms.account import SmsAccount
from plugins.sms.channel import SmsChannel
from plugins.sms.fake import FakeSms, FakeTemplate, make_app
from plugins.sms.segments import count_segments, signed_text
from tests.aliyun_support import AliyunChannelCases, Served, product_outgoing

KEY_ID = "LTAI5tSmsChannelTest"
SECRET = "sms-channel-test-secret-0123"
SIGN = "msggate测试"
NOTIFY, VERIFY, STATIC = "SMS_200000001", "SMS_200000002", "SMS_200000003"
TEMPLATES = {
    NOTIFY: "${name}您好，${content}",
    VERIFY: "您的验证码为${code}，5分钟内有效。",
    STATIC: "系统通知：服务已恢复。",
}
PHONE = "13800138000"


@pytest.fixture
async def fake() -> AsyncIterator[Served]:
    state = FakeSms(
        keys={KEY_ID: SECRET},
        signs={SIGN: 1},
        templates={
            NOTIFY: FakeTemplate("notification", TEMPLATES[NOTIFY]),
            VERIFY: FakeTemplate("verification", TEMPLATES[VERIFY]),
            STATIC: FakeTemplate("notification", TEMPLATES[STATIC]),
        },
    )
    async with serving(make_app(state)) as url:
        yield Served(state, url)


channel = channel_fixture(SmsChannel)


def ref(fake: Served, **overrides: Any) -> AccountRef:
    config: dict[str, Any] = dict(
        access_key_id=KEY_ID,
        access_key_secret=SECRET,
        sign_name=SIGN,
        endpoint=fake.url,
        templates=TEMPLATES,
        verification_templates=[VERIFY],
        timeout=2.0,
    )
    config.update(overrides)
    return AccountRef(name="sms-test", revision=1, config=msgspec.convert(config, SmsAccount))


def outgoing(template: str | None = NOTIFY, recipient: str = PHONE, **kw: Any) -> Outgoing:
    return product_outgoing(recipient, template, {"name": "张三", "content": "磁盘已满"}, **kw)


class TestSmsAsEveryAliyunChannel(AliyunChannelCases):
    action = "SendSms"
    template_word = "template"
    bad_template, bad_template_code = "SMS_999999999", "isv.SMS_TEMPLATE_ILLEGAL"
    channel_name, unit, fake_name = "sms", "segment", "aliyun-sms"
    secret = SECRET

    ref = staticmethod(ref)
    outgoing = staticmethod(outgoing)
    placed_attr = "sent"


# -- sending --------------------------------------------------------------------------------


async def test_send_calls_send_sms_with_signature_template_and_parameters(channel, fake):
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, Sent) and outcome.units == 1
    (sms,) = fake.state.sent
    assert outcome.provider_id == sms.biz_id
    assert sms.phone == PHONE and sms.sign_name == SIGN and sms.template_code == NOTIFY
    assert sms.text == "【msggate测试】张三您好，磁盘已满"
    (rpc,) = fake.state.gateway.received
    assert rpc.params["TemplateParam"] == '{"name":"张三","content":"磁盘已满"}'
    assert rpc.params["Version"] == "2017-05-25" and rpc.params["Format"] == "JSON"


async def test_numbers_in_variables_are_sent_as_strings(channel, fake):
    outcome = await channel.send(ref(fake), outgoing(VERIFY, variables={"code": 4821}))
    assert isinstance(outcome, Sent)
    assert fake.state.gateway.received[0].params["TemplateParam"] == '{"code":"4821"}'


async def test_units_are_the_billed_segments_of_the_rendered_template(channel, fake):
    content = "数据库主库连接数超过阈值，请值班人员立即处理。" * 4  # 92 characters
    outcome = await channel.send(
        ref(fake), outgoing(variables={"name": "李四", "content": content})
    )
    (sms,) = fake.state.sent
    assert len(sms.text) == len("【msggate测试】李四您好，") + len(content) == 108
    assert isinstance(outcome, Sent) and outcome.units == 2 == sms.size


async def test_units_count_the_message_text_when_the_template_text_is_unknown(channel, fake):
    text = "x" * 150
    account = ref(fake, templates={})
    outcome = await channel.send(account, outgoing(text=text))
    assert isinstance(outcome, Sent)
    assert outcome.units == count_segments(signed_text(SIGN, text)) == 3


async def test_message_over_500_characters_with_its_signature_fails_before_calling(channel, fake):
    outcome = await channel.send(
        ref(fake), outgoing(variables={"name": "赵六", "content": "长" * 490})
    )
    assert isinstance(outcome, Failed) and "500" in outcome.reason
    assert fake.state.gateway.received == []


async def test_nested_variable_fails_before_calling(channel, fake):
    outcome = await channel.send(ref(fake), outgoing(variables={"name": ["a"], "content": "x"}))
    assert isinstance(outcome, Failed) and fake.state.gateway.received == []


async def test_unknown_template_is_checked_by_the_provider(channel, fake):
    outcome = await channel.send(ref(fake, templates={}), outgoing(variables={"name": "x"}))
    assert isinstance(outcome, Failed) and outcome.code == "isv.TEMPLATE_MISSING_PARAMETERS"


# -- signature --------------------------------------------------------------------------------


async def test_unknown_access_key_fails_with_the_providers_code(channel, fake):
    outcome = await channel.send(ref(fake, access_key_id="LTAI5tNobody"), outgoing())
    assert isinstance(outcome, Failed) and outcome.code == "InvalidAccessKeyId.NotFound"


# -- fault classes ------------------------------------------------------------------------------


async def test_second_verification_code_in_a_minute_waits_for_the_next_minute(channel, fake):
    start = (time.time() // 60) * 60 + 5  # inside one natural minute, whatever the real time
    fake.state.clock = lambda: start
    first = await channel.send(ref(fake), outgoing(VERIFY, variables={"code": "1234"}))
    second = await channel.send(ref(fake), outgoing(VERIFY, variables={"code": "5678"}))
    assert isinstance(first, Sent)
    assert isinstance(second, Retry) and second.code == "isv.BUSINESS_LIMIT_CONTROL"
    assert "分钟级流控" in second.reason and 0 < second.after <= 61


@pytest.mark.parametrize(
    ("message", "kind", "max_after"),
    [
        ("触发小时级流控Permits:5", Retry, 3601),
        ("触发天级流控Permits:10", Failed, None),
        ("触发分钟级流控Permits:1", Retry, 61),
    ],
)
async def test_per_number_flow_control_follows_its_window(channel, fake, message, kind, max_after):
    fake.state.gateway.inject(Fault(code="isv.BUSINESS_LIMIT_CONTROL", message=message))
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, kind) and outcome.code == "isv.BUSINESS_LIMIT_CONTROL"
    assert message in outcome.reason
    if max_after is not None:
        assert 0 < outcome.after <= max_after


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("isv.DAY_LIMIT_CONTROL", Retry),
        ("isv.MONTH_LIMIT_CONTROL", Failed),
        ("isv.MOBILE_NUMBER_ILLEGAL", Failed),
        ("isv.MOBILE_COUNT_OVER_LIMIT", Failed),
        ("isv.TEMPLATE_MISSING_PARAMETERS", Failed),
        ("isv.INVALID_PARAMETERS", Failed),
        ("isv.INVALID_JSON_PARAM", Failed),
        ("isv.PARAM_LENGTH_LIMIT", Failed),
        ("isv.PARAM_NOT_SUPPORT_URL", Failed),
        ("isv.SMS_CONTENT_ILLEGAL", Failed),
        ("isv.BLACK_KEY_CONTROL_LIMIT", Failed),
        ("isv.SMS_TEMPLATE_ILLEGAL", Failed),
        ("isv.SMS_SIGNATURE_ILLEGAL", Failed),
        ("isv.SMS_SIGN_ILLEGAL", Failed),
        ("isv.SIGN_STATE_ILLEGAL", Failed),
        ("isv.SMS_SIGNATURE_SCENE_ILLEGAL", Failed),
        ("isv.DOMESTIC_NUMBER_NOT_SUPPORTED", Failed),
        ("isv.EXTEND_CODE_ERROR", Failed),
        ("isv.AMOUNT_NOT_ENOUGH", Failed),
        ("isv.OUT_OF_SERVICE", Failed),
        ("isv.ACCOUNT_NOT_EXISTS", Failed),
        ("isv.ACCOUNT_ABNORMAL", Failed),
        ("isv.PRODUCT_UN_SUBSCRIPT", Failed),
        ("isv.PRODUCT_UNSUBSCRIBE", Failed),
        ("isp.RAM_PERMISSION_DENY", Failed),
        ("isv.DENY_IP_RANGE", Failed),
        ("isp.SYSTEM_ERROR", Retry),
        ("isv.SOMETHING_NEW", Failed),
        ("isp.SOMETHING_NEW", Retry),
        ("Throttling.User", Retry),
        ("Forbidden.RAM", Failed),
        ("MissingPhoneNumbers", Failed),
    ],
)
async def test_every_documented_code_is_classified_as_the_spec_says(channel, fake, code, kind):
    fake.state.gateway.inject(Fault(code=code, message=f"the provider says {code}"))
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, kind), outcome
    assert outcome.code == code and f"the provider says {code}" in outcome.reason


async def test_daily_account_cap_waits_for_midnight_in_china(channel, fake):
    fake.state.gateway.inject(Fault(code="isv.DAY_LIMIT_CONTROL", message="触发日发送限额"))
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, Retry) and 0 < outcome.after <= 86401


async def test_invalid_number_is_failed_with_the_providers_code(channel, fake):
    fake.state.illegal_numbers.add("13900000000")
    outcome = await channel.send(ref(fake), outgoing(recipient="13900000000"))
    assert isinstance(outcome, Failed) and outcome.code == "isv.MOBILE_NUMBER_ILLEGAL"
    assert "非法手机号" in outcome.reason


async def test_link_in_a_variable_is_failed(channel, fake):
    variables = {"name": "x", "content": "see https://example.com"}
    outcome = await channel.send(ref(fake), outgoing(variables=variables))
    assert isinstance(outcome, Failed) and outcome.code == "isv.PARAM_NOT_SUPPORT_URL"


async def test_unapproved_signature_is_a_config_failure(channel, fake):
    fake.state.signs[SIGN] = 0
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, Failed) and outcome.code == "isv.SMS_SIGNATURE_ILLEGAL"


async def test_throttling_is_retried_after_at_least_a_second(channel, fake):
    fake.state.gateway.inject(Fault(code="Throttling.User", message="flow control"))
    outcome = await channel.send(ref(fake), outgoing())
    assert isinstance(outcome, Retry) and outcome.after >= 1.0


# -- validate_account ----------------------------------------------------------------------


async def test_validate_account_accepts_an_approved_signature(channel, fake):
    await channel.validate_account(ref(fake))
    (rpc,) = fake.state.gateway.received
    assert rpc.action == "GetSmsSign" and rpc.params["SignName"] == SIGN


@pytest.mark.parametrize(
    ("status", "words"), [(0, "under review"), (2, "rejected"), (10, "cancel")]
)
async def test_validate_account_refuses_a_signature_not_approved(channel, fake, status, words):
    fake.state.signs[SIGN] = status
    with pytest.raises(AccountInvalid) as raised:
        await channel.validate_account(ref(fake))
    assert raised.value.field == "sign_name" and words in raised.value.reason
    if status == 2:
        assert "资质信息不能证明签名归属" in raised.value.reason


async def test_validate_account_refuses_an_unknown_signature(channel, fake):
    with pytest.raises(AccountInvalid) as raised:
        await channel.validate_account(ref(fake, sign_name="别人的签名"))
    assert raised.value.field == "sign_name" and "isv.SMS_SIGN_ILLEGAL" in raised.value.reason


async def test_validate_account_reports_an_unreachable_endpoint(channel):
    account = AccountRef(
        name="x",
        revision=1,
        config=SmsAccount(
            access_key_id=KEY_ID,
            access_key_secret=SECRET,
            sign_name=SIGN,
            endpoint="http://127.0.0.1:1",
        ),
    )
    with pytest.raises(AccountInvalid, match="connect"):
        await channel.validate_account(account)


# -- account, recipients, limits -------------------------------------------------------------


def test_account_repr_hides_the_secret_and_the_receipt_token():
    account = SmsAccount(
        access_key_id=KEY_ID,
        access_key_secret=SECRET,
        sign_name=SIGN,
        receipt_token="receipt-token-0123456789",
    )
    assert SECRET not in repr(account) and "receipt-token" not in repr(account)
    assert SmsAccount.secret_fields == {"access_key_secret", "receipt_token"}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"access_key_secret": " padded-secret "}, "access_key_secret"),
        ({"sign_name": "【测试】"}, "sign_name"),
        ({"endpoint": "not a url"}, "endpoint"),
        ({"receipt_ips": ["300.1.1.1"]}, "receipt_ips"),
        ({"receipt_token": "short"}, "receipt_token"),
    ],
)
def test_account_config_mistakes_are_refused_naming_the_field(config, field):
    base = {"access_key_id": KEY_ID, "access_key_secret": SECRET, "sign_name": SIGN}
    with pytest.raises(msgspec.ValidationError) as raised:
        msgspec.convert({**base, **config}, SmsAccount)
    cause = raised.value.__cause__  # the account's own checks name the field
    named = cause.field if isinstance(cause, AccountInvalid) else str(raised.value)
    assert field in named


@pytest.mark.parametrize("number", ["13800138000", "19912345678", "16600000000"])
def test_mainland_mobile_numbers_are_accepted(number):
    assert SmsChannel().check_recipient(number) is None


@pytest.mark.parametrize(
    ("number", "bare"),
    [
        ("+8613800138000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("138 0013 8000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
    ],
)
def test_country_code_spaces_and_dashes_are_normalised_to_the_bare_number(number, bare):
    channel = SmsChannel()
    assert channel.normalize_recipient(number) == bare
    assert channel.check_recipient(bare) is None


@pytest.mark.parametrize(
    ("number", "hint"),
    [
        ("12345", "11 digits"),
        ("02112345678", "11 digits"),
        ("+86 10 1234 5678", "11 digits"),  # a landline: SMS goes to mobiles only
        ("someone@example.com", "11 digits"),
    ],
)
def test_other_recipient_forms_are_refused_with_a_hint(number, hint):
    channel = SmsChannel()
    problem = channel.check_recipient(channel.normalize_recipient(number))
    assert problem is not None and hint in problem


def test_rate_limits_for_notifications_are_50_a_day_per_number_and_template():
    channel = SmsChannel()
    limits = channel.rate_limits(ref(Served(FakeSms(), "http://x")), outgoing())
    assert RateLimit(f"aliyun-sms:{KEY_ID}", 5000, 1.0) in limits
    assert RateLimit(f"aliyun-sms:{KEY_ID}:{SIGN}:{NOTIFY}:{PHONE}:d", 50, 86400.0) in limits
    assert len(limits) == 2


def test_rate_limits_for_verification_codes_are_1_a_minute_5_an_hour_10_a_day():
    channel = SmsChannel()
    limits = channel.rate_limits(ref(Served(FakeSms(), "http://x")), outgoing(VERIFY))
    windows = sorted((limit.limit, limit.per_seconds) for limit in limits)
    assert windows == [(1, 60.0), (5, 3600.0), (10, 86400.0), (40, 86400.0), (5000, 1.0)]
    per_number = [limit.key for limit in limits if limit.limit == 40]
    assert per_number == [f"aliyun-sms:{KEY_ID}:{PHONE}:verify:d"]  # across signatures
