"""Classifying robot-call answers (docs/providers.md §7.4) on top of plugins.aliyun.errors.

Gateway codes (§4.4) and the ``isv.*``/``isp.*`` codes shared with voice come from
:mod:`plugins.aliyun.errors`. Added here: the aiccs codes RobotCall documents, the caller-number
code of the VMS error list, and the per-callee flow control of voice calls (1/minute, 5/hour,
20/day per number, §6.3), whose window the message names. The exact business codes of
BatchRobotSmartCall are not published [UNCONFIRMED]: an unknown ``isv.*`` is permanent, an
unknown ``isp.*`` temporary (the §6.3 fallback).
"""

from __future__ import annotations

import logging

from msgspec.structs import replace

from gateway.channel import Failed, Retry
from plugins.aliyun.client import Reply
from plugins.aliyun.errors import Kind, Rule, Rules

log = logging.getLogger(__name__)

BUSINESS_LIMIT = "isv.BUSINESS_LIMIT_CONTROL"

OUTBOUND_RULES: Rules = {
    "Parameter.Error": Rule(Kind.PERMANENT),  # aiccs RobotCall, HTTP 400
    "Permission.NotAuthorized": Rule(
        Kind.CONFIG, "access_key_id", "the RAM user may not place robot calls"
    ),
    "isv.DISPLAY_NUMBER_ILLEGAL": Rule(
        Kind.CONFIG, "caller_number", "the caller number is not one of this account's numbers"
    ),
    BUSINESS_LIMIT: Rule(Kind.RATE_LIMITED, after=60.0),
}

HOUR = 3600.0


def reply_outcome(reply: Reply) -> Retry | Failed:
    """The outcome of a non-OK business reply."""
    outcome = reply.outcome(OUTBOUND_RULES)
    if reply.code == BUSINESS_LIMIT and isinstance(outcome, Retry):
        message = reply.message
        if "天" in message or "day" in message.lower():
            # the daily cap per callee: nothing to gain by retrying today (§5.3's rule)
            return Failed(reason=outcome.reason, code=outcome.code)
        if "小时" in message or "hour" in message.lower():
            return replace(outcome, after=HOUR)
    return outcome
