"""Hook implementations of the sms plugin: Alibaba Cloud SMS, its receipts and its fake."""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.callbacks import CallbackRoute, FakeProvider
from gateway.channel import Channel
from plugins.sms.callbacks import routes
from plugins.sms.channel import SmsChannel

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    """The ``sms`` channel."""
    return [SmsChannel()]


@hookimpl
def msggate_callback_routes() -> list[CallbackRoute]:
    """SmsReport pushes: ``POST /callbacks/sms/aliyun/{account}/{receipt_token}``."""
    return routes()


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    """A fake Alibaba Cloud SMS at ``/aliyun-sms``."""
    from plugins.sms.fake import fake_provider  # only the fake-providers command needs it

    return [fake_provider()]
