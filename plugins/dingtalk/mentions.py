"""What a ``dingtalk_robot`` recipient means: whom the group message @-mentions.

A robot posts to its group; each recipient of a message is one post that @-mentions:

- ``group``: nobody (a plain post to the group);
- ``@all``: everyone (``isAtAll``);
- a mainland mobile number (``13800001111``, ``+86 13800001111``, ``+86-13800001111``) or
  ``mobile:<number>`` for any other number: that member (``atMobiles``);
- ``userid:<userid>``, or any other bare DingTalk userid: that member (``atUserIds``).

Numeric userids that look like a mainland mobile number need the ``userid:`` prefix.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

import msgspec

log = logging.getLogger(__name__)

USERID = re.compile(r"[A-Za-z0-9_.:$@-]{1,64}")
MAINLAND_MOBILE = re.compile(r"(?:\+?86[ -]?)?(1[3-9]\d{9})")
ANY_MOBILE = re.compile(r"\+?[0-9][0-9-]{4,24}")


class Mention(msgspec.Struct, frozen=True):
    """Whom one post @-mentions."""

    kind: Literal["group", "all", "mobile", "userid"]
    value: str = ""

    def at(self) -> dict[str, object] | None:
        """The robot body's ``at`` object, or None for a plain group post."""
        if self.kind == "all":
            return {"isAtAll": True}
        if self.kind == "mobile":
            return {"atMobiles": [self.value], "isAtAll": False}
        if self.kind == "userid":
            return {"atUserIds": [self.value], "isAtAll": False}
        return None

    @property
    def tag(self) -> str | None:
        """The ``@...`` text that makes the mention visible, if the text needs one."""
        return f"@{self.value}" if self.kind in ("mobile", "userid") else None


def parse_recipient(recipient: str) -> Mention | str:
    """The mention a recipient stands for, or why it is not a robot recipient."""
    value = recipient.strip()
    if value.lower() == "group":
        return Mention("group")
    if value.lower() in ("@all", "all"):
        return Mention("all")
    if value.startswith("mobile:"):
        number = value.removeprefix("mobile:").strip()
        mainland = MAINLAND_MOBILE.fullmatch(number)
        if mainland:
            return Mention("mobile", mainland.group(1))
        if ANY_MOBILE.fullmatch(number):
            return Mention("mobile", number)
        return f"{number!r} is not a mobile number"
    if value.startswith("userid:"):
        value = value.removeprefix("userid:").strip()
        return Mention("userid", value) if USERID.fullmatch(value) else _bad_userid(value)
    mainland = MAINLAND_MOBILE.fullmatch(value)
    if mainland:
        return Mention("mobile", mainland.group(1))
    if USERID.fullmatch(value):
        return Mention("userid", value)
    return (
        "a robot recipient is 'group', '@all', a mobile number, 'mobile:<number>' or a "
        f"DingTalk userid ('userid:<id>'), not {recipient[:80]!r}"
    )


def check_userid(value: str) -> str | None:
    """Why ``value`` is not a DingTalk userid, or None."""
    return None if USERID.fullmatch(value) else _bad_userid(value)


def _bad_userid(value: str) -> str:
    return (
        "a DingTalk userid is 1-64 letters, digits or _ . : $ @ -, "
        f"without spaces or commas, not {value[:80]!r}"
    )
