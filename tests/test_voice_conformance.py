"""The voice channel passes the conformance kit against the fake Alibaba Cloud voice service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from gateway.channel import AccountRef, Failed
from gateway.testing import serving
from plugins.aliyun.fake import Fault
from plugins.voice.account import VoiceAccount
from plugins.voice.channel import VoiceChannel
from plugins.voice.fake import DEMO_SHOW_NUMBER, FakeVoice, make_app
from tests.aliyun_support import AliyunConformance, Served

KEY_ID = "LTAI5tVoiceConformance"
SECRET = "voice-conformance-secret-0123"
TOKEN = "voice-conformance-receipt-token"
TTS = "TTS_100000001"  # 您好，${name}，${content}，请尽快处理。

# temporary faults, arranged by number
RETRY_FAULTS = {
    "throttled": ("13900000001", Fault(code="Throttling.User", message="flow control")),
    "per-callee minute limit": (
        "13900000002",
        Fault(code="isv.BUSINESS_LIMIT_CONTROL", message="分钟级流控"),
    ),
    "HTTP 500": ("13900000003", Fault(status=500)),
    "isp.SYSTEM_ERROR": ("13900000004", Fault(code="isp.SYSTEM_ERROR", message="系统错误")),
}

# the fields of every delivery the kit sends
MESSAGE = {
    "text": "数据库告警，请尽快处理",
    "template": TTS,
    "variables": {"name": "张三", "content": "数据库告警"},
}


def _ref(url: str, name: str, secret: str) -> AccountRef:
    config = VoiceAccount(
        access_key_id=KEY_ID,
        access_key_secret=secret,
        called_show_number=DEMO_SHOW_NUMBER,
        endpoint=url,
        receipt_token=TOKEN,
    )
    return AccountRef(name=name, revision=1, config=config)


class TestVoiceConformance(AliyunConformance):
    account_for = staticmethod(_ref)
    secret, wrong_secret, number = SECRET, "voice-conformance-wrong-secret", "13900000000"
    message = MESSAGE
    channel_type = VoiceChannel
    number_param = "CalledNumber"
    retry_faults = RETRY_FAULTS
    invalid_number, content_number, slow_number = "13900000010", "13900000011", "13900000020"
    bad_template = "TTS_999999999"

    @pytest.fixture
    async def fake(self) -> AsyncIterator[Served]:
        state = FakeVoice(keys={KEY_ID: SECRET})
        state.flow_control = False  # the kit calls one number many times a minute
        async with serving(make_app(state)) as url:
            yield Served(state, url)

    async def test_text_over_the_size_limit_is_failed_not_truncated(
        self, channel, account, recipient, outgoing_for
    ) -> None:
        # A TTS call speaks its template, not ``text`` (so no max_text_chars); the size limit
        # that matters is on the variables: TtsParam under 250 characters, refused whole.
        outgoing = msgspec.structs.replace(
            outgoing_for(recipient), variables={"name": "张三", "content": "长" * 240}
        )
        outcome = await self._send(channel, account, outgoing)
        assert isinstance(outcome, Failed) and "250" in outcome.reason

    async def test_call_reaches_the_fake_provider(
        self, channel, account, fake, recipient, outgoing_for
    ) -> None:
        outcome = await self._send(channel, account, outgoing_for(recipient))
        (call,) = fake.state.calls
        assert call.callee == recipient and outcome.provider_id == call.call_id
