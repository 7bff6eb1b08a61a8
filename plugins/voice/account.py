"""The voice account: an Alibaba Cloud AccessKey, the caller number, known TTS templates."""

from __future__ import annotations

import logging
import re
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from plugins.aliyun.account import AliyunAccount, InvalidAliyunAccount

log = logging.getLogger(__name__)

VMS_ENDPOINT = "https://dyvmsapi.aliyuncs.com"
_SHOW_NUMBER = re.compile(r"[\w-]{3,64}")


class VoiceAccount(AliyunAccount, kw_only=True, forbid_unknown_fields=True):
    """Alibaba Cloud Voice Messaging (dyvmsapi 2017-05-25), text-to-speech notifications.

    ``called_show_number``: the number callees see (CalledShowNumber: a purchased real number,
    or a service instance id) for "dedicated mode"; leave it out for "public mode" (a number
    from the shared pool). The TTS template's mode must match. ``templates``: optional texts of
    the approved TTS templates by TtsCode, to check variables before calling.
    ``play_times`` (1-3), ``volume`` (0-100), ``speed`` (-500..500): the call's playback,
    the provider's defaults when left out.
    """

    secret_fields: ClassVar[frozenset[str]] = AliyunAccount.secret_fields
    destination_fields: ClassVar[frozenset[str]] = AliyunAccount.destination_fields

    called_show_number: str | None = None
    templates: dict[str, str] = msgspec.field(default_factory=dict)
    play_times: Annotated[int, Meta(ge=1, le=3)] | None = None
    volume: Annotated[int, Meta(ge=0, le=100)] | None = None
    speed: Annotated[int, Meta(ge=-500, le=500)] | None = None

    def check(self) -> None:
        super().check()
        show = self.called_show_number
        if show is not None and not _SHOW_NUMBER.fullmatch(show):
            raise InvalidAliyunAccount(
                f"invalid caller number {show!r}: digits as purchased, e.g. 057112345678",
                "called_show_number",
            )
