"""Building WeCom request bodies for one delivery, with the size limits checked first.

The message text is the content; a subject, when given, goes first on its own line (bold in
markdown) or becomes the text card's title. One delivery is one recipient, so each body names
exactly one user, department or tag (application) or mentions one member (robot).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.channel import Outgoing
from plugins.wecom.options import (
    APP_MARKDOWN_BYTES,
    APP_TEXT_BYTES,
    CARD_DESCRIPTION_BYTES,
    CARD_TITLE_BYTES,
    ROBOT_MARKDOWN_BYTES,
    ROBOT_TEXT_BYTES,
    WecomOptions,
    WecomRobotOptions,
    utf8_len,
)
from plugins.wecom.recipients import AppTarget, RobotMention

log = logging.getLogger(__name__)


class Unsendable(ValueError):
    """The delivery cannot be sent as it is (too big, no text ...): a permanent failure."""


def _text(outgoing: Outgoing) -> str:
    text = outgoing.text
    if text is None or not text.strip():
        raise Unsendable("WeCom messages need text: give the message a text")
    return text


def _with_subject(outgoing: Outgoing, text: str, markdown: bool) -> str:
    subject = (outgoing.subject or "").strip()
    if not subject:
        return text
    return f"**{subject}**\n{text}" if markdown else f"{subject}\n{text}"


def _check_size(what: str, value: str, limit: int) -> None:
    size = utf8_len(value)
    if size > limit:
        raise Unsendable(f"{what} is {size} bytes; WeCom takes at most {limit} bytes (UTF-8)")


def app_body(
    agentid: int, target: AppTarget, outgoing: Outgoing, options: WecomOptions
) -> dict[str, Any]:
    """The ``message/send`` body (spec §1.2); raise Unsendable."""
    text = _text(outgoing)
    body: dict[str, Any] = {target.field: target.value, "msgtype": options.msgtype}
    body["agentid"] = agentid  # an integer: WeCom refuses a string
    if options.msgtype == "textcard":
        title = (options.title or outgoing.subject or "").strip()
        if not title:
            raise Unsendable("a textcard needs a title: set options.title or a subject")
        _check_size("textcard title", title, CARD_TITLE_BYTES)
        _check_size("textcard description (the text)", text, CARD_DESCRIPTION_BYTES)
        card = {"title": title, "description": text, "url": options.url}
        if options.btntxt:
            card["btntxt"] = options.btntxt
        body["textcard"] = card
        return body
    markdown = options.msgtype == "markdown"
    content = _with_subject(outgoing, text, markdown)
    _check_size(
        f"{options.msgtype} content", content, APP_MARKDOWN_BYTES if markdown else APP_TEXT_BYTES
    )
    body[options.msgtype] = {"content": content}
    if options.safe:
        body["safe"] = 1
    return body


def robot_body(
    mention: RobotMention, outgoing: Outgoing, options: WecomRobotOptions
) -> dict[str, Any]:
    """The ``webhook/send`` body (spec §1.3) mentioning the recipient; raise Unsendable.

    ``text`` mentions through ``mentioned_list`` / ``mentioned_mobile_list``; ``markdown`` only
    through ``<@userid>`` in its content, so it cannot mention a mobile number or ``@all``.
    """
    text = _text(outgoing)
    if options.msgtype == "markdown":
        if mention.kind != "userid":
            raise Unsendable(
                f"a markdown robot message can only @-mention a userid (<@userid>), not"
                f" {mention.value!r}: use msgtype text to mention a mobile number or @all"
            )
        content = f"{_with_subject(outgoing, text, True)}\n<@{mention.value}>"
        _check_size("markdown content", content, ROBOT_MARKDOWN_BYTES)
        return {"msgtype": "markdown", "markdown": {"content": content}}
    content = _with_subject(outgoing, text, False)
    _check_size("text content", content, ROBOT_TEXT_BYTES)
    payload: dict[str, Any] = {"content": content}
    if mention.kind == "mobile":
        payload["mentioned_mobile_list"] = [mention.value]
    else:  # a userid, or "@all" which WeCom takes in mentioned_list
        payload["mentioned_list"] = [mention.value]
    return {"msgtype": "text", "text": payload}
