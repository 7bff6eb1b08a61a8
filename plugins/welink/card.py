"""Building the body of one card notification (``POST /api/messages/v2/card/common``).

Implements the WeLink "普通卡片消息" API v2 (support.huaweicloud.com/devg-welink/start-141):
one delivery is one card to one user (``msgRange`` "0", ``toUserList`` of one id).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gateway.channel import Outgoing
from plugins.welink.account import WeLinkAccount
from plugins.welink.options import (
    CONTENT_MAX_BYTES,
    DEVICES,
    TITLE_MAX_BYTES,
    WeLinkOptions,
    utf8_len,
)

log = logging.getLogger(__name__)

CARD_PATH = "/api/messages/v2/card/common"


class CardInvalid(ValueError):
    """The message cannot be a WeLink card (too long, no text): a permanent failure."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _bilingual(cn: str, en: str | None) -> str:
    """WeLink's two-language form is a JSON *string* {"CN": ..., "EN": ...}."""
    if en is None:
        return cn
    return json.dumps({"CN": cn, "EN": en}, ensure_ascii=False, separators=(",", ":"))


def _fits(what: str, value: str, limit: int) -> str:
    size = utf8_len(value)
    if size > limit:
        raise CardInvalid(
            f"{what} is {size} bytes; WeLink allows {limit} (a CJK character is 3 bytes)"
            " and would cut it: shorten it",
            code="size",
        )
    return value


def card_body(account: WeLinkAccount, outgoing: Outgoing) -> dict[str, Any]:
    """The JSON body for ``outgoing``; raise CardInvalid when it breaks WeLink's limits."""
    options = outgoing.options if isinstance(outgoing.options, WeLinkOptions) else WeLinkOptions()
    text = outgoing.text
    if not text or not text.strip():
        raise CardInvalid("a WeLink card needs text (its content); the message has none", "content")
    owner = options.owner or account.msg_owner
    title = options.title or outgoing.subject or owner
    body: dict[str, Any] = {
        "msgOwner": owner,
        "msgRange": "0",
        "toUserList": [outgoing.recipient],
        "msgTitle": _fits("the title", _bilingual(title, options.title_en), TITLE_MAX_BYTES),
        "msgContent": _fits("the text", _bilingual(text, options.text_en), CONTENT_MAX_BYTES),
        "receiveDeviceType": DEVICES[options.device],
    }
    if account.public_acc_id:
        body["publicAccID"] = account.public_acc_id
    if options.url:
        body["urlType"] = "html"
        body["urlPath"] = options.url
    if options.desktop_url:
        body["urlType"] = "html"
        body["desktopUrlPath"] = options.desktop_url
    if options.force_tips:
        body["isForceTips"] = 1
    return body
