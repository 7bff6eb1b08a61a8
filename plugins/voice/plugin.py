"""Hook implementations of the voice plugin: Alibaba Cloud TTS calls, call results, fake."""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.callbacks import CallbackRoute, FakeProvider
from gateway.channel import Channel
from plugins.voice import callbacks
from plugins.voice.channel import VoiceChannel

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    """The ``voice`` channel."""
    return [VoiceChannel()]


@hookimpl
def msggate_callback_routes() -> list[CallbackRoute]:
    """VoiceReport pushes: ``POST /callbacks/voice/aliyun/{account}/{receipt_token}``."""
    return callbacks.routes()


@hookimpl
def msggate_fake_providers() -> list[FakeProvider]:
    """A fake Alibaba Cloud voice service at ``/aliyun-voice``."""
    from plugins.voice import fake

    return [
        FakeProvider(
            "aliyun-voice",
            fake.make_app,
            f"Alibaba Cloud voice (dyvmsapi): AccessKey {fake.DEMO_KEY_ID} / "
            f"{fake.DEMO_KEY_SECRET}, caller number {fake.DEMO_SHOW_NUMBER},"
            f" TTS templates {', '.join(fake.DEMO_TEMPLATES)}",
        )
    ]
