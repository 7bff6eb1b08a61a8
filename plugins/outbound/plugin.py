"""Hook implementations of the outbound plugin: the ``outbound`` channel, receipts, its fake."""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.callbacks import CallbackRoute, FakeProvider
from gateway.channel import Channel
from plugins.outbound.channel import OutboundChannel
from plugins.outbound.receipts import routes

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    """The AI outbound-call channel."""
    return [OutboundChannel()]


@hookimpl
def msggate_callback_routes() -> list[CallbackRoute]:
    """Call-result receipts at ``/callbacks/outbound/aliyun/<account>/<receipt_token>``."""
    return routes()


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    """A fake of the robot-call APIs (dyvms BatchRobotSmartCall, aiccs RobotCall)."""
    from plugins.outbound.fake import fake_provider  # only the fake-providers command needs it

    return [fake_provider()]
