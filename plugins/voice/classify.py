"""SingleCallByTts answers into outcomes (specs/channels.md §6.3, VMS error-code list).

Voice shares the ``isv.*``/``isp.*`` family of SMS (:data:`plugins.aliyun.errors.
COMMUNICATION_RULES`); these are its own codes. Per-callee flow control follows the message's
window like SMS (:func:`plugins.aliyun.errors.flow_control`).
"""

from __future__ import annotations

import logging
import time

from gateway.channel import Failed, Retry
from plugins.aliyun.client import Reply
from plugins.aliyun.errors import Kind, Rule, Rules, flow_control

log = logging.getLogger(__name__)

_TEMPLATE = Rule(Kind.CONFIG, None, "the TTS template is not approved or not this account's")
VOICE_RULES: Rules = {
    "isv.TTS_TEMPLATE_ILLEGAL": _TEMPLATE,
    "isv.TEMPLATE_ILLEGAL": _TEMPLATE,
    "isv.DISPLAY_NUMBER_ILLEGAL": Rule(
        Kind.CONFIG, "called_show_number", "the caller number is not this account's"
    ),
}


def classify_reply(reply: Reply, now: float | None = None) -> Retry | Failed:
    """The outcome of a SingleCallByTts reply whose Code is not OK."""
    if reply.code == "isv.BUSINESS_LIMIT_CONTROL":
        now = time.time() if now is None else now
        return flow_control(
            reply.code, reply.message, now, VOICE_RULES, request_id=reply.request_id
        )
    return reply.outcome(VOICE_RULES)
