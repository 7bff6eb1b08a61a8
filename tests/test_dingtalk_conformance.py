"""Both DingTalk channels pass the conformance kit third-party channels are held to, against
the fake DingTalk on a real socket (a fresh one per test, so the robot's 20/minute window and
the token cache start empty)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import ChannelConformance, OutgoingFor, outgoing
from plugins.dingtalk.notice import DingTalkChannel
from plugins.dingtalk.options import NoticeOptions, RobotOptions
from plugins.dingtalk.robot import DingTalkRobotChannel
from tests.dingtalk_support import Fake, app_ref, robot_ref

# recipient -> what the fake answers for it (HTTP status, errcode body, or a delay)
ROBOT_RETRY = {
    "13900000001": {"body": {"errcode": -1, "errmsg": "系统繁忙"}},
    "13900000002": {"body": {"errcode": 130101, "errmsg": "send too fast, exceed 20 times"}},
    "13900000003": {"status": 503},
}
ROBOT_FAILED = {
    "13900000004": {"body": {"errcode": 310000, "errmsg": "keywords not in content"}},
    "13900000005": {"body": {"errcode": 300001, "errmsg": "param error"}},
}
NOTICE_RETRY = {
    "busy-user": {"body": {"errcode": -1, "errmsg": "系统繁忙"}},
    "flood-user": {"body": {"errcode": 90018, "errmsg": "调用频率超限"}},
    "user-503": {"status": 503},
}
NOTICE_FAILED = {
    "no-permission-user": {
        "body": {"errcode": 88, "sub_code": "60011", "sub_msg": "没有调用该接口的权限"}
    },
    "bad-user": {"body": {"errcode": 33012, "errmsg": "无效的USERID"}},
}
SLOW = {"delay": 1.0}


class DingTalkConformance(ChannelConformance):
    """What both DingTalk channels share: faults set by recipient in the fake."""

    send_timeout = 10.0
    options: ClassVar[Any]  # the channel's options on every delivery
    retry: ClassVar[dict[str, dict[str, Any]]]  # recipient -> temporary fault
    failed: ClassVar[dict[str, dict[str, Any]]]  # recipient -> permanent fault
    slow: ClassVar[str]  # a recipient the fake answers after a second

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        return lambda recipient: outgoing(
            recipient,
            subject="Conformance",
            text="hello from the conformance kit",
            options=self.options,
        )

    @pytest.fixture
    def retry_outgoing(self, dingtalk: Fake, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        for recipient, fault in self.retry.items():
            dingtalk.state.fail_for(recipient, **fault)
        return {recipient: outgoing_for(recipient) for recipient in self.retry}

    @pytest.fixture
    def failed_outgoing(self, dingtalk: Fake, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        for recipient, fault in self.failed.items():
            dingtalk.state.fail_for(recipient, **fault)
        return {recipient: outgoing_for(recipient) for recipient in self.failed}

    @pytest.fixture
    def slow_outgoing(self, dingtalk: Fake, outgoing_for: OutgoingFor) -> Outgoing:
        dingtalk.state.fail_for(self.slow, **SLOW)
        return outgoing_for(self.slow)


class TestDingTalkRobotConformance(DingTalkConformance):
    channel_type = DingTalkRobotChannel
    options = RobotOptions(msgtype="markdown")
    retry, failed, slow = ROBOT_RETRY, ROBOT_FAILED, "13900000009"

    @pytest.fixture
    def account(self, dingtalk: Fake) -> AccountRef:
        return robot_ref(dingtalk.url, name="conformance")

    @pytest.fixture
    def bad_account(self, dingtalk: Fake) -> AccountRef:
        return robot_ref(dingtalk.url, name="conformance-bad", secret="SECconformance-wrong-secret")

    @pytest.fixture
    def recipient(self) -> str:
        return "13800001111"

    async def test_sent_posts_reach_the_fake_signed(
        self, channel, account, dingtalk, recipient, outgoing_for
    ) -> None:
        await self._send(channel, account, outgoing_for(recipient))
        [post] = dingtalk.state.robot_posts
        assert post.signed and post.body["at"]["atMobiles"] == [recipient]


class TestDingTalkNoticeConformance(DingTalkConformance):
    channel_type = DingTalkChannel
    options = NoticeOptions()
    retry, failed, slow = NOTICE_RETRY, NOTICE_FAILED, "slow-user"

    @pytest.fixture
    def account(self, dingtalk: Fake) -> AccountRef:
        return app_ref(dingtalk.url, name="conformance")

    @pytest.fixture
    def bad_account(self, dingtalk: Fake) -> AccountRef:
        return app_ref(dingtalk.url, name="conformance-bad", appsecret="conformance-wrong-secret")

    @pytest.fixture
    def recipient(self) -> str:
        return "manager4220"

    async def test_sent_notices_reach_the_fake(
        self, channel, account, dingtalk, recipient, outgoing_for
    ) -> None:
        outcome = await self._send(channel, account, outgoing_for(recipient))
        assert dingtalk.state.notices[int(outcome.provider_id)].userids == [recipient]
