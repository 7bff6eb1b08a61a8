"""Both WeCom channels pass the conformance kit, against the fake WeCom on a real port.

Faults are set by recipient in the fake (``fail_recipient``), so they hold however the kit
interleaves its fault cases with ordinary sends.
"""

from __future__ import annotations

import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import ChannelConformance, OutgoingFor
from plugins.wecom.channel import WecomChannel
from plugins.wecom.robot import WecomRobotChannel
from tests.wecom_fixtures import WRONG_KEY, WRONG_SECRET, RunningWecom, message


def _make(recipient: str) -> Outgoing:
    # no subject: the kit's size tests send text exactly at the declared limit, and a subject
    # line would count against it
    return message(recipient, text="hello from the conformance kit")


def _faults(wecom: RunningWecom) -> None:
    fake = wecom.fake
    fake.fail_recipient("busy-user", errcode=-1)
    fake.fail_recipient("limited-user", errcode=45009)
    fake.fail_recipient("crowded-user", errcode=45033)
    fake.fail_recipient("broken-user", status=502)
    fake.fail_recipient("slow-user", delay=1.0)
    fake.fail_recipient("risky-user", errcode=82004)
    fake.fail_recipient("hidden-user", errcode=60011)


RETRY_CASES = ("busy-user", "limited-user", "crowded-user", "broken-user")


class WecomConformance(ChannelConformance):
    """What both WeCom channels share: faults set by recipient in the fake (``_faults``)."""

    send_timeout = 10.0

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        return _make

    @pytest.fixture
    def retry_outgoing(self) -> dict[str, Outgoing]:
        return {name: _make(name) for name in RETRY_CASES}

    @pytest.fixture
    def slow_outgoing(self) -> Outgoing:
        return _make("slow-user")


class TestWecomConformance(WecomConformance):
    channel_type = WecomChannel

    @pytest.fixture
    def account(self, wecom: RunningWecom) -> AccountRef:
        _faults(wecom)
        return wecom.app_account()

    @pytest.fixture
    def bad_account(self, wecom: RunningWecom) -> AccountRef:
        return wecom.app_account(corpsecret=WRONG_SECRET)

    @pytest.fixture
    def recipient(self) -> str:
        return "zhangsan"

    @pytest.fixture
    def failed_outgoing(self) -> dict[str, Outgoing]:
        return {
            "unknown user (81013)": _make("ghost"),
            "unknown department (81013)": _make("party:404"),
            "content refused (82004)": _make("risky-user"),
            "member out of range (60011)": _make("hidden-user"),
        }

    async def test_sent_messages_reach_the_fake(
        self, channel: WecomChannel, account: AccountRef, wecom: RunningWecom
    ) -> None:
        outcome = await self._send(channel, account, _make("zhangsan"))
        [received] = wecom.fake.messages
        assert outcome.provider_id == received.msgid and received.delivered_to == ["zhangsan"]


class TestWecomRobotConformance(WecomConformance):
    channel_type = WecomRobotChannel

    @pytest.fixture
    def account(self, wecom: RunningWecom) -> AccountRef:
        _faults(wecom)
        wecom.fake.robot_limit = 1000  # the kit sends more than a real robot's 20 a minute
        return wecom.robot_account()

    @pytest.fixture
    def bad_account(self, wecom: RunningWecom) -> AccountRef:
        return wecom.robot_account(key=WRONG_KEY)

    @pytest.fixture
    def recipient(self) -> str:
        return "wangqing"

    @pytest.fixture
    def failed_outgoing(self) -> dict[str, Outgoing]:
        return {"content refused (82004)": _make("risky-user")}

    async def test_sent_messages_reach_the_group(
        self, channel: WecomRobotChannel, account: AccountRef, wecom: RunningWecom
    ) -> None:
        await self._send(channel, account, _make("wangqing"))
        [posted] = wecom.fake.robot_messages
        assert posted.mentioned_list == ["wangqing"]
