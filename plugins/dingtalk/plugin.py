"""Hook implementations of the dingtalk plugin: two channels and a fake DingTalk.

- ``dingtalk_robot``: group messages through a custom robot (signed webhook).
- ``dingtalk``: work notifications (工作通知) from an enterprise internal app to userids.
"""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.callbacks import FakeProvider
from gateway.channel import Channel
from plugins.dingtalk import fake
from plugins.dingtalk.notice import DingTalkChannel
from plugins.dingtalk.robot import DingTalkRobotChannel

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    return [DingTalkRobotChannel(), DingTalkChannel()]


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    return [FakeProvider("dingtalk", fake.make_app, fake.DEMO_DESCRIPTION)]
