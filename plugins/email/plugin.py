"""The e-mail channel plugin, registered under the ``msggate.plugins`` entry point ``email``."""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.channel import Channel
from plugins.email.channel import EmailChannel

log = logging.getLogger(__name__)


@hookimpl
def msggate_channels() -> list[Channel]:
    """The e-mail channel."""
    return [EmailChannel()]
