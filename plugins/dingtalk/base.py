"""What the ``dingtalk`` and ``dingtalk_robot`` channels share: text content metered per
message, one HTTP session (:class:`plugins.dingtalk.http.Http`) closed at shutdown, and the
send options of a delivery (its own, or the channel's defaults)."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from gateway.channel import Channel, ContentKind, Outgoing
from plugins.dingtalk.http import Http


class DingTalkBase(Channel):
    """A DingTalk channel over one shared HTTP session; see the module."""

    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.TEXT})
    unit: ClassVar[str] = "message"
    options_type: ClassVar[type[msgspec.Struct]]

    def __init__(self) -> None:
        self._http = Http()

    def _options(self, outgoing: Outgoing) -> Any:
        """The delivery's options, or the defaults of ``options_type`` when it has none."""
        options = outgoing.options
        return options if isinstance(options, self.options_type) else self.options_type()

    async def close(self) -> None:
        await self._http.close()
