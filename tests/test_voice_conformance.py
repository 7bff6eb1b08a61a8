"""The voice channel passes the conformance kit against the fake Alibaba Cloud voice service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest

from gateway.channel import AccountRef, Failed, Outgoing
from gateway.testing import Cases, ChannelConformance, OutgoingFor, serving
from plugins.aliyun.fake import Fault
from plugins.voice.account import VoiceAccount
from plugins.voice.channel import VoiceChannel
from plugins.voice.fake import DEMO_SHOW_NUMBER, FakeVoice, make_app

KEY_ID = "LTAI5tVoiceConformance"
SECRET = "voice-conformance-secret-0123"
TOKEN = "voice-conformance-receipt-token"
TTS = "TTS_100000001"  # 您好，${name}，${content}，请尽快处理。


def _ref(url: str, name: str, secret: str) -> AccountRef:
    config = VoiceAccount(
        access_key_id=KEY_ID,
        access_key_secret=secret,
        called_show_number=DEMO_SHOW_NUMBER,
        endpoint=url,
        receipt_token=TOKEN,
    )
    return AccountRef(name=name, revision=1, config=config)


class TestVoiceConformance(ChannelConformance):
    send_timeout = 15.0

    @pytest.fixture
    async def fake(self) -> AsyncIterator[tuple[FakeVoice, str]]:
        state = FakeVoice(keys={KEY_ID: SECRET})
        state.flow_control = False  # the kit calls one number many times a minute
        async with serving(make_app(state)) as url:
            yield state, url

    @pytest.fixture
    async def channel(self) -> AsyncIterator[VoiceChannel]:
        channel = VoiceChannel()
        yield channel
        await channel.close()

    @pytest.fixture
    def account(self, fake) -> AccountRef:
        return _ref(fake[1], "conformance", SECRET)

    @pytest.fixture
    def bad_account(self, fake) -> AccountRef:
        return _ref(fake[1], "conformance-bad", "voice-conformance-wrong-secret")

    @pytest.fixture
    def recipient(self) -> str:
        return "13900000000"

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        def make(recipient: str) -> Outgoing:
            return Outgoing(
                delivery_id=str(uuid.uuid4()),
                message_id=str(uuid.uuid4()),
                recipient=recipient,
                text="数据库告警，请尽快处理",
                template=TTS,
                variables={"name": "张三", "content": "数据库告警"},
            )

        return make

    @pytest.fixture
    def retry_outgoing(self, fake, outgoing_for) -> Cases:
        faults = {
            "throttled": ("13900000001", Fault(code="Throttling.User", message="flow control")),
            "per-callee minute limit": (
                "13900000002",
                Fault(code="isv.BUSINESS_LIMIT_CONTROL", message="分钟级流控"),
            ),
            "HTTP 500": ("13900000003", Fault(status=500)),
            "isp.SYSTEM_ERROR": ("13900000004", Fault(code="isp.SYSTEM_ERROR", message="系统错误")),
        }
        for number, fault in faults.values():
            fault.when, fault.times = {"CalledNumber": number}, None
            fake[0].gateway.inject(fault)
        return {name: outgoing_for(number) for name, (number, _) in faults.items()}

    @pytest.fixture
    def failed_outgoing(self, fake, outgoing_for) -> Cases:
        fake[0].illegal_numbers.add("13900000010")
        base = outgoing_for("13900000011")
        return {
            "invalid number": outgoing_for("13900000010"),
            "blocked content": msgspec.structs.replace(
                base, variables={"name": "张三", "content": "违禁品"}
            ),
            "bad template": msgspec.structs.replace(base, template="TTS_999999999"),
        }

    @pytest.fixture
    def slow_outgoing(self, fake, outgoing_for) -> Cases:
        fake[0].gateway.inject(Fault(delay=1.0, when={"CalledNumber": "13900000020"}, times=None))
        return outgoing_for("13900000020")

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
        (call,) = fake[0].calls
        assert call.callee == recipient and outcome.provider_id == call.call_id
