"""The msggate plugin: registered under the ``msggate.plugins`` entry point ``webhook``."""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.callbacks import CallbackRoute, FakeProvider
from gateway.channel import Channel

from msggate_webhook.channel import WebhookChannel
from msggate_webhook.fake import fake_provider
from msggate_webhook.receipts import receipt_route

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    """The ``webhook`` channel."""
    return [WebhookChannel()]


@hookimpl
def msggate_callback_routes() -> list[CallbackRoute]:
    """``POST /callbacks/webhook/receipts``: receipts from receivers."""
    return [receipt_route()]


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    """A fake receiver, for tests and for trying the channel out."""
    return [fake_provider()]
