"""Per-message options of the DingTalk channels: message type, titles, card buttons.

Each API has its own spelling of the card type (robot ``actionCard``, work notice
``action_card``); both channels accept either. Size limits that the options alone can break
(the robot's 20 000-byte body, the work notice's 2 048-byte ``msg``) are refused at accept.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

log = logging.getLogger(__name__)

ROBOT_BODY_MAX = 20_000  # bytes of the whole robot request body (specs §2.5)
NOTICE_MSG_MAX = 2_048  # bytes of a work notice's ``msg`` object (specs §2.3, §2.5)

MsgType = Literal["text", "markdown", "actionCard", "action_card"]
Url = Annotated[str, Meta(min_length=1, max_length=2048, pattern=r"^(https?|dingtalk)://\S+$")]


class Button(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One button of an action card."""

    title: Annotated[str, Meta(min_length=1, max_length=64)]
    url: Url


class _CardOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    msgtype: MsgType = "text"
    title: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    single_title: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    single_url: Url | None = None
    buttons: Annotated[list[Button], Meta(max_length=10)] = []
    btn_orientation: Literal["0", "1"] = "0"

    @property
    def card(self) -> bool:
        return self.msgtype in ("actionCard", "action_card")

    def _check(self, limit: int, what: str) -> None:
        if self.card:
            if (self.single_title is None) != (self.single_url is None):
                raise ValueError("an action card's single_title and single_url go together")
            if self.single_title is None and not self.buttons:
                raise ValueError("an action card needs single_title + single_url, or buttons")
            if self.single_title is not None and self.buttons:
                raise ValueError(
                    "give an action card single_title + single_url, or buttons: not both"
                )
        elif self.single_title or self.single_url or self.buttons:
            raise ValueError(f"buttons are for msgtype actionCard, not {self.msgtype}")
        used = sum(
            len(s.encode())
            for s in (self.title, self.single_title, self.single_url)
            if s is not None
        ) + sum(len(b.title.encode()) + len(b.url.encode()) for b in self.buttons)
        if used > limit:
            raise ValueError(f"title and buttons take {used} bytes: {what} is at most {limit}")


class RobotOptions(_CardOptions, frozen=True):
    """Options of ``dingtalk_robot``.

    ``msgtype``: ``text`` (default), ``markdown`` or ``actionCard``. ``title`` is what the chat
    list shows for markdown and cards (default: the message subject, else the text's first
    line). A card takes ``single_title`` + ``single_url`` (one button) or ``buttons``.
    ``mention_in_text`` writes ``@<mobile>`` / ``@<userid>`` into text and markdown when the
    text lacks it, since DingTalk only highlights a mention that appears in the text.
    """

    mention_in_text: bool = True

    def __post_init__(self) -> None:
        self._check(ROBOT_BODY_MAX, "a robot message")


class NoticeOptions(_CardOptions, frozen=True):
    """Options of ``dingtalk`` (work notifications); card fields as for the robot.

    DingTalk silently drops a work notice with the same content to the same user on the same
    day. ``repeat_suffix`` decides when a short visible suffix (time and delivery id) makes the
    content unique: ``auto`` (default) when this node sent the same content to the same user in
    the last 24 hours, ``always``, or ``never``.
    """

    repeat_suffix: Literal["auto", "always", "never"] = "auto"

    def __post_init__(self) -> None:
        self._check(NOTICE_MSG_MAX, "a work notice's msg")
