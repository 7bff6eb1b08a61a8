"""Per-message options of the WeLink channel: card title, links, device, pop-up, English text."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from plugins.welink.account import OWNER_MAX_BYTES

log = logging.getLogger(__name__)

TITLE_MAX_BYTES = 128  # msgTitle (start-141), the whole string, bilingual JSON included
CONTENT_MAX_BYTES = 512  # msgContent, likewise
URL_MAX_CHARS = 2048  # not documented by WeLink [UNCONFIRMED]; a sane cap

DEVICES = {"pc": "0", "mobile": "1", "both": "2"}  # receiveDeviceType


def utf8_len(text: str) -> int:
    return len(text.encode())


class WeLinkOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``options`` of a WeLink message (all optional).

    - ``title``: the card title (default: the message subject, else the account's msg_owner);
    - ``title_en`` / ``text_en``: English versions; with either, title and content are sent in
      WeLink's bilingual form ``{"CN": ..., "EN": ...}`` (the byte limits apply to that JSON);
    - ``url``: where a tap on the card leads (``urlPath``, ``urlType`` "html");
      ``desktop_url``: the PC link (default: ``url``);
    - ``owner``: the sender label for this message (``msgOwner``, default the account's);
    - ``device``: ``pc``, ``mobile`` or ``both`` (default);
    - ``force_tips``: a pop-up on WeLink PC (``isForceTips``).
    """

    title: Annotated[str, Meta(min_length=1)] | None = None
    title_en: Annotated[str, Meta(min_length=1)] | None = None
    text_en: Annotated[str, Meta(min_length=1)] | None = None
    url: Annotated[str, Meta(min_length=1, max_length=URL_MAX_CHARS)] | None = None
    desktop_url: Annotated[str, Meta(min_length=1, max_length=URL_MAX_CHARS)] | None = None
    owner: Annotated[str, Meta(min_length=1)] | None = None
    device: Literal["pc", "mobile", "both"] = "both"
    force_tips: bool = False

    def __post_init__(self) -> None:
        # msgspec turns these ValueErrors into a 422 at accept time; the " - at `$.field`"
        # suffix is msgspec's own path notation, so the API names options.<field>
        limits = {
            "title": TITLE_MAX_BYTES,
            "title_en": TITLE_MAX_BYTES,
            "text_en": CONTENT_MAX_BYTES,
            "owner": OWNER_MAX_BYTES,
        }
        for field, limit in limits.items():
            value = getattr(self, field)
            if value is not None and utf8_len(value) > limit:
                raise ValueError(
                    f"too long: {utf8_len(value)} bytes, WeLink allows {limit}"
                    f" (a CJK character is 3 bytes) - at `$.{field}`"
                )
