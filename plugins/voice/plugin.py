"""Hook implementations of the voice plugin: Alibaba Cloud TTS calls, call results, fake."""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.callbacks import CallbackRoute, FakeProvider
from gateway.channel import Channel
from plugins.voice.callbacks import routes
from plugins.voice.channel import VoiceChannel

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    """The ``voice`` channel."""
    return [VoiceChannel()]


@hookimpl
def msggate_callback_routes() -> list[CallbackRoute]:
    """VoiceReport pushes: ``POST /callbacks/voice/aliyun/{account}/{receipt_token}``."""
    return routes()


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    """A fake Alibaba Cloud voice service at ``/aliyun-voice``."""
    from plugins.voice.fake import fake_provider  # only the fake-providers command needs it

    return [fake_provider()]
