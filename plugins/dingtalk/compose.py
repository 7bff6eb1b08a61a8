"""Building the JSON DingTalk receives: robot bodies and work-notice ``msg`` objects.

Bodies are encoded once, as UTF-8 without ``\\uXXXX`` escapes, and measured as sent: the byte
limits (robot body 20 000, work notice ``msg`` 2 048) are DingTalk's, so a message over them
fails here with a clear reason instead of being cut or refused with an obscure code.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import msgspec

from gateway.channel import Failed, Outgoing
from plugins.dingtalk.mentions import Mention
from plugins.dingtalk.options import NOTICE_MSG_MAX, ROBOT_BODY_MAX, NoticeOptions, RobotOptions

log = logging.getLogger(__name__)

CHINA = dt.timezone(dt.timedelta(hours=8))
TITLE_FALLBACK_CHARS = 64
# The longest text each channel takes whole: the provider's limit is on the whole request body
# (robot) or ``msg`` object (work notice), so these leave room for titles, the @-mention or
# repeat suffix, msgUuid and JSON. A text within them can still fail the body check (many
# characters JSON must escape, long titles), never be cut.
ROBOT_TEXT_MAX = 18_000
NOTICE_TEXT_MAX = 1_800


def _text(outgoing: Outgoing, max_bytes: int) -> str | Failed:
    if outgoing.text is None or not outgoing.text.strip():
        return Failed(reason="a DingTalk message needs text (html is not sent)", code="empty")
    size = len(outgoing.text.encode())
    if size > max_bytes:
        return Failed(
            reason=f"the text is {size} bytes; this DingTalk channel takes at most {max_bytes}",
            code="too_large",
        )
    return outgoing.text


def _title(options: RobotOptions | NoticeOptions, outgoing: Outgoing, text: str) -> str:
    """The card/markdown title: the option, else the subject, else the text's first line."""
    if options.title:
        return options.title
    if outgoing.subject and outgoing.subject.strip():
        return outgoing.subject.strip()[:TITLE_FALLBACK_CHARS]
    first = next((line for line in text.splitlines() if line.strip()), text)
    return first.strip().lstrip("#>*- ").strip()[:TITLE_FALLBACK_CHARS] or "msggate"


def robot_body(outgoing: Outgoing, options: RobotOptions, mention: Mention) -> bytes | Failed:
    """The encoded ``/robot/send`` body for one post, or why it cannot be sent."""
    text = _text(outgoing, ROBOT_TEXT_MAX)
    if isinstance(text, Failed):
        return text
    body: dict[str, Any]
    if options.card:
        if mention.kind != "group":
            return Failed(
                reason="an actionCard cannot @-mention anyone: send it to recipient 'group'",
                code="mention_unsupported",
            )
        card: dict[str, Any] = {
            "title": _title(options, outgoing, text),
            "text": text,
            "btnOrientation": options.btn_orientation,
        }
        if options.single_title is not None:
            card.update(singleTitle=options.single_title, singleURL=options.single_url)
        else:
            card["btns"] = [{"title": b.title, "actionURL": b.url} for b in options.buttons]
        body = {"msgtype": "actionCard", "actionCard": card}
    else:
        tag = mention.tag
        if options.mention_in_text and tag and tag not in text:
            text = f"{text}\n\n{tag}" if options.msgtype == "markdown" else f"{text} {tag}"
        if options.msgtype == "markdown":
            title = _title(options, outgoing, text)
            body = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
        else:
            body = {"msgtype": "text", "text": {"content": text}}
        at = mention.at()
        if at is not None:
            body["at"] = at
    body["msgUuid"] = outgoing.delivery_id  # DingTalk's idempotency key: retries never duplicate
    encoded = msgspec.json.encode(body)
    if len(encoded) > ROBOT_BODY_MAX:
        return Failed(
            reason=f"the robot message is {len(encoded)} bytes; DingTalk takes at most "
            f"{ROBOT_BODY_MAX} bytes per request",
            code="too_large",
        )
    return encoded


def repeat_suffix(delivery_id: str, now: dt.datetime | None = None) -> str:
    """A short visible suffix that makes a repeated work notice unique: time and delivery id."""
    at = (now or dt.datetime.now(CHINA)).astimezone(CHINA)
    return f"\n\n({at:%H:%M:%S} #{delivery_id.replace('-', '')[-8:]})"


def notice_msg(outgoing: Outgoing, options: NoticeOptions, suffix: str = "") -> dict | Failed:
    """The work notice's ``msg`` object (snake_case types, unlike the robot's), or why not."""
    text = _text(outgoing, NOTICE_TEXT_MAX)
    if isinstance(text, Failed):
        return text
    text += suffix
    msg: dict[str, Any]
    if options.card:
        card: dict[str, Any] = {"title": _title(options, outgoing, text), "markdown": text}
        if options.single_title is not None:
            card.update(single_title=options.single_title, single_url=options.single_url)
        else:
            card["btn_orientation"] = options.btn_orientation
            card["btn_json_list"] = [
                {"title": b.title, "action_url": b.url} for b in options.buttons
            ]
        msg = {"msgtype": "action_card", "action_card": card}
    elif options.msgtype == "markdown":
        title = _title(options, outgoing, text)
        msg = {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    else:
        msg = {"msgtype": "text", "text": {"content": text}}
    size = len(msgspec.json.encode(msg))
    if size > NOTICE_MSG_MAX:
        return Failed(
            reason=f"the work notice's msg is {size} bytes; DingTalk takes at most "
            f"{NOTICE_MSG_MAX} bytes",
            code="too_large",
        )
    return msg
