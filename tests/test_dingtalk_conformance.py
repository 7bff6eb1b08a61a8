"""Both DingTalk channels pass the conformance kit third-party channels are held to, against
the fake DingTalk on a real socket (a fresh one per test, so the robot's 20/minute window and
the token cache start empty)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import ChannelConformance, OutgoingFor
from plugins.dingtalk.notice import DingTalkChannel
from plugins.dingtalk.options import NoticeOptions, RobotOptions
from plugins.dingtalk.robot import DingTalkRobotChannel
from tests.dingtalk_support import Fake, app_ref, robot_ref, running_fake

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


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    async with running_fake() as fake:
        yield fake


class TestDingTalkRobotConformance(ChannelConformance):
    send_timeout = 10.0

    @pytest.fixture
    async def channel(self) -> AsyncIterator[DingTalkRobotChannel]:
        channel = DingTalkRobotChannel()
        yield channel
        await channel.close()

    @pytest.fixture
    def account(self, fake: Fake) -> AccountRef:
        return robot_ref(fake.url, name="conformance")

    @pytest.fixture
    def bad_account(self, fake: Fake) -> AccountRef:
        return robot_ref(fake.url, name="conformance-bad", secret="SECconformance-wrong-secret")

    @pytest.fixture
    def recipient(self) -> str:
        return "13800001111"

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        def make(recipient: str) -> Outgoing:
            return Outgoing(
                delivery_id=str(uuid.uuid4()),
                message_id=str(uuid.uuid4()),
                recipient=recipient,
                subject="Conformance",
                text="hello from the conformance kit",
                options=RobotOptions(msgtype="markdown"),
            )

        return make

    @pytest.fixture
    def retry_outgoing(self, fake: Fake, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        for mobile, fault in ROBOT_RETRY.items():
            fake.state.fail_for(mobile, **fault)
        return {mobile: outgoing_for(mobile) for mobile in ROBOT_RETRY}

    @pytest.fixture
    def failed_outgoing(self, fake: Fake, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        for mobile, fault in ROBOT_FAILED.items():
            fake.state.fail_for(mobile, **fault)
        return {mobile: outgoing_for(mobile) for mobile in ROBOT_FAILED}

    @pytest.fixture
    def slow_outgoing(self, fake: Fake, outgoing_for: OutgoingFor) -> Outgoing:
        fake.state.fail_for("13900000009", **SLOW)
        return outgoing_for("13900000009")

    async def test_sent_posts_reach_the_fake_signed(
        self, channel, account, fake, recipient, outgoing_for
    ) -> None:
        await self._send(channel, account, outgoing_for(recipient))
        [post] = fake.state.robot_posts
        assert post.signed and post.body["at"]["atMobiles"] == [recipient]


class TestDingTalkNoticeConformance(ChannelConformance):
    send_timeout = 10.0

    @pytest.fixture
    async def channel(self) -> AsyncIterator[DingTalkChannel]:
        channel = DingTalkChannel()
        yield channel
        await channel.close()

    @pytest.fixture
    def account(self, fake: Fake) -> AccountRef:
        return app_ref(fake.url, name="conformance")

    @pytest.fixture
    def bad_account(self, fake: Fake) -> AccountRef:
        return app_ref(fake.url, name="conformance-bad", appsecret="conformance-wrong-secret")

    @pytest.fixture
    def recipient(self) -> str:
        return "manager4220"

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        def make(recipient: str) -> Outgoing:
            return Outgoing(
                delivery_id=str(uuid.uuid4()),
                message_id=str(uuid.uuid4()),
                recipient=recipient,
                subject="Conformance",
                text="hello from the conformance kit",
                options=NoticeOptions(),
            )

        return make

    @pytest.fixture
    def retry_outgoing(self, fake: Fake, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        for userid, fault in NOTICE_RETRY.items():
            fake.state.fail_for(userid, **fault)
        return {userid: outgoing_for(userid) for userid in NOTICE_RETRY}

    @pytest.fixture
    def failed_outgoing(self, fake: Fake, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        for userid, fault in NOTICE_FAILED.items():
            fake.state.fail_for(userid, **fault)
        return {userid: outgoing_for(userid) for userid in NOTICE_FAILED}

    @pytest.fixture
    def slow_outgoing(self, fake: Fake, outgoing_for: OutgoingFor) -> Outgoing:
        fake.state.fail_for("slow-user", **SLOW)
        return outgoing_for("slow-user")

    async def test_sent_notices_reach_the_fake(
        self, channel, account, fake, recipient, outgoing_for
    ) -> None:
        outcome = await self._send(channel, account, outgoing_for(recipient))
        assert fake.state.notices[int(outcome.provider_id)].userids == [recipient]
