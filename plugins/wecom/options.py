"""Per-message options of the WeCom channels, and the size limits WeCom documents (spec §1, §10).

Limits are UTF-8 bytes unless they say characters. Options are checked when a message is
accepted (a bad one is a 422 naming ``options.<field>``); what depends on the text is checked
in ``send``, which fails with a clear reason instead of letting WeCom truncate or refuse.
"""

from __future__ import annotations

import logging
from typing import Any, Literal, TypeVar

import msgspec

log = logging.getLogger(__name__)

_O = TypeVar("_O", bound=msgspec.Struct)

# Application messages (message/send)
APP_TEXT_BYTES = 2048
APP_MARKDOWN_BYTES = 2048
CARD_TITLE_BYTES = 128  # WeCom truncates a longer title silently
CARD_DESCRIPTION_BYTES = 512  # ... and a longer description
CARD_URL_BYTES = 2048
CARD_BTNTXT_CHARS = 4
# Group robot (webhook/send)
ROBOT_TEXT_BYTES = 2048
ROBOT_MARKDOWN_BYTES = 4096


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def _invalid(field: str, message: str) -> ValueError:
    # In msgspec's own "<message> - at `$.<path>`" form, so the API names options.<field>.
    return ValueError(f"{message} - at `$.{field}`")


class WecomOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Options of a ``wecom`` application message.

    ``msgtype``: ``text`` (default), ``markdown`` (rendered in the WeCom client only) or
    ``textcard``. A text card takes ``title`` (default: the message subject), ``url`` (required,
    http(s)) and ``btntxt`` (at most 4 characters, WeCom's default "详情"); its description is
    the message text. ``safe`` sends a confidential (watermarked, unshareable) text message.
    """

    msgtype: Literal["text", "markdown", "textcard"] = "text"
    title: str | None = None
    url: str | None = None
    btntxt: str | None = None
    safe: bool = False

    def __post_init__(self) -> None:
        card = self.msgtype == "textcard"
        for field in ("title", "url", "btntxt"):
            if getattr(self, field) is not None and not card:
                raise _invalid(field, f"{field} applies to msgtype textcard only")
        if self.safe and self.msgtype != "text":
            raise _invalid("safe", "safe (confidential) applies to msgtype text only")
        if self.title is not None and utf8_len(self.title) > CARD_TITLE_BYTES:
            raise _invalid("title", f"title exceeds {CARD_TITLE_BYTES} bytes (UTF-8)")
        if self.title is not None and not self.title.strip():
            raise _invalid("title", "title is empty")
        if card and not self.url:
            raise _invalid("url", "a textcard needs a url (the page its button opens)")
        if self.url is not None:
            if not self.url.startswith(("http://", "https://")):
                raise _invalid("url", "url must start with http:// or https://")
            if utf8_len(self.url) > CARD_URL_BYTES:
                raise _invalid("url", f"url exceeds {CARD_URL_BYTES} bytes")
        if self.btntxt is not None and not 1 <= len(self.btntxt) <= CARD_BTNTXT_CHARS:
            raise _invalid("btntxt", f"btntxt must be 1 to {CARD_BTNTXT_CHARS} characters")


class WecomRobotOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options of a ``wecom_robot`` message: ``msgtype`` ``text`` (default) or ``markdown``."""

    msgtype: Literal["text", "markdown"] = "text"


DEFAULT_OPTIONS = WecomOptions()
DEFAULT_ROBOT_OPTIONS = WecomRobotOptions()


def options_of(outgoing: Any, options_type: type[_O], default: _O) -> _O:
    """The delivery's options as ``options_type`` (the gateway hands them decoded; a plain
    mapping is decoded here); raise ValueError when they do not fit."""
    options = outgoing.options
    if options is None:
        return default
    if isinstance(options, options_type):
        return options
    try:
        return msgspec.convert(options, options_type)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid options: {exc}") from None
