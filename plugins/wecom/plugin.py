"""Hook implementations of the wecom plugin: the ``wecom`` and ``wecom_robot`` channels.

WeCom has no delivery receipts for application or robot messages, so the plugin contributes
no callback routes; its fake server is served by ``msggate fake-providers`` at ``/wecom``.
"""

from __future__ import annotations

from gateway import hookimpl
from gateway.callbacks import FakeProvider
from gateway.channel import Channel
from plugins.wecom.channel import WecomChannel
from plugins.wecom.fake import make_app
from plugins.wecom.fake_state import FakeWecom
from plugins.wecom.robot import WecomRobotChannel


@hookimpl
def msggate_channels() -> list[Channel]:
    return [WecomChannel(), WecomRobotChannel()]


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    return [FakeProvider("wecom", make_app, FakeWecom(defaults=False).description())]
