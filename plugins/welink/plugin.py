"""Hook implementations of the welink plugin: the ``welink`` channel and its fake provider."""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.callbacks import FakeProvider
from gateway.channel import Channel
from plugins.welink.channel import WeLinkChannel

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    """The WeLink card-notification channel."""
    return [WeLinkChannel()]


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    """A fake WeLink API (tokens, card notifications) at ``/welink``."""
    from plugins.welink.fake import fake_provider  # only the fake-providers command needs it

    return [fake_provider()]
