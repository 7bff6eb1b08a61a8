"""The sms channel passes the conformance kit against the fake Alibaba Cloud SMS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import Cases, ChannelConformance, OutgoingFor, serving
from plugins.aliyun.fake import Fault
from plugins.sms.account import SmsAccount
from plugins.sms.channel import SmsChannel
from plugins.sms.fake import FakeSms, make_app

KEY_ID = "LTAI5tSmsConformance"
SECRET = "sms-conformance-secret-0123"
TOKEN = "sms-conformance-receipt-token"
SIGN = "msggate测试"
TEMPLATE = "SMS_200000001"  # "${name}您好，${content}", a notification template


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


class TestSmsConformance(ChannelConformance):
    send_timeout = 15.0

    @pytest.fixture
    async def fake(self) -> AsyncIterator[tuple[FakeSms, str]]:
        state = FakeSms(keys={KEY_ID: SECRET})
        async with serving(make_app(state)) as url:
            yield state, url

    @pytest.fixture
    async def channel(self) -> AsyncIterator[SmsChannel]:
        channel = SmsChannel()
        yield channel
        await channel.close()

    @pytest.fixture
    def account(self, fake) -> AccountRef:
        return _ref(fake[1], "conformance", SECRET)

    @pytest.fixture
    def bad_account(self, fake) -> AccountRef:
        return _ref(fake[1], "conformance-bad", "sms-conformance-wrong-secret")

    @pytest.fixture
    def recipient(self) -> str:
        return "13800138000"

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        def make(recipient: str) -> Outgoing:
            return Outgoing(
                delivery_id=str(uuid.uuid4()),
                message_id=str(uuid.uuid4()),
                recipient=recipient,
                text="张三您好，来自一致性测试的消息",
                template=TEMPLATE,
                variables={"name": "张三", "content": "来自一致性测试的消息"},
            )

        return make

    @pytest.fixture
    def retry_outgoing(self, fake, outgoing_for) -> Cases:
        """Temporary faults, arranged by number: throttling, flow control, 5xx, system error."""
        faults = {
            "13800000001": Fault(code="Throttling.User", message="Request was denied"),
            "13800000002": Fault(
                code="isv.BUSINESS_LIMIT_CONTROL", message="触发分钟级流控Permits:1"
            ),
            "13800000003": Fault(status=503),
            "13800000004": Fault(code="isp.SYSTEM_ERROR", message="系统错误"),
        }
        for number, fault in faults.items():
            fault.when, fault.times = {"PhoneNumbers": number}, None
            fake[0].gateway.inject(fault)
        names = ["throttled", "per-number minute limit", "HTTP 503", "isp.SYSTEM_ERROR"]
        return {name: outgoing_for(n) for name, n in zip(names, faults, strict=True)}

    @pytest.fixture
    def failed_outgoing(self, fake, outgoing_for) -> Cases:
        """Permanent faults: an invalid number, blocked content, a template not approved."""
        fake[0].illegal_numbers.add("13800000010")
        base = outgoing_for("13800000011")
        return {
            "invalid number": outgoing_for("13800000010"),
            "blocked content": msgspec.structs.replace(
                base, variables={"name": "张三", "content": "违禁品"}
            ),
            "bad template": msgspec.structs.replace(base, template="SMS_999999999"),
        }

    @pytest.fixture
    def slow_outgoing(self, fake, outgoing_for) -> Cases:
        fake[0].gateway.inject(Fault(delay=1.0, when={"PhoneNumbers": "13800000020"}, times=None))
        return outgoing_for("13800000020")

    async def test_sent_message_reaches_the_fake_provider(
        self, channel, account, fake, recipient, outgoing_for
    ) -> None:
        outcome = await self._send(channel, account, outgoing_for(recipient))
        (sms,) = fake[0].sent
        assert sms.phone == recipient and outcome.provider_id == sms.biz_id
