"""The sms channel passes the conformance kit against the fake Alibaba Cloud SMS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.channel import AccountRef
from gateway.testing import serving
from plugins.aliyun.fake import Fault
from plugins.sms.account import SmsAccount
from plugins.sms.channel import SmsChannel
from plugins.sms.fake import FakeSms, make_app
from tests.aliyun_support import AliyunConformance, Served

KEY_ID = "LTAI5tSmsConformance"
SECRET = "sms-conformance-secret-0123"
TOKEN = "sms-conformance-receipt-token"
SIGN = "msggate测试"
TEMPLATE = "SMS_200000001"  # "${name}您好，${content}", a notification template

# temporary faults, arranged by number
RETRY_FAULTS = {
    "throttled": ("13800000001", Fault(code="Throttling.User", message="Request was denied")),
    "per-number minute limit": (
        "13800000002",
        Fault(code="isv.BUSINESS_LIMIT_CONTROL", message="触发分钟级流控Permits:1"),
    ),
    "HTTP 503": ("13800000003", Fault(status=503)),
    "isp.SYSTEM_ERROR": ("13800000004", Fault(code="isp.SYSTEM_ERROR", message="系统错误")),
}

# the fields of every delivery the kit sends
MESSAGE = {
    "text": "张三您好，来自一致性测试的消息",
    "template": TEMPLATE,
    "variables": {"name": "张三", "content": "来自一致性测试的消息"},
}


def _ref(url: str, name: str, secret: str) -> AccountRef:
    config = SmsAccount(
        access_key_id=KEY_ID,
        access_key_secret=secret,
        sign_name=SIGN,
        endpoint=url,
        receipt_token=TOKEN,
        templates={TEMPLATE: "${name}您好，${content}"},
    )
    return AccountRef(name=name, revision=1, config=config)


class TestSmsConformance(AliyunConformance):
    account_for = staticmethod(_ref)
    secret, wrong_secret, number = SECRET, "sms-conformance-wrong-secret", "13800138000"
    message = MESSAGE
    channel_type = SmsChannel
    number_param = "PhoneNumbers"
    retry_faults = RETRY_FAULTS
    invalid_number, content_number, slow_number = "13800000010", "13800000011", "13800000020"
    bad_template = "SMS_999999999"

    @pytest.fixture
    async def fake(self) -> AsyncIterator[Served]:
        state = FakeSms(keys={KEY_ID: SECRET})
        async with serving(make_app(state)) as url:
            yield Served(state, url)

    async def test_sent_message_reaches_the_fake_provider(
        self, channel, account, fake, recipient, outgoing_for
    ) -> None:
        outcome = await self._send(channel, account, outgoing_for(recipient))
        (sms,) = fake.state.sent
        assert sms.phone == recipient and outcome.provider_id == sms.biz_id
