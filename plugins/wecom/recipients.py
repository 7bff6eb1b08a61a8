"""What a delivery's recipient means to WeCom.

Application messages: a member's userid, ``party:<id>`` (a department, WeCom ``toparty``),
``tag:<id>`` (WeCom ``totag``) or ``@all`` (everyone in the app's visible range).

Group robots: the member to @-mention in the group — a userid, a mobile number, or ``@all``.
An 11-digit mainland mobile number (optionally ``+86``) is taken as a mobile; prefix
``userid:`` or ``mobile:`` to say which one a string is when it could be either.
"""

from __future__ import annotations

import logging
import re
from typing import Literal, NamedTuple

log = logging.getLogger(__name__)

ALL = "@all"

# WeCom userids: 1-64 bytes of letters, digits and "_-@.", starting with a letter or digit.
_USERID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_ID = re.compile(r"^[0-9]{1,10}$")
_MAINLAND_MOBILE = re.compile(r"^(?:\+?86)?1[3-9][0-9]{9}$")
_MOBILE = re.compile(r"^\+?[0-9]{5,20}$")


class AppTarget(NamedTuple):
    """Which body field (``touser``, ``toparty``, ``totag``) carries which value."""

    field: Literal["touser", "toparty", "totag"]
    value: str


class RobotMention(NamedTuple):
    """Whom a robot message @-mentions: a userid, a mobile number, or everyone."""

    kind: Literal["userid", "mobile", "all"]
    value: str


def app_target(recipient: str) -> AppTarget:
    """The application-message target; raise ValueError with the reason if there is none."""
    if recipient == ALL:
        return AppTarget("touser", ALL)
    prefix, sep, rest = recipient.partition(":")
    if sep and prefix in ("party", "tag"):
        if not _ID.match(rest):
            raise ValueError(f"{prefix}:<id> needs a numeric {prefix} id, not {rest!r}")
        return AppTarget("toparty" if prefix == "party" else "totag", rest)
    if not _USERID.match(recipient):
        raise ValueError(
            "not a WeCom userid (1-64 letters, digits or _-@. starting with a letter or digit),"
            " party:<id>, tag:<id> or @all"
        )
    return AppTarget("touser", recipient)


def robot_mention(recipient: str) -> RobotMention:
    """The member a robot message mentions; raise ValueError with the reason if none."""
    if recipient == ALL:
        return RobotMention("all", ALL)
    prefix, sep, rest = recipient.partition(":")
    if sep and prefix == "mobile":
        if not _MOBILE.match(rest):
            raise ValueError(f"not a mobile number: {rest!r}")
        return RobotMention("mobile", rest)
    if sep and prefix == "userid":
        if not _USERID.match(rest):
            raise ValueError(f"not a WeCom userid: {rest!r}")
        return RobotMention("userid", rest)
    if _MAINLAND_MOBILE.match(recipient):
        return RobotMention("mobile", recipient)
    if not _USERID.match(recipient):
        raise ValueError(
            "not a WeCom userid, a mobile number or @all (prefix userid: or mobile: if unclear)"
        )
    return RobotMention("userid", recipient)
