"""Fixtures for the outbound tests: the fake robot-call APIs on a real port, accounts on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import channel_fixture, outgoing, serving
from plugins.aliyun.fake import FakeRpcGateway
from plugins.outbound.account import OutboundAccount
from plugins.outbound.channel import OutboundChannel
from plugins.outbound.fake import OutboundFake, make_app

KEY_ID = "LTAI5tOutboundTest01"
KEY_SECRET = "outbound-s3cret-access-key"
WRONG_SECRET = "outbound-wrong-access-key"
COMPANY = "示例科技有限公司"
CALLER = "057100000000"
SCRIPT = "1000001234"
CALLEE = "13900000000"


@dataclass
class RunningOutbound:
    fake: OutboundFake
    url: str

    def account(self, revision: int = 1, **overrides: Any) -> AccountRef:
        config: dict[str, Any] = {
            "access_key_id": KEY_ID,
            "access_key_secret": KEY_SECRET,
            "company_name": COMPANY,
            "caller_number": CALLER,
            "endpoint": self.url,
        }
        config.update(overrides)
        return AccountRef(name="outbound-test", revision=revision, config=OutboundAccount(**config))


@pytest.fixture
def outbound_fake() -> OutboundFake:
    fake = OutboundFake(FakeRpcGateway("dyvmsapi.aliyuncs.com", {}))
    fake.add_account(KEY_ID, KEY_SECRET, COMPANY, CALLER, {SCRIPT})
    return fake


@pytest.fixture
async def outbound(outbound_fake: OutboundFake) -> AsyncIterator[RunningOutbound]:
    async with serving(make_app(outbound_fake)) as url:
        yield RunningOutbound(outbound_fake, url)
        await outbound_fake.settle()


outbound_channel = channel_fixture(OutboundChannel, "outbound_channel")


def call(recipient: str = CALLEE, **fields: Any) -> Outgoing:
    fields.setdefault("template", SCRIPT)
    fields.setdefault("variables", {"name": "张三"})
    return outgoing(recipient, **fields)
