"""Fixtures for the WeCom tests: the fake WeCom API on a real port, accounts pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import channel_fixture, outgoing
from plugins.wecom.account import WecomAccount, WecomRobotAccount
from plugins.wecom.channel import WecomChannel
from plugins.wecom.fake import running_fake
from plugins.wecom.fake_state import AGENT_ID, CORP_ID, CORP_SECRET, ROBOT_KEY, FakeWecom
from plugins.wecom.robot import WecomRobotChannel

WRONG_SECRET = "wrong-wecom-app-secret-9876543210"
WRONG_KEY = "deadbeef-0000-4bc4-97a0-0ec2a1fa5bbb"


@dataclass
class RunningWecom:
    """The fake on a real port: its state and base URL, and accounts pointing at it."""

    fake: FakeWecom
    url: str

    def app_account(self, revision: int = 1, **overrides: Any) -> AccountRef:
        config: dict[str, Any] = {
            "corpid": CORP_ID,
            "corpsecret": CORP_SECRET,
            "agentid": AGENT_ID,
            "endpoint": self.url,
        }
        config.update(overrides)
        return AccountRef(name="wecom-test", revision=revision, config=WecomAccount(**config))

    def robot_account(self, revision: int = 1, **overrides: Any) -> AccountRef:
        config: dict[str, Any] = {"key": ROBOT_KEY, "endpoint": self.url}
        config.update(overrides)
        return AccountRef(name="robot-test", revision=revision, config=WecomRobotAccount(**config))


@pytest.fixture
def wecom_fake() -> FakeWecom:
    """The fake's state, with its default app and robot; tests may reconfigure it."""
    return FakeWecom()


@pytest.fixture
async def wecom(wecom_fake: FakeWecom) -> AsyncIterator[RunningWecom]:
    async with running_fake(wecom_fake) as running:
        yield RunningWecom(wecom_fake, running.url)


app_channel = channel_fixture(WecomChannel, "app_channel")


robot_channel = channel_fixture(WecomRobotChannel, "robot_channel")


def message(recipient: str = "zhangsan", **fields: Any) -> Outgoing:
    """One delivery of an alert (no subject unless given)."""
    fields.setdefault("text", "db-1 disk at 95%")
    return outgoing(recipient, **fields)
