"""Hook implementations of the sms plugin."""

from __future__ import annotations

from gateway import hookimpl
from gateway.channel import Channel


@hookimpl
def msggate_channels() -> list[Channel]:
    return []
